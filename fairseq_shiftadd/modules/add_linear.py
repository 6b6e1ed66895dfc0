"""AddLinear: AdderNet (Chen et al., CVPR 2020) as a linear layer over the last dimension.

y[..., o] = -sum_i |x[..., i] - W[o, i]| (+ bias[o]). The L1 "GEMM" and the clamped input
gradient run in a C++ kernel on CPU (``csrc/add_linear.cpp``, see kernels.py) and in Triton
kernels on CUDA (triton_add.py); elsewhere, or where neither is available, a chunked pure-torch
path with bounded memory computes the same thing (much slower). None ever holds an
(N, out, in) tensor. add_backend.py chooses, and sets the precision (float16/bfloat16 inputs
accumulate in float32).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fairseq_shiftadd.modules.add_backend import TORCH, kernel_ops, precision, select_backend, upcast

# Elements of the (rows, out, in) broadcast the fallback's input gradient may hold at once.
_FALLBACK_CHUNK_ELEMENTS = 1 << 24


def _l1_forward(x: Tensor, weight: Tensor, bias: Tensor | None, backend: str) -> Tensor:
    """-sum_i |x[n, i] - weight[o, i]| (+ bias): x (N, in), weight (out, in) -> (N, out)."""
    if backend != TORCH:
        return kernel_ops(backend).add_linear_forward(x, weight, bias)
    y = -torch.cdist(x, weight, p=1.0)  # p=1 cdist loops without broadcasting (N, out, in)
    return y if bias is None else y + bias


def _l1_input_grad(grad: Tensor, x: Tensor, weight: Tensor, backend: str) -> Tensor:
    """sum_o HardTanh(weight[o, i] - x[n, i]) * grad[n, o]: (N, out), (N, in), (out, in) -> (N, in)."""
    if backend != TORCH:
        return kernel_ops(backend).add_linear_input_grad(grad, x, weight)
    rows = max(1, _FALLBACK_CHUNK_ELEMENTS // weight.numel())
    parts = [
        torch.einsum("no,noi->ni", g, (weight[None] - xc[:, None]).clamp_(-1.0, 1.0))
        for g, xc in zip(grad.split(rows), x.split(rows))
    ]
    return torch.cat(parts) if parts else x.new_zeros(x.shape)


class _AddLinearFunction(torch.autograd.Function):
    """AdderNet gradients: full-precision dW (a GEMM) rescaled to norm eta*sqrt(numel), HardTanh dx."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, eta: float, backend: str, result_dtype: torch.dtype) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.eta, ctx.backend = eta, backend
        return _l1_forward(*upcast(backend, x, weight, bias), backend).to(result_dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        dtype = x.dtype
        grad, x, weight = upcast(ctx.backend, grad.to(dtype).contiguous(), x, weight)  # grad: float32 under autocast
        grad_x = grad_w = grad_b = None
        with torch.autocast(grad.device.type, enabled=False):  # an autocast caller must not lower these GEMMs
            if ctx.needs_input_grad[0]:
                grad_x = _l1_input_grad(grad, x, weight, ctx.backend).to(dtype)
            if ctx.needs_input_grad[1]:
                # sum_n (x[n] - W[o]) g[n, o] = (g^T x)[o] - W[o] * sum_n g[n, o]
                grad_w = torch.addmm(weight * -grad.sum(0)[:, None], grad.t(), x)
                # AdderNet's rescaling in (at least) float32: a half-precision sum of squares overflows.
                wide = grad_w.to(torch.promote_types(grad_w.dtype, torch.float32))
                norm = torch.linalg.vector_norm(wide).clamp_min(1e-12)
                grad_w = wide.mul_(ctx.eta * math.sqrt(weight.numel()) / norm).to(dtype)
            if ctx.needs_input_grad[2]:
                grad_b = grad.sum(0).to(dtype)
        return grad_x, grad_w, grad_b, None, None, None


def add_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, eta: float = 0.2) -> Tensor:
    """AdderNet linear map over the last dimension.

    Args:
        x: (..., in) input, any leading shape, any strides; weight and bias are cast to its dtype
            (to autocast's under torch.autocast, where the result is float32: see add_backend.precision).
        weight: (out, in), e.g. a leading slice of a larger weight.
        bias: (out,) or None.
        eta: the weight gradient is rescaled to L2 norm eta * sqrt(weight.numel()).
    Returns:
        (..., out) with y[..., o] = -sum_i |x[..., i] - weight[o, i]| (+ bias[o]).
    """
    if weight.dim() != 2 or 0 in weight.shape:
        raise ValueError(f"weight must be a non-empty 2-D (out, in) tensor, got shape {tuple(weight.shape)}")
    if x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x last dimension must be in_features={weight.shape[1]}, got shape {tuple(x.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    lead, (dtype, result_dtype) = x.shape[:-1], precision(x)
    x2d = x.reshape(-1, x.shape[-1]).to(dtype).contiguous()
    weight = weight.to(dtype).contiguous()
    bias = None if bias is None else bias.to(dtype).contiguous()
    y = _AddLinearFunction.apply(x2d, weight, bias, float(eta), select_backend(x2d, weight), result_dtype)
    return y.reshape(*lead, weight.shape[0])


class AddLinear(nn.Module):
    """Linear layer whose multiply-accumulate is replaced by a negative L1 distance (AdderNet).

    Args:
        in_features, out_features: sizes of the last dimension in and out.
        bias: learn an additive bias (AdderNet layers usually have none; BN/LN follows).
        eta: AdderNet's adaptive learning-rate scale for the weight gradient (0.2 officially).
        gain: the subtracted weight is ``gain * weight`` (stored as the buffer ``weight_gain``);
            sqrt(in_features) puts it on a normalised input's scale (:class:`OperatorRecipe`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, eta: float = 0.2, gain: float = 1.0) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be positive, got {in_features}")
        if out_features < 1:
            raise ValueError(f"out_features must be positive, got {out_features}")
        if eta <= 0:
            raise ValueError(f"eta must be positive, got {eta}")
        if gain <= 0:
            raise ValueError(f"gain must be positive, got {gain}")
        self.in_features, self.out_features, self.eta = in_features, out_features, eta
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.register_buffer("weight_gain", torch.tensor(float(gain)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's scale
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def subtracted_weight(self, out_features: int | None = None, in_features: int | None = None) -> Tensor:
        """``gain * weight`` on the leading (out_features, in_features) slice."""
        return self.weight_gain * self.weight[:out_features, :in_features]

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., in_features) -> (..., out_features)."""
        return add_linear(x, self.subtracted_weight(), self.bias, self.eta)

    def upgrade_state_dict_named(self, state_dict: dict, name: str) -> None:
        """Checkpoints saved before ``weight_gain`` existed subtracted the weight itself (gain 1)."""
        prefix = f"{name}." if name else ""
        if prefix + "weight" in state_dict and prefix + "weight_gain" not in state_dict:
            state_dict[prefix + "weight_gain"] = torch.tensor(1.0)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"eta={self.eta}, gain={float(self.weight_gain):g}")
