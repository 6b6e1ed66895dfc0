"""``shiftadd_supernet``: one model holding every hybrid Transformer of a search space.

Each update the task activates one subnet (:meth:`set_subnet`); its layers run the chosen
operators on leading slices of the shared weights. Registration of the model and its named
architectures lives here and only here.
"""
# No `from __future__ import annotations`: fairseq reads the config dataclasses' field types at run time.

from dataclasses import dataclass, field
from typing import Optional

import yaml
from fairseq.models import register_model, register_model_architecture

from ..space import SearchSpace
from .build import SideCandidates, build_hybrid_model
from .config import HybridTransformerConfig, record_in_config
from .hybrid_transformer import HybridTransformerModel
from ..errors import InvalidInput


@dataclass
class ShiftAddSupernetConfig(HybridTransformerConfig):
    search_space_config: Optional[str] = field(
        default=None, metadata={"help": "(set automatically) the search space YAML, so checkpoints are self-contained"}
    )
    search_space_fingerprint: Optional[str] = field(
        default=None, metadata={"help": "(set automatically) the stored search space's fingerprint"}
    )


@register_model("shiftadd_supernet", dataclass=ShiftAddSupernetConfig)
class ShiftAddSupernet(HybridTransformerModel):
    """The weight-sharing SuperTransformer of ShiftAddNAS (``--task shiftadd_supernet_translation``)."""

    leaves_parameters_unused = True  # one subnet per update: data-parallel training needs legacy_ddp (distributed.py)

    @classmethod
    def build_model(cls, cfg: ShiftAddSupernetConfig, task) -> "ShiftAddSupernet":
        if not hasattr(task, "space"):  # a plain fairseq task would run one arbitrary subnet, silently
            raise InvalidInput(f"a shiftadd_supernet model needs --task shiftadd_supernet_translation, not --task "
                               f"{getattr(getattr(task, 'cfg', None), '_name', type(task).__name__)}: add it "
                               "(and --subnet FILE|largest|smallest|random to choose the subnet)")
        space = cls.space_of(cfg, task)
        record_in_config(cfg, "search_space_config", yaml.safe_dump(space.to_dict(), sort_keys=False))
        record_in_config(cfg, "search_space_fingerprint", space.fingerprint())
        model = build_hybrid_model(
            cfg, task, SideCandidates.of_space(space, "encoder"), SideCandidates.of_space(space, "decoder"),
            space.largest(), model_cls=cls,
        )
        model.search_space = space  # what tells a task this model holds many subnets
        return model

    @staticmethod
    def space_of(cfg: ShiftAddSupernetConfig, task) -> SearchSpace:
        if getattr(cfg, "search_space_config", None):
            space = SearchSpace.from_dict(yaml.safe_load(cfg.search_space_config), name_hint="checkpoint")
            stored = getattr(cfg, "search_space_fingerprint", None)
            if stored and stored != space.fingerprint():
                raise InvalidInput(f"the checkpoint's search space (fingerprint {space.fingerprint()[:12]}) does not match "
                                   f"its recorded fingerprint {stored[:12]}: the checkpoint was altered")
            return space
        space = getattr(task, "space", None)
        if space is None:
            raise InvalidInput("--arch shiftadd_supernet_* needs --task shiftadd_supernet_translation --search-space FILE")
        return space


def _defaults(args, dropout: float) -> None:
    args.dropout = getattr(args, "dropout", dropout)
    args.attention_dropout = getattr(args, "attention_dropout", 0.1)


@register_model_architecture("shiftadd_supernet", "shiftadd_supernet_wmt_en_de")
def shiftadd_supernet_wmt_en_de(args) -> None:
    _defaults(args, 0.3)


@register_model_architecture("shiftadd_supernet", "shiftadd_supernet_wmt_en_fr")
def shiftadd_supernet_wmt_en_fr(args) -> None:
    _defaults(args, 0.1)


@register_model_architecture("shiftadd_supernet", "shiftadd_supernet_tiny")
def shiftadd_supernet_tiny(args) -> None:
    _defaults(args, 0.1)
