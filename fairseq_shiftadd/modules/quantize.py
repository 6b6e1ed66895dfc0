"""N-bit fixed point: fake-quantised training and the integer reference paths (docs/quantization.md).

Every quantised operand is a symmetric per-tensor grid: x_int = clamp(round(x / s), -q, q) with
q = 2^(bits-1) - 1. A layer's input takes s from a running max|x| (momentum 0.1 while training,
frozen in eval, so a decoding step sees the scale of the full pass); a multiplication weight from
its own max|w|; an add layer's input and weight share one scale (|x - w| needs one grid).

Each operator accumulates integers and rescales once: the float path computes the integer sums
in float32 (exact below 2^24) and the integer path in int32, so both give the same bits after the
rescale. Gradients are straight-through (d x_int / dx = 1 / s), optionally quantised to
``grad_bits`` on a per-tensor max|g| scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InvalidInput
from .add_linear import add_linear

MOMENTUM = 0.1  # of the running input range, as the public ShiftAddNAS code
BIT_RANGE = (2, 32)
_INTEGER_CHUNK_ELEMENTS = 1 << 22  # of the integer paths' (N, out, in) broadcast at once


@dataclass(frozen=True)
class QuantOptions:
    """Args:
        bits: fixed-point width of operands (None: float).
        grad_bits: width of back-propagated gradients (None: float).
        integer: run shift and add operators in integer arithmetic outside training.
    """

    bits: int | None = None
    grad_bits: int | None = None
    integer: bool = False

    def __post_init__(self) -> None:
        for flag, value in (("--quant-bits", self.bits), ("--quant-grad-bits", self.grad_bits)):
            if value is not None and not BIT_RANGE[0] <= value <= BIT_RANGE[1]:
                raise InvalidInput(f"{flag} must be an integer in [{BIT_RANGE[0]}, {BIT_RANGE[1]}], got {value}")
        if self.grad_bits is not None and self.bits is None:
            raise InvalidInput("--quant-grad-bits needs --quant-bits N")
        if self.integer and self.bits is None:
            raise InvalidInput("--quant-integer needs a model trained with --quant-bits N; this model is float")

    @property
    def enabled(self) -> bool:
        return self.bits is not None


def grid_max(bits: int) -> int:
    """Largest magnitude of a symmetric ``bits``-bit grid: 2^(bits-1) - 1."""
    return 2 ** (bits - 1) - 1


def weight_scale(weight: Tensor, bits: int) -> Tensor:
    """Per-tensor scale of a weight: max|w| / q (never 0)."""
    return weight.detach().abs().max().float().clamp_min(torch.finfo(torch.float32).tiny) / grid_max(bits)


class _ToGrid(torch.autograd.Function):
    """clamp(round(x / s), -q, q) forward; straight-through g / s backward, quantised to grad_bits."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, qmax: int, grad_bits: int | None) -> Tensor:
        ctx.save_for_backward(scale)
        ctx.grad_bits = grad_bits
        return torch.round(x / scale).clamp_(-qmax, qmax)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (scale,) = ctx.saved_tensors
        if ctx.grad_bits is not None:
            grad_scale = weight_scale(grad, ctx.grad_bits)
            grad = torch.round(grad / grad_scale).clamp_(-grid_max(ctx.grad_bits), grid_max(ctx.grad_bits)) * grad_scale
        return (grad / scale).to(grad.dtype), None, None, None


def to_grid(x: Tensor, scale: Tensor, options: QuantOptions) -> Tensor:
    """x on the integer grid of ``scale`` (integer-valued floats, same shape), straight-through."""
    return _ToGrid.apply(x, scale.to(x.dtype), grid_max(options.bits), options.grad_bits)


