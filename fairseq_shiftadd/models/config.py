"""Configuration shared by the supernet and the standalone subnet model."""
# No `from __future__ import annotations`: fairseq reads the config dataclasses' field types at run time.

from dataclasses import MISSING, dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import OmegaConf, open_dict

from ..checkpoint_compat import register_checkpoint_upgrade
from ..modules.lightweight_branch import WEIGHT_DROPOUT
from ..modules.operator_recipe import ADD_CONV_PADDINGS, ADD_OUTPUT_GAINS, ADD_WEIGHT_SCALES
from ..modules.shift_linear import SHIFT_PARAMETRIZATIONS
from ..space import WEIGHT_SHARING_MODES

WeightSharing = ChoiceEnum(list(WEIGHT_SHARING_MODES))
ShiftParametrization = ChoiceEnum(list(SHIFT_PARAMETRIZATIONS))
AddWeightScale = ChoiceEnum(list(ADD_WEIGHT_SCALES))
AddOutputGain = ChoiceEnum(list(ADD_OUTPUT_GAINS))
AddConvPadding = ChoiceEnum(list(ADD_CONV_PADDINGS))


@dataclass
class HybridTransformerConfig(FairseqDataclass):
    dropout: float = field(default=0.1, metadata={"help": "dropout at the largest width (scaled down for narrower subnets)"})
    attention_dropout: float = field(default=0.1, metadata={"help": "dropout on attention probabilities"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the FFN activation"})
    weight_dropout: float = field(
        default=WEIGHT_DROPOUT, metadata={"help": "DropConnect on the conv/add branches' temporal filters (LightConv's --weight-dropout)"}
    )
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
    add_output_gain: AddOutputGain = field(
        default="linear",
        metadata={"help": "initial gain of the LayerNorm that ends an add FFN: linear, 1/sqrt(18), the output std of a "
                  "multiplication FFN at initialisation (learns far faster per update); unit, LayerNorm's own 1 "
                  "(docs/operators.md)"},
    )
    add_conv_padding: AddConvPadding = field(
        default="masked",
        metadata={"help": "padded steps of a batch in the add convolutions: masked, their taps contribute nothing "
                  "(a sentence encodes the same in any batch); zeros, they add -|w| per tap (what models trained "
                  "before the option computed; their checkpoints keep it)"},
    )
    quant_bits: Optional[int] = field(
        default=None,
        metadata={"help": "N-bit fixed point (2-32): train and run every operator on quantised inputs and weights "
                  "(docs/quantization.md); default: float"},
    )
    quant_grad_bits: Optional[int] = field(default=None, metadata={"help": "with --quant-bits: also quantise gradients to N bits"})
    quant_integer: bool = field(
        default=False,
        metadata={"help": "with a --quant-bits model: run shift and add operators in integer arithmetic at inference "
                  "(fairseq-generate --model-overrides \"{'quant_integer': True}\")"},
    )
    kl_weight: float = field(default=10.0, metadata={"help": "weight of the heterogeneous-sharing KL term in the loss"})
    lightweight_heads: int = field(default=4, metadata={"help": "filter heads of the conv/add branches"})
    share_all_embeddings: bool = field(
        default=True, metadata={"help": "one embedding matrix for source, target and output (needs a joined dictionary)"}
    )
    max_source_positions: int = field(default=1024, metadata={"help": "longest source sentence"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest target sentence"})


def record_in_config(cfg, key: str, value) -> None:
    """Store ``value`` in the model config (a dataclass or fairseq's DictConfig) so checkpoints keep it.

    When the ``--arch`` is the model's own name, fairseq builds the model from a merged copy of the
    run's ``cfg.model`` whose parent is the run's config; the checkpoint saves that config's
    ``model`` node, so the value goes there too.
    """
    targets = [cfg]
    if OmegaConf.is_config(cfg):
        parent = cfg._get_parent()
        saved = parent.get("model") if OmegaConf.is_dict(parent) else None
        if OmegaConf.is_config(saved) and saved is not cfg:
            targets.append(saved)
    for target in targets:
        if OmegaConf.is_config(target):
            with open_dict(target):
                setattr(target, key, value)
        else:
            setattr(target, key, value)


# Options whose default changed what a trained model computes: a config saved before the option
# existed gets the behaviour its model was trained with, not today's default.
BEFORE_THE_OPTION = {"add_conv_padding": "zeros"}


@register_checkpoint_upgrade
def keep_trained_behaviour(state: dict) -> None:
    """A checkpoint of our models saved before an option of :data:`BEFORE_THE_OPTION` existed gets the
    behaviour it was trained with (fairseq would fill the option's missing key with today's default)."""
    model_cfg = state["cfg"].get("model") if isinstance(state.get("cfg"), dict) else None
    if isinstance(model_cfg, dict) and str(model_cfg.get("_name", "")).startswith("shiftadd_"):
        for name, value in BEFORE_THE_OPTION.items():
            model_cfg.setdefault(name, value)


def fill_missing_options(cfg) -> None:
    """Give every option of :class:`HybridTransformerConfig` that ``cfg`` lacks a value, in place.

    A checkpoint saved before an option existed stores a model config without it; fairseq builds
    the model from that config, so without this it fails on the missing key. The values keep such
    checkpoints computing what they computed: the default, or :data:`BEFORE_THE_OPTION` where the
    default changed the computation (the operators upgrade their old state dicts to match).
    """
    for name, spec in HybridTransformerConfig.__dataclass_fields__.items():
        if name.startswith("_") or (name in cfg if OmegaConf.is_config(cfg) else hasattr(cfg, name)):
            continue
        default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
        record_in_config(cfg, name, BEFORE_THE_OPTION.get(name, default))
