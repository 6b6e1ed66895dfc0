"""Triton kernels of the add operators (AdderNet's L1 "GEMM" and the add convolution) for CUDA tensors.

The same four functions, with the same arguments and results, as the C++ CPU kernels
(``torch.ops.shiftadd.*``, csrc/): add_backend.py picks one set or the other by device. Inputs
are float32, float16 or bfloat16; every kernel loads them, computes and accumulates in float32.
Forward results are returned in float32 (their accumulator: see add_backend.precision for why a
half-precision result of -sum|x - w| loses its information), gradients in the input dtype (the
conv weight gradient is reduced in float32 first).
With ``TRITON_INTERPRET=1`` set before this module is imported, Triton's interpreter runs the
same kernels on CPU tensors (slowly): that is how the tests check them on a machine without a GPU.

Linear kernels tile the (rows, out) or (rows, in) output and reduce over a third axis in
BLOCK-deep slices held as a 3-D broadcast, the shape of a CUDA-core (SIMT) GEMM; there is no
tensor-core form of -|a - b|. Conv kernels tile (steps, batch * channels) and loop over the K taps,
masking taps outside the sequence exactly as the C++ kernel and the pure-torch fallback do.
Block sizes are reasoned, not tuned (no GPU was available to tune them): 32 x 32 output tiles,
8-deep reduction slices, 4 warps, i.e. 64 values of the broadcast per thread.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from fairseq_shiftadd.modules.add_backend import TRITON_DTYPES

TILE = 32  # output tile edge of the linear kernels
DEPTH = 8  # reduction slice of the linear kernels
CONV_STEPS = 16  # time steps per conv tile
CONV_COLUMNS = 128  # batch * channel columns per conv tile


@triton.jit
def _l1_forward_kernel(x_ptr, w_ptr, bias_ptr, y_ptr, M, N, K, HAS_BIAS: tl.constexpr,
                       TILE: tl.constexpr, DEPTH: tl.constexpr):
    """y[m, n] = -sum_k |x[m, k] - w[n, k]| (+ bias[n]); x (M, K), w (N, K), y (M, N), row-major."""
    rows = tl.program_id(0) * TILE + tl.arange(0, TILE)
    cols = tl.program_id(1) * TILE + tl.arange(0, TILE)
    acc = tl.zeros((TILE, TILE), dtype=tl.float32)
    for k0 in range(0, K, DEPTH):
        ks = k0 + tl.arange(0, DEPTH)
        # Masked entries load 0 on both sides: |0 - 0| adds nothing.
        a = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        b = tl.load(w_ptr + cols[:, None] * K + ks[None, :], mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0)
        diff = a.to(tl.float32)[:, None, :] - b.to(tl.float32)[None, :, :]  # (TILE, TILE, DEPTH)
        acc += tl.sum(tl.abs(diff), axis=2)
    y = -acc
    if HAS_BIAS:
        y += tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], y, mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def _l1_input_grad_kernel(g_ptr, x_ptr, w_ptr, gx_ptr, M, N, K, TILE: tl.constexpr, DEPTH: tl.constexpr):
    """gx[m, k] = sum_n clamp(w[n, k] - x[m, k], -1, 1) * g[m, n]; g (M, N), x (M, K), w (N, K)."""
    rows = tl.program_id(0) * TILE + tl.arange(0, TILE)
    ks = tl.program_id(1) * TILE + tl.arange(0, TILE)
    x_mask = (rows[:, None] < M) & (ks[None, :] < K)
    x = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=x_mask, other=0.0).to(tl.float32)
    acc = tl.zeros((TILE, TILE), dtype=tl.float32)
    for n0 in range(0, N, DEPTH):
        ns = n0 + tl.arange(0, DEPTH)
        # Masked outputs n load g = 0: they add nothing.
        g = tl.load(g_ptr + rows[:, None] * N + ns[None, :], mask=(rows[:, None] < M) & (ns[None, :] < N), other=0.0)
        w = tl.load(w_ptr + ns[:, None] * K + ks[None, :], mask=(ns[:, None] < N) & (ks[None, :] < K), other=0.0)
        slope = tl.clamp(w.to(tl.float32)[None, :, :] - x[:, None, :], -1.0, 1.0)  # (TILE, DEPTH, TILE)
        acc += tl.sum(slope * g.to(tl.float32)[:, :, None], axis=1)
    tl.store(gx_ptr + rows[:, None] * K + ks[None, :], acc.to(gx_ptr.dtype.element_ty), mask=x_mask)


@triton.jit
def _conv_forward_kernel(x_ptr, w_ptr, y_ptr, S, steps, BC, C, K, padding,
                         BLOCK_T: tl.constexpr, BLOCK_BC: tl.constexpr):
    """y[t, bc] = -sum_j |x[t + j - padding, bc] - w[bc % C, j]| over taps inside [0, S)."""
    ts = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = tl.program_id(1) * BLOCK_BC + tl.arange(0, BLOCK_BC)
    channels = cols % C
    acc = tl.zeros((BLOCK_T, BLOCK_BC), dtype=tl.float32)
    for j in range(0, K):
        source = ts + j - padding
        inside = ((source >= 0) & (source < S) & (ts < steps))[:, None] & (cols < BC)[None, :]
        x = tl.load(x_ptr + source[:, None] * BC + cols[None, :], mask=inside, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + channels * K + j, mask=cols < BC, other=0.0).to(tl.float32)
        acc += tl.where(inside, tl.abs(x - w[None, :]), 0.0)
    tl.store(y_ptr + ts[:, None] * BC + cols[None, :], -acc, mask=(ts < steps)[:, None] & (cols < BC)[None, :])


@triton.jit
def _conv_input_grad_kernel(g_ptr, x_ptr, w_ptr, gx_ptr, S, steps, BC, C, K, padding,
                            BLOCK_T: tl.constexpr, BLOCK_BC: tl.constexpr):
    """gx[s, bc] = sum_j clamp(w[bc % C, j] - x[s, bc], -1, 1) * g[s - j + padding, bc] over t inside [0, steps)."""
    ss = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = tl.program_id(1) * BLOCK_BC + tl.arange(0, BLOCK_BC)
    channels = cols % C
    x_mask = (ss < S)[:, None] & (cols < BC)[None, :]
    x = tl.load(x_ptr + ss[:, None] * BC + cols[None, :], mask=x_mask, other=0.0).to(tl.float32)
    acc = tl.zeros((BLOCK_T, BLOCK_BC), dtype=tl.float32)
    for j in range(0, K):
        target = ss - j + padding
        inside = ((target >= 0) & (target < steps))[:, None] & x_mask
        g = tl.load(g_ptr + target[:, None] * BC + cols[None, :], mask=inside, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + channels * K + j, mask=cols < BC, other=0.0).to(tl.float32)
        acc += tl.clamp(w[None, :] - x, -1.0, 1.0) * g  # g = 0 outside
    tl.store(gx_ptr + ss[:, None] * BC + cols[None, :], acc.to(gx_ptr.dtype.element_ty), mask=x_mask)


@triton.jit
def _conv_weight_grad_kernel(g_ptr, x_ptr, w_ptr, partial_ptr, S, steps, BC, C, K, padding,
                             BLOCK_T: tl.constexpr, BLOCK_BC: tl.constexpr):
    """partial[tile, bc, j] = sum_{t in tile} (x[t + j - padding, bc] - w[bc % C, j]) * g[t, bc] over taps inside."""
    tile = tl.program_id(0)
    ts = tile * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = tl.program_id(1) * BLOCK_BC + tl.arange(0, BLOCK_BC)
    channels = cols % C
    g_mask = (ts < steps)[:, None] & (cols < BC)[None, :]
    g = tl.load(g_ptr + ts[:, None] * BC + cols[None, :], mask=g_mask, other=0.0).to(tl.float32)
    for j in range(0, K):
        source = ts + j - padding
        inside = ((source >= 0) & (source < S))[:, None] & g_mask
        x = tl.load(x_ptr + source[:, None] * BC + cols[None, :], mask=inside, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + channels * K + j, mask=cols < BC, other=0.0).to(tl.float32)
        part = tl.sum(tl.where(inside, (x - w[None, :]) * g, 0.0), axis=0)  # (BLOCK_BC,)
        tl.store(partial_ptr + (tile * BC + cols) * K + j, part, mask=cols < BC)


def _check(*tensors: Tensor) -> None:
    """Contiguous, one dtype among TRITON_DTYPES, and small enough for the kernels' 32-bit offsets."""
    for t in tensors:
        if not t.is_contiguous() or t.dtype not in TRITON_DTYPES or t.dtype != tensors[0].dtype or t.numel() >= 2**31:
            raise ValueError(
                f"Triton add kernels take contiguous tensors of one dtype among {TRITON_DTYPES} and under 2^31 elements, "
                f"got {t.dtype} {tuple(t.shape)}"
            )