class InputQuantizer(nn.Module):
    """The scale of one layer input: a running max|x| (buffer ``running_range``), 0 until calibrated.

    Checkpoints of float models have no ``running_range``; loading one (fine-tuning a float model
    to N bits) starts it uncalibrated, and the first training batch sets it.
    """

    def __init__(self, options: QuantOptions):
        super().__init__()
        self.options = options
        self.register_buffer("running_range", torch.zeros(()))

    def range(self, x: Tensor) -> Tensor:
        """The range to quantise ``x`` with; updates the running range while training."""
        current = x.detach().abs().max().float()
        if self.training:
            with torch.no_grad():
                if self.running_range > 0:
                    self.running_range.lerp_(current, MOMENTUM)
                else:
                    self.running_range.copy_(current)
        # uncalibrated in eval: the tensor's own range
        return torch.where(self.running_range > 0, self.running_range, current)

    def scale(self, x: Tensor) -> Tensor:
        return self.range(x).clamp_min(torch.finfo(torch.float32).tiny) / grid_max(self.options.bits)

    def upgrade_state_dict_named(self, state_dict: dict, name: str) -> None:
        """A float checkpoint loads uncalibrated."""
        state_dict.setdefault(f"{name}.running_range" if name else "running_range", torch.zeros(()))


class Quantizers(nn.ModuleDict):
    """The input quantisers of one module by site name; empty (and ``site`` None) for a float model."""

    def __init__(self, options: QuantOptions, sites: Iterable[str]):
        super().__init__({site: InputQuantizer(options) for site in sites} if options.enabled else {})

    def site(self, name: str) -> InputQuantizer | None:
        return self[name] if name in self else None


def _integer_mode(quantizer: InputQuantizer) -> bool:
    return quantizer.options.integer and not quantizer.training


def mult_linear(x: Tensor, weight: Tensor, bias: Tensor | None, quantizer: InputQuantizer | None) -> Tensor:
    """x W^T + b, on N-bit x and W when ``quantizer`` is given; x: (..., in), weight: (out, in)."""
    if quantizer is None:
        return F.linear(x, weight, bias)
    bits = quantizer.options.bits
    x_scale, w_scale = quantizer.scale(x), weight_scale(weight, bits)
    y = F.linear(to_grid(x, x_scale, quantizer.options), to_grid(weight, w_scale, quantizer.options)) * (x_scale * w_scale)
    return y if bias is None else y + bias


def mult_matmul(a: Tensor, b: Tensor, a_scale: Tensor, b_scale: Tensor, options: QuantOptions) -> Tensor:
    """Batched a @ b on the N-bit grids of ``a_scale`` and ``b_scale``: (B, n, k), (B, k, m) -> (B, n, m)."""
    return torch.bmm(to_grid(a, a_scale, options), to_grid(b, b_scale, options)) * (a_scale * b_scale)


def shift_exponents(weight: Tensor) -> tuple[Tensor, Tensor]:
    """(k, sign) of a power-of-two weight sign * 2^-k: int32 tensors of weight's shape (k = 0 where w = 0)."""
    magnitude = weight.detach().abs()
    k = torch.where(magnitude > 0, -torch.log2(magnitude.clamp_min(torch.finfo(magnitude.dtype).tiny)), 0.0)
    return k.round().to(torch.int32), torch.sign(weight.detach()).to(torch.int32)


def rounding_shift(x_int: Tensor, k: Tensor | int) -> Tensor:
    """Round-half-up right shift of integers, (x + 2^(k-1)) >> k (>> is arithmetic: floor); k >= 0."""
    return (x_int + ((1 << k) >> 1)) >> k


class _ShiftSum(torch.autograd.Function):
    """sum_i sign[o, i] * rshift(x[n, i], k[o, i]) on integer-valued floats; backward as x W^T."""

    @staticmethod
    def forward(ctx, x_int: Tensor, weight: Tensor, bits: int) -> Tensor:
        ctx.save_for_backward(x_int, weight)
        k, sign = shift_exponents(weight)
        y = x_int.new_zeros(*x_int.shape[:-1], weight.shape[0])
        for exponent in range(bits):  # with |x| <= 2^(bits-1) - 1 larger shifts round to 0
            taps = (sign * (k == exponent)).to(x_int.dtype)
            if taps.any():
                y += F.linear(torch.floor(x_int * 2.0**-exponent + 0.5), taps)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x_int, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = grad.reshape(-1, grad.shape[-1]).t() @ x_int.reshape(-1, x_int.shape[-1]) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None


