"""How the shift and add operators are parametrised: our recipe and the paper's.

Shift and add layers trained the way the public ShiftAddNAS code trains them learn far more
slowly per update than multiplication under Adam (docs/operators.md has the measurements): a
DeepShift-PS exponent moves 1e-3 per update and changes after hundreds of updates, and AdderNet
weights initialised at nn.Linear's scale (about 1/sqrt(fan_in)) sit far inside the input's range,
where -sum|x - w| is nearly a linear function of sign(x), and Adam needs thousands of updates to
move them to the input's scale. The latent shift closes the shift gap; the input scale helps add
layers in the first updates and in half precision, not at 400 updates; starting an add FFN's
output at a multiplication FFN's scale closes most of the add gap (docs/operators.md). Our recipe
is the default; ``OperatorRecipe("deepshift-ps", "linear", "unit")`` is the public code's
operators with LayerNorm's own initialisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .shift_linear import SHIFT_PARAMETRIZATIONS

ADD_WEIGHT_SCALES = ("input", "linear")
ADD_OUTPUT_GAINS = ("unit", "linear")
ADD_CONV_PADDINGS = ("masked", "zeros")
# Output std of an nn.Linear FFN (fc1 -> ReLU -> fc2, PyTorch's default init) on a unit-variance
# input: each linear keeps 1/3 of the second moment (weights U(-1/sqrt(fan_in), 1/sqrt(fan_in))),
# ReLU half of it, so sqrt(1/3 * 1/2 * 1/3) = 1/sqrt(18). docs/operators.md, "Add FFNs".
LINEAR_FFN_OUTPUT_STD = 1 / math.sqrt(18)


@dataclass(frozen=True)
class OperatorRecipe:
    """Args:
        shift_parametrization: ``latent`` (a float weight rounded to powers of two in the forward
            pass) or ``deepshift-ps`` (trained sign and exponent), see :class:`ShiftLinear`.
        add_weight_scale: ``input``: an add layer's weight is sqrt(fan_in) times a parameter
            initialised as nn.Linear's, so it starts on the scale of a normalised input (U(-1, 1))
            and Adam moves it sqrt(fan_in) times faster; ``linear``: the parameter itself.
        add_output_gain: initial gain of the LayerNorm that ends an add FFN (what it adds to the
            residual stream): ``linear`` (1/sqrt(18), a multiplication FFN's output std at
            initialisation) or ``unit`` (LayerNorm's own 1: a unit-variance output, 4.2x a
            multiplication FFN's, which Adam takes hundreds of updates to shrink).
        add_conv_padding: how an add convolution treats the padded steps of a batch: ``masked``,
            their taps contribute nothing, as taps outside the sequence (a sentence encodes the same
            in any batch); ``zeros``, they enter as zeros and add -|w| per tap (before 2026-12-04;
            checkpoints saved without the option keep it, see models/config.py).
    """

    shift_parametrization: str = "latent"
    add_weight_scale: str = "input"
    add_output_gain: str = "linear"
    add_conv_padding: str = "masked"

    def __post_init__(self) -> None:
        if self.shift_parametrization not in SHIFT_PARAMETRIZATIONS:
            raise ValueError(f"shift_parametrization must be one of {SHIFT_PARAMETRIZATIONS}, got {self.shift_parametrization!r}")
        if self.add_weight_scale not in ADD_WEIGHT_SCALES:
            raise ValueError(f"add_weight_scale must be one of {ADD_WEIGHT_SCALES}, got {self.add_weight_scale!r}")
        if self.add_output_gain not in ADD_OUTPUT_GAINS:
            raise ValueError(f"add_output_gain must be one of {ADD_OUTPUT_GAINS}, got {self.add_output_gain!r}")
        if self.add_conv_padding not in ADD_CONV_PADDINGS:
            raise ValueError(f"add_conv_padding must be one of {ADD_CONV_PADDINGS}, got {self.add_conv_padding!r}")

    def add_gain(self, in_features: int) -> float:
        """The factor between an add layer's parameter and the weight it subtracts, for fan-in ``in_features``."""
        return math.sqrt(in_features) if self.add_weight_scale == "input" else 1.0

    def add_output_norm_gain(self) -> float:
        """Initial gain of the LayerNorm after an add FFN's second layer."""
        return LINEAR_FFN_OUTPUT_STD if self.add_output_gain == "linear" else 1.0