def add_linear_forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """-sum_i |x[n, i] - weight[o, i]| (+ bias[o]): x (N, in), weight (out, in), bias (out,) -> (N, out) float32."""
    _check(x, weight, *([] if bias is None else [bias]))
    (M, K), N = x.shape, weight.shape[0]
    y = torch.empty(M, N, dtype=torch.float32, device=x.device)
    if y.numel():
        grid = (triton.cdiv(M, TILE), triton.cdiv(N, TILE))
        _l1_forward_kernel[grid](x, weight, y if bias is None else bias, y, M, N, K, HAS_BIAS=bias is not None,
                                 TILE=TILE, DEPTH=DEPTH, num_warps=4)
    return y


def add_linear_input_grad(grad: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """sum_o clamp(weight[o, i] - x[n, i], -1, 1) * grad[n, o]: (N, out), (N, in), (out, in) -> (N, in)."""
    _check(grad, x, weight)
    (M, K), N = x.shape, weight.shape[0]
    grad_x = torch.empty_like(x)
    if grad_x.numel():
        grid = (triton.cdiv(M, TILE), triton.cdiv(K, TILE))
        _l1_input_grad_kernel[grid](grad, x, weight, grad_x, M, N, K, TILE=TILE, DEPTH=DEPTH, num_warps=4)
    return grad_x


def add_conv_forward(x: Tensor, weight: Tensor, steps: int, padding: int) -> Tensor:
    """Masked add convolution: x (S, B, C), weight (C, K) -> (steps, B, C) float32; see add_conv.py."""
    _check(x, weight)
    S, B, C = x.shape
    y = torch.empty(steps, B, C, dtype=torch.float32, device=x.device)
    if y.numel():
        grid = (triton.cdiv(steps, CONV_STEPS), triton.cdiv(B * C, CONV_COLUMNS))
        _conv_forward_kernel[grid](x, weight, y, S, steps, B * C, C, weight.shape[1], padding,
                                   BLOCK_T=CONV_STEPS, BLOCK_BC=CONV_COLUMNS, num_warps=4)
    return y


def add_conv_backward(grad: Tensor, x: Tensor, weight: Tensor, padding: int) -> tuple[Tensor, Tensor]:
    """AdderNet gradients of add_conv_forward: grad (steps, B, C) -> (grad_x (S, B, C), grad_weight (C, K))."""
    _check(grad, x, weight)
    S, B, C = x.shape
    steps, K = grad.shape[0], weight.shape[1]
    grad_x = torch.empty_like(x)
    if grad_x.numel() == 0 or steps == 0:
        return grad_x.zero_(), torch.zeros_like(weight)
    grid = (triton.cdiv(S, CONV_STEPS), triton.cdiv(B * C, CONV_COLUMNS))
    _conv_input_grad_kernel[grid](grad, x, weight, grad_x, S, steps, B * C, C, K, padding,
                                  BLOCK_T=CONV_STEPS, BLOCK_BC=CONV_COLUMNS, num_warps=4)
    # One float32 partial sum per (time tile, column, tap), reduced over tiles and batch here:
    # deterministic, unlike atomic adds.
    tiles = triton.cdiv(steps, CONV_STEPS)
    partial = torch.empty(tiles, B * C, K, dtype=torch.float32, device=x.device)
    grid = (tiles, triton.cdiv(B * C, CONV_COLUMNS))
    _conv_weight_grad_kernel[grid](grad, x, weight, partial, S, steps, B * C, C, K, padding,
                                   BLOCK_T=CONV_STEPS, BLOCK_BC=CONV_COLUMNS, num_warps=4)
    grad_weight = partial.view(tiles * B, C, K).sum(0).to(weight.dtype)
    return grad_x, grad_weight