def integer_shift_sum(x_int: Tensor, weight: Tensor) -> Tensor:
    """The integer reference: sum_i sign * rshift(x_int[n, i], k) in int32; x_int: (N, in) int32 -> (N, out)."""
    k, sign = shift_exponents(weight)
    rows = max(1, _INTEGER_CHUNK_ELEMENTS // weight.numel())
    parts = [(sign * rounding_shift(chunk[:, None, :], k)).sum(-1, dtype=torch.int32) for chunk in x_int.split(rows)]
    return torch.cat(parts) if parts else x_int.new_zeros(0, weight.shape[0])


def shift_linear(x: Tensor, weight: Tensor, bias: Tensor | None, quantizer: InputQuantizer | None) -> Tensor:
    """x W^T + b for a power-of-two weight; with ``quantizer``, s * sum(sign * rshift(x_int, k)) + b."""
    if quantizer is None:
        return F.linear(x, weight, bias)
    scale = quantizer.scale(x)
    x_int = to_grid(x, scale, quantizer.options)
    if _integer_mode(quantizer):
        flat = x_int.reshape(-1, x.shape[-1]).to(torch.int32)
        y = integer_shift_sum(flat, weight).reshape(*x.shape[:-1], weight.shape[0]).to(x.dtype) * scale
    else:
        y = _ShiftSum.apply(x_int, weight, quantizer.options.bits) * scale
    return y if bias is None else y + bias


def shared_scale(quantizer: InputQuantizer, x: Tensor, weight: Tensor) -> Tensor:
    """One scale for an add layer's input and weight: max(input range, max|w|) / q."""
    top = torch.maximum(quantizer.range(x), weight.detach().abs().max().float())
    return top.clamp_min(torch.finfo(torch.float32).tiny) / grid_max(quantizer.options.bits)


def integer_l1(x_int: Tensor, w_int: Tensor) -> Tensor:
    """The integer reference: -sum_i |x_int[n, i] - w_int[o, i]| in int32; (N, in), (out, in) -> (N, out)."""
    rows = max(1, _INTEGER_CHUNK_ELEMENTS // w_int.numel())
    parts = [-(chunk[:, None, :] - w_int).abs().sum(-1, dtype=torch.int32) for chunk in x_int.split(rows)]
    return torch.cat(parts) if parts else x_int.new_zeros(0, w_int.shape[0])


def add_layer(x: Tensor, weight: Tensor, bias: Tensor | None, quantizer: InputQuantizer | None, eta: float = 0.2) -> Tensor:
    """-sum|x - W| + b (AdderNet); with ``quantizer``, s * -sum|x_int - w_int| + b on one shared scale s."""
    if quantizer is None:
        return add_linear(x, weight, bias, eta)
    scale = shared_scale(quantizer, x, weight)
    x_int, w_int = to_grid(x, scale, quantizer.options), to_grid(weight, scale, quantizer.options)
    if _integer_mode(quantizer):
        flat = x_int.reshape(-1, x.shape[-1]).to(torch.int32)
        y = integer_l1(flat, w_int.to(torch.int32)).reshape(*x.shape[:-1], weight.shape[0]).to(x.dtype) * scale
    else:
        y = add_linear(x_int, w_int, None, eta) * scale
    return y if bias is None else y + bias


def probability_scale(options: QuantOptions, like: Tensor) -> Tensor:
    """The fixed scale 1 / q of values in [0, 1] (softmax outputs): attention probabilities, LightConv taps."""
    return torch.tensor(1.0 / grid_max(options.bits), device=like.device)


class QuantizedTaps(nn.Module):
    """Softmax-normalised filter taps on the fixed grid 1 / q, then DropConnect (``dropout``).

    Replaces fairseq LightweightConv1dTBC's ``weight_dropout_module``, the last step its taps pass
    before the convolution in both of its paths (unfolded and band matrix, where the band's zeros
    stay zero), so the filter multiplies on the N-bit grid; the scale is fixed, so a one-step
    decoding window sees the grid of the full pass.
    """

    def __init__(self, dropout: nn.Module, options: QuantOptions):
        super().__init__()
        self.dropout = dropout
        self.options = options

    @property
    def p(self) -> float:  # read by fairseq's extra_repr
        return self.dropout.p

    def forward(self, taps: Tensor) -> Tensor:
        scale = probability_scale(self.options, taps)
        return self.dropout(to_grid(taps, scale, self.options) * scale)


def fake_quantize_input(x: Tensor, quantizer: InputQuantizer) -> Tensor:
    """x rounded to its N-bit grid and scaled back (straight-through): an input of a layer that rescales itself."""
    scale = quantizer.scale(x)
    return to_grid(x, scale, quantizer.options) * scale
