"""Configuration shared by the supernet and the standalone subnet model."""
# No `from __future__ import annotations`: fairseq reads the config dataclasses' field types at run time.

from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import OmegaConf, open_dict

from ..space import WEIGHT_SHARING_MODES

WeightSharing = ChoiceEnum(list(WEIGHT_SHARING_MODES))
ShiftParametrization = ChoiceEnum(["latent", "deepshift-ps"])
AddWeightScale = ChoiceEnum(["input", "linear"])


@dataclass
class HybridTransformerConfig(FairseqDataclass):
    dropout: float = field(default=0.1, metadata={"help": "dropout at the largest width (scaled down for narrower subnets)"})
    attention_dropout: float = field(default=0.1, metadata={"help": "dropout on attention probabilities"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the FFN activation"})
    weight_sharing: WeightSharing = field(
        default="none",
        metadata={"help": "share weights across the operators of a layer position: none, plain, or "
                  "heterogeneous (add operators use a learned Laplacian transform T(w), with a KL regulariser)"},
    )
    shift_parametrization: ShiftParametrization = field(
        default="latent",
        metadata={"help": "shift layers (under --weight-sharing none): latent, a float weight rounded to +-2^k in the "
                  "forward pass (DeepShift-Q, learns as fast as a linear layer); deepshift-ps, trained sign and "
                  "exponent (the public ShiftAddNAS code, learns far slower per update; docs/operators.md)"},
    )
    add_weight_scale: AddWeightScale = field(
        default="input",
        metadata={"help": "add layers (under --weight-sharing none): input, weights start on a normalised input's "
                  "scale and Adam moves them sqrt(fan-in) times faster; linear, nn.Linear's scale (the public "
                  "ShiftAddNAS code, learns far slower per update; docs/operators.md)"},
    )
    kl_weight: float = field(default=10.0, metadata={"help": "weight of the heterogeneous-sharing KL term in the loss"})
    lightweight_heads: int = field(default=4, metadata={"help": "filter heads of the conv/add branches"})
    share_all_embeddings: bool = field(
        default=True, metadata={"help": "one embedding matrix for source, target and output (needs a joined dictionary)"}
    )
    max_source_positions: int = field(default=1024, metadata={"help": "longest source sentence"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest target sentence"})


def record_in_config(cfg, key: str, value) -> None:
    """Store ``value`` in the model config (a dataclass or fairseq's DictConfig) so checkpoints keep it."""
    if OmegaConf.is_config(cfg):
        with open_dict(cfg):
            setattr(cfg, key, value)
    else:
        setattr(cfg, key, value)


def fill_defaults(args, config_class) -> None:
    """Arch function body: every option of ``config_class`` the user did not give gets its default.

    The standalone model registers the legacy way (``add_args`` + arch function) so fairseq hands
    ``build_model`` the config it saves, and what the model records there reaches the checkpoint.
    """
    for name, spec in config_class.__dataclass_fields__.items():
        if not name.startswith("_") and getattr(args, name, None) is None:
            setattr(args, name, spec.default)
