"""``shiftadd_transformer``: one hybrid subnet as a standalone model.

Built from a subnet YAML (``--subnet FILE``) with only the chosen operators at the chosen sizes,
from the same layer classes as the supernet. Trained from scratch (the paper's retraining) or
initialised from a supernet checkpoint by ``shiftadd-export-subnet``.
"""
# No `from __future__ import annotations`: fairseq reads the config dataclasses' field types at run time.

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Optional

import yaml
from fairseq.models import register_model

from ..space import Subnet, check_subnet, load_subnet_file, parse_subnet
from .build import SideCandidates, build_hybrid_model
from .config import HybridTransformerConfig, record_in_config
from .hybrid_transformer import HybridTransformerModel
from ..errors import InvalidInput


@dataclass
class ShiftAddTransformerConfig(HybridTransformerConfig):
    subnet: Optional[str] = field(default=None, metadata={"help": "subnet YAML file (HAT / ShiftAddNAS keys)"})
    subnet_config: Optional[str] = field(
        default=None, metadata={"help": "(set automatically) the subnet YAML text, so checkpoints are self-contained"}
    )


@register_model("shiftadd_transformer", dataclass=ShiftAddTransformerConfig)
class ShiftAddTransformer(HybridTransformerModel):
    """A standalone hybrid subnet (``--arch shiftadd_transformer --subnet FILE``)."""

    @classmethod
    def build_model(cls, cfg: ShiftAddTransformerConfig, task) -> "ShiftAddTransformer":
        subnet = cls.subnet_of(cfg)
        check_subnet(subnet, where=cfg.subnet or "checkpoint subnet", lightweight_heads=cfg.lightweight_heads)
        record_in_config(cfg, "subnet_config", subnet.to_yaml())
        return build_hybrid_model(
            cfg, task, SideCandidates.of_subnet(subnet, "encoder"), SideCandidates.of_subnet(subnet, "decoder"), subnet, model_cls=cls
        )

    @staticmethod
    def subnet_of(cfg: ShiftAddTransformerConfig) -> Subnet:
        if getattr(cfg, "subnet_config", None):
            return parse_subnet(yaml.safe_load(cfg.subnet_config), where="checkpoint subnet")
        if not cfg.subnet:
            raise InvalidInput("--arch shiftadd_transformer needs --subnet FILE (a subnet YAML)")
        return load_subnet_file(cfg.subnet)

    @classmethod
    def checkpoint_subnet(cls, model_cfg) -> Subnet:
        """The subnet of a saved standalone model; ``model_cfg`` is a checkpoint's ``cfg.model``
        (a dict; an argparse Namespace in checkpoints of older versions)."""
        fields = model_cfg if isinstance(model_cfg, dict) else vars(model_cfg)
        if fields.get("_name") != "shiftadd_transformer":
            raise InvalidInput("not a standalone shiftadd_transformer checkpoint (retrain or export a subnet first)")
        return cls.subnet_of(SimpleNamespace(subnet_config=fields.get("subnet_config"), subnet=fields.get("subnet")))

    def set_subnet(self, subnet: Subnet) -> None:
        if getattr(self, "subnet", None) is not None and subnet != self.subnet:
            raise ValueError("a standalone shiftadd_transformer runs only the subnet it was built for")
        super().set_subnet(subnet)

