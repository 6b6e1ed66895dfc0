"""AddConv1d: the lightweight add convolution of the ShiftAddNAS search space.

LightConv's structure (Wu et al., ICLR 2019: one K-tap filter per head, shared by the head's
channels, softmax over K, DropConnect) with the multiply replaced by AdderNet's negative L1
distance: y[t, b, c] = -sum_j |x[t + j - p, b, c] - w[h(c), j]|, h(c) = c // (C // num_heads),
p = K // 2 ("same") or K - 1 ("causal").

Taps that fall outside the sequence contribute nothing (they are masked, not zero-padded), and
so do taps on padded steps inside a batch (``padding_mask``): a zero input would add -|0 - w| = -|w|
to the sum, which :func:`padded_tap_sum` adds back. An output therefore never depends on padding
or on what else is in the batch, and one-step incremental decoding computes exactly what the full
causal pass computes. The C++ kernel on CPU (csrc/add_conv.cpp, see kernels.py) and the
Triton kernels on CUDA (triton_add.py) never hold a (T, B, C, K) tensor; the pure-torch fallback
does. add_backend.py chooses, and sets the precision (float16/bfloat16 accumulate in float32).
Gradients follow AdderNet: dL/dw = sum (x - w) g (full precision),
dL/dx = sum HardTanh(w - x) g.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from fairseq.incremental_decoding_utils import with_incremental_state
from torch import Tensor, nn

from fairseq_shiftadd.modules.add_backend import TORCH, kernel_ops, precision, select_backend, upcast
from fairseq_shiftadd.modules.quantize import QuantOptions, Quantizers, shared_scale, to_grid

_PADDINGS = ("same", "causal")


def _masked_diff(x: Tensor, weight: Tensor, steps: int, padding: int) -> Tensor:
    """Fallback: (steps, B, C, K) tensor x[t + j - p] - w[:, j], zero where the tap is outside x."""
    source, kernel_size = x.shape[0], weight.shape[1]
    right = steps + kernel_size - 1 - padding - source
    diff = F.pad(x, (0, 0, 0, 0, padding, right)).unfold(0, kernel_size, 1) - weight
    for j in range(kernel_size):
        lo, hi = max(0, padding - j), min(steps, source + padding - j)
        diff[:lo, :, :, j] = 0.0
        diff[max(lo, hi) :, :, :, j] = 0.0
    return diff


def _conv_forward(x: Tensor, weight: Tensor, steps: int, padding: int, backend: str) -> Tensor:
    """y[t] = -sum_j |x[t + j - padding] - weight[:, j]| over taps inside x: (S, B, C), (C, K) -> (steps, B, C)."""
    if backend != TORCH:
        return kernel_ops(backend).add_conv_forward(x, weight, steps, padding)
    return -torch.linalg.vector_norm(_masked_diff(x, weight, steps, padding), ord=1, dim=-1)


def _conv_backward(grad: Tensor, x: Tensor, weight: Tensor, padding: int, backend: str) -> tuple[Tensor, Tensor]:
    """AdderNet gradients (x: sum HardTanh(w - x) g; weight: sum (x - w) g) of _conv_forward."""
    if backend != TORCH:
        return kernel_ops(backend).add_conv_backward(grad, x, weight, padding)
    steps, kernel_size = grad.shape[0], weight.shape[1]
    diff = _masked_diff(x, weight, steps, padding)
    grad = grad.unsqueeze(-1)
    grad_weight = (diff * grad).sum((0, 1))
    grad_windows = diff.clamp_(-1.0, 1.0).mul_(grad).neg_()  # masked taps have diff 0
    padded = (steps + kernel_size - 1, *x.shape[1:])
    grad_padded = torch.ops.aten.unfold_backward(grad_windows, padded, 0, kernel_size, 1)
    return grad_padded[padding : padding + x.shape[0]], grad_weight


class _AddConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, steps: int, padding: int, backend: str, result_dtype: torch.dtype) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.backend = padding, backend
        x_c, weight_c = upcast(backend, x, weight)
        return _conv_forward(x_c, weight_c, steps, padding, backend).to(result_dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):  # an autocast caller must not lower the fallback
            operands = upcast(ctx.backend, grad.to(x.dtype).contiguous(), x, weight)  # grad: float32 under autocast
            grad_x, grad_weight = _conv_backward(*operands, ctx.padding, ctx.backend)
        return grad_x.to(x.dtype), grad_weight.to(weight.dtype), None, None, None, None


def add_conv(x: Tensor, weight: Tensor, steps: int, padding: int) -> Tensor:
    """Masked add convolution: x (S, B, C) source steps, weight (C, K) -> (steps, B, C).

    Output step t uses source steps t + j - padding for taps j = 0..K-1 that fall inside [0, S).
    Both are taken in x's dtype (autocast's under torch.autocast, where the result is float32:
    see add_backend.precision).
    """
    dtype, result_dtype = precision(x)
    x, weight = x.to(dtype).contiguous(), weight.to(dtype).contiguous()
    return _AddConvFunction.apply(x, weight, steps, padding, select_backend(x, weight), result_dtype)


def padded_tap_sum(padding_mask: Tensor, weight: Tensor, steps: int, padding: int) -> Tensor:
    """sum_j pad[b, t + j - padding] * |weight[c, j]|: (B, S) bool, (C, K) -> (steps, B, C).

    What the zeroed padded steps of x add to -sum_j |x - w|, to be added back. Its weight gradient
    is w per padded tap, which cancels AdderNet's (0 - w) g of the same tap, so padded steps leave
    the weight gradient untouched too.
    """
    half_square = weight * weight / 2
    taps = weight.detach().abs() + (half_square - half_square.detach())  # value |w|, gradient w
    mask = padding_mask.to(taps.dtype).unsqueeze(1)  # (B, 1, S)
    right = steps + weight.shape[1] - 1 - padding - mask.shape[-1]
    return F.conv1d(F.pad(mask, (padding, right)), taps.unsqueeze(1)).permute(2, 0, 1)


def add_conv_over_real_steps(x: Tensor, weight: Tensor, steps: int, padding: int, padding_mask: Tensor | None) -> Tensor:
    """add_conv of x, zero on the steps ``padding_mask`` (B, S) marks, with those steps' taps added back
    (:func:`padded_tap_sum`): they contribute nothing, as taps outside x. (S, B, C), (C, K) -> (steps, B, C)."""
    y = add_conv(x, weight, steps, padding)
    return y if padding_mask is None else y + padded_tap_sum(padding_mask, weight, steps, padding).to(y.dtype)


@with_incremental_state
class AddConv1d(nn.Module):
    """Lightweight add convolution over time-first input (T, B, C), any C divisible by num_heads.

    Args:
        num_heads: filters; channel c uses filter c // (C // num_heads).
        kernel_size: taps K (odd for "same" padding).
        padding: "same" (encoder, p = K // 2) or "causal" (decoder, p = K - 1; allows incremental decoding).
        weight_softmax: normalise each filter with a softmax over its K taps.
        weight_dropout: DropConnect probability on the (normalised) filter taps while training.
        quant: fixed-point options: input and taps on one shared N-bit grid (quantize.py).
    """

    def __init__(
        self,
        num_heads: int,
        kernel_size: int,
        padding: str = "same",
        weight_softmax: bool = True,
        weight_dropout: float = 0.0,
        quant: QuantOptions = QuantOptions(),
    ) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be positive, got {num_heads}")
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be positive, got {kernel_size}")
        if padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        if padding == "same" and kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}")
        self.num_heads, self.kernel_size, self.padding = num_heads, kernel_size, padding
        self.weight_softmax, self.weight_dropout = weight_softmax, weight_dropout
        self.padding_left = kernel_size - 1 if padding == "causal" else kernel_size // 2
        self.weight = nn.Parameter(torch.empty(num_heads, kernel_size))
        self.quant = Quantizers(quant, ("input",))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)  # as fairseq's LightweightConv1dTBC

    def channel_weight(self, channels: int) -> Tensor:
        """(channels, K) taps of every channel: normalised, dropped out (training), repeated per head."""
        if channels % self.num_heads:
            raise ValueError(f"channels must be divisible by num_heads={self.num_heads}, got {channels}")
        weight = F.softmax(self.weight, dim=-1) if self.weight_softmax else self.weight
        weight = F.dropout(weight, self.weight_dropout, self.training)
        return weight.repeat_interleave(channels // self.num_heads, dim=0)

    def forward(self, x: Tensor, incremental_state: dict | None = None, padding_mask: Tensor | None = None) -> Tensor:
        """x: (T, B, C), or (1, B, C) one step with incremental_state (causal only) -> same shape.

        padding_mask: (B, T), True on padded steps; their taps contribute nothing, like taps outside x.
        """
        if x.dim() != 3:
            raise ValueError(f"x must be (T, B, C), got shape {tuple(x.shape)}")
        weight = self.channel_weight(x.shape[2]).to(x.dtype)
        if incremental_state is not None:
            return self._step(x, weight, incremental_state)
        if padding_mask is not None and not padding_mask.any():
            padding_mask = None
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.transpose(0, 1).unsqueeze(-1), 0.0)
        return self._conv(x, weight, x.shape[0], self.padding_left, padding_mask)

    def _conv(self, x: Tensor, weight: Tensor, steps: int, padding: int, padding_mask: Tensor | None = None) -> Tensor:
        """add_conv, or s * (its integer sum) on one shared N-bit grid of x and weight when quantised;
        x is zero on the steps ``padding_mask`` marks, whose taps are added back."""
        quantizer = self.quant.site("input")
        if quantizer is None:
            return add_conv_over_real_steps(x, weight, steps, padding, padding_mask)
        scale = shared_scale(quantizer, x, weight)
        x_int, w_int = to_grid(x, scale, quantizer.options), to_grid(weight, scale, quantizer.options)
        if quantizer.options.integer and not self.training:
            total = -_masked_diff(x_int.to(torch.int32), w_int.to(torch.int32), steps, padding).abs().sum(-1, dtype=torch.int32)
            if padding_mask is not None:  # integers below 2^24: exact in float32
                total = total + padded_tap_sum(padding_mask, w_int.float(), steps, padding).to(torch.int32)
            return total.to(x.dtype) * scale
        return add_conv_over_real_steps(x_int, w_int, steps, padding, padding_mask) * scale

    def _step(self, x: Tensor, weight: Tensor, incremental_state: dict) -> Tensor:
        """One decoding step on the last K - 1 inputs kept in incremental_state."""
        if self.padding != "causal":
            raise ValueError(f"incremental decoding needs padding='causal', got {self.padding!r}")
        if x.shape[0] != 1:
            raise ValueError(f"incremental x must be one step (1, B, C), got shape {tuple(x.shape)}")
        K = self.kernel_size
        buffer = self.get_incremental_state(incremental_state, "input_buffer")
        window = x if buffer is None else torch.cat([buffer, x], dim=0)  # (L <= K, B, C)
        self.set_incremental_state(incremental_state, "input_buffer", window[max(0, window.shape[0] - (K - 1)) :])
        # The window's last step is the output step: same taps, same arithmetic as the full pass.
        return self._conv(window, weight, 1, K - window.shape[0])

    def reorder_incremental_state(self, incremental_state: dict, new_order: Tensor) -> None:
        """Follow beam search's reordering of the batch dimension."""
        buffer = self.get_incremental_state(incremental_state, "input_buffer")
        if buffer is not None:
            self.set_incremental_state(incremental_state, "input_buffer", buffer.index_select(1, new_order))

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, kernel_size={self.kernel_size}, padding={self.padding!r}, "
            f"weight_softmax={self.weight_softmax}, weight_dropout={self.weight_dropout}"
        )
