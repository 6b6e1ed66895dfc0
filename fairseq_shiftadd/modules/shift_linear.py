"""ShiftLinear: a linear layer whose weights are signed powers of two (DeepShift, Elhoushi et al.).

On shift hardware y = sum(sign * (x >> -shift)); a float matmul with the power-of-two weight is
numerically the same and is what training and CPU inference run.

Two parametrisations of the same layer (docs/operators.md compares how fast each learns):

* ``latent`` (DeepShift-Q, our default): a float weight, initialised as nn.Linear's and rounded to
  sign(w) * 2^round(log2|w|) in every forward pass with a straight-through gradient. Adam moves
  the exponent as fast as it moves a linear layer's weight.
* ``deepshift-ps`` (DeepShift-PS, the public ShiftAddNAS code): trained float ``shift`` and
  ``sign``, shift ~ U(min_shift, 0). An exponent changes only after Adam has moved ``shift`` by
  about 0.5, hundreds of updates at a Transformer's learning rate.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHIFT_PARAMETRIZATIONS = ("latent", "deepshift-ps")

def min_shift(weight_bits: int) -> int:
    """Smallest exponent a weight_bits shift weight holds: -(2^(weight_bits-1) - 2) (-14 for 5 bits)."""
    if not 2 <= weight_bits <= 32:
        raise ValueError(f"weight_bits must be in [2, 32], got {weight_bits}")
    return -(2 ** (weight_bits - 1) - 2)


def _round_log2(weight: Tensor, weight_bits: int) -> Tensor:
    """round(log2 |w|) with |w| clamped to [2^min_shift, 1]."""
    return torch.log2(weight.detach().abs().clamp(2.0 ** min_shift(weight_bits), 1.0)).round()


def power_of_two(weight: Tensor, weight_bits: int = 5) -> Tensor:
    """DeepShift-Q rounding sign(w) * 2^round(log2|w|) with a straight-through (identity) gradient.

    Used where a shift operator quantises a float weight shared with other operators. Half-precision
    weights are rounded in float32 (log2 in float16/bfloat16 moves entries near the rounding
    boundaries) and cast back, so the result is the float32 result wherever the dtype holds 2^k.
    Args:
        weight: any shape.
    Returns:
        same shape and dtype; every entry 0 (where w == 0) or +/-2^k, k in [min_shift(weight_bits), 0].
    """
    wide = weight.detach().to(torch.promote_types(weight.dtype, torch.float32))
    rounded = (torch.sign(wide) * torch.exp2(_round_log2(wide, weight_bits))).to(weight.dtype)
    return rounded + (weight - weight.detach())  # straight-through; exactly `rounded` in any dtype


class _ShiftWeight(torch.autograd.Function):
    """W = sign(round(sign)) * 2^round(clamp(shift)), straight-through for both roundings and the clamp.

    One fused function (instead of autograd through ~10 elementwise ops) keeps the weight
    computation a small fraction of the layer's training step.
    """

    @staticmethod
    def forward(ctx, shift: Tensor, sign: Tensor, low: int) -> Tensor:
        magnitude = shift.clamp(low, 0.0).round_().exp2_()
        rounded_sign = sign.round().sign_()
        ctx.save_for_backward(magnitude, rounded_sign)
        return magnitude * rounded_sign

    @staticmethod
    def backward(ctx, grad: Tensor):
        magnitude, rounded_sign = ctx.saved_tensors
        grad_sign = grad * magnitude  # dW/dsign = 2^shift
        grad_shift = grad_sign * rounded_sign * math.log(2.0)  # dW/dshift = W ln 2
        return grad_shift, grad_sign, None


class ShiftLinear(nn.Module):
    """A linear layer with power-of-two weights, parametrised ``latent`` or ``deepshift-ps`` (module docstring).

    Half precision: the weight has the parameters' dtype and is an exact power of two wherever that
    dtype holds 2^shift (``latent`` rounds in float32, ``deepshift-ps`` computes 2^round(shift) in
    the parameters' dtype). float16's smallest normal is 2^-14 and its smallest
    subnormal 2^-24: weight_bits <= 5 (shifts >= -14) is exact and normal; with 6 bits (shifts
    down to -30) shifts -15..-24 give subnormal weights and shifts below -24 give 0. bfloat16 holds
    2^-126 (normal) and 2^-133 (subnormal), float32 2^-126 and 2^-149: exact up to 8 bits.

    Args:
        in_features, out_features: sizes of the last dimension in and out.
        bias: learn a float bias (added, not shifted).
        weight_bits: bits of a shift weight (1 sign bit + exponent), 2..32; 5 gives shifts in [-14, 0].
        parametrization: ``latent`` (float ``weight``) or ``deepshift-ps`` (float ``shift`` and ``sign``).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, weight_bits: int = 5, parametrization: str = "latent"
    ) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be positive, got {in_features}")
        if out_features < 1:
            raise ValueError(f"out_features must be positive, got {out_features}")
        if parametrization not in SHIFT_PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {SHIFT_PARAMETRIZATIONS}, got {parametrization!r}")
        self.min_shift = min_shift(weight_bits)
        self.in_features, self.out_features, self.weight_bits = in_features, out_features, weight_bits
        self.parametrization = parametrization
        if parametrization == "latent":
            self.weight = nn.Parameter(torch.empty(out_features, in_features))
        else:
            self.shift = nn.Parameter(torch.empty(out_features, in_features))
            self.sign = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """latent: nn.Linear's init; deepshift-ps: shift ~ U(min_shift, 0), sign ~ U(-1, 1). Bias as nn.Linear."""
        if self.parametrization == "latent":
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        else:
            nn.init.uniform_(self.shift, self.min_shift, 0.0)
            nn.init.uniform_(self.sign, -1.0, 1.0)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_linear(cls, linear: nn.Linear, weight_bits: int = 5, parametrization: str = "latent") -> "ShiftLinear":
        """Convert a trained nn.Linear with DeepShift-Q rounding: effective_weight() == power_of_two(linear.weight)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, weight_bits, parametrization)
        layer.to(device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            if parametrization == "latent":
                layer.weight.copy_(linear.weight)
            else:
                layer.shift.copy_(_round_log2(linear.weight, weight_bits))
                layer.sign.copy_(torch.sign(linear.weight))
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def effective_weight(self, out_features: int | None = None, in_features: int | None = None) -> Tensor:
        """The power-of-two weight, (out_features, in_features), computed on that leading slice only.

        Straight-through gradients reach the latent ``weight``, or ``shift`` (clamped and rounded)
        and ``sign`` (rounded, signed).
        """
        out_features = self.out_features if out_features is None else out_features
        in_features = self.in_features if in_features is None else in_features
        if not 1 <= out_features <= self.out_features:
            raise ValueError(f"out_features must be in [1, {self.out_features}], got {out_features}")
        if not 1 <= in_features <= self.in_features:
            raise ValueError(f"in_features must be in [1, {self.in_features}], got {in_features}")
        if self.parametrization == "latent":
            return power_of_two(self.weight[:out_features, :in_features], self.weight_bits)
        return _ShiftWeight.apply(self.shift[:out_features, :in_features], self.sign[:out_features, :in_features], self.min_shift)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., in_features) -> (..., out_features)."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x last dimension must be in_features={self.in_features}, got shape {tuple(x.shape)}")
        return F.linear(x, self.effective_weight(), self.bias)

    def upgrade_state_dict_named(self, state_dict: dict, name: str) -> None:
        """Load a ``deepshift-ps`` checkpoint (``shift``, ``sign``) into a ``latent`` layer.

        The latent weight becomes the old effective weight, which power_of_two leaves unchanged,
        so the model computes exactly what it computed before. fairseq calls this on every
        submodule when it loads a checkpoint.
        """
        prefix = f"{name}." if name else ""
        shift, sign = state_dict.get(prefix + "shift"), state_dict.get(prefix + "sign")
        if self.parametrization == "latent" and shift is not None and sign is not None:
            state_dict[prefix + "weight"] = _ShiftWeight.apply(shift, sign, self.min_shift).detach()
            del state_dict[prefix + "shift"], state_dict[prefix + "sign"]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weight_bits={self.weight_bits}, parametrization={self.parametrization}"
        )
