"""The Triton add kernels, run by Triton's interpreter on CPU tensors, against the C++ kernels and naive references.

Tolerances, per result dtype, against float64 references on the same (exactly upcast) inputs.
Forward results are float32 (the accumulator): rtol 1e-5 plus the float32 accumulation's own
error, atol 1e-6 per reduced term. Gradients come in the input dtype, rounded once from float32:
within half an ulp for float16 (rtol 2^-11, with a 25% margin) and a whole ulp for bfloat16
(rtol 2^-7, 25% margin) because the interpreter truncates float32 to bfloat16 where GPUs round to
nearest, plus the same atol. Through the layers, torch's own half-precision steps add roundings
(the filters' repeat over channels, the weight gradient's GEMM): there results must be within 4
ulps of the dtype (1e-5 for float32), relative to each entry and to the largest entry.
"""
import importlib
import math

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (the gpu extra; make test installs it)")

from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from fairseq_shiftadd.modules import AddConv1d, AddLinear, kernels_available, triton_add  # noqa: E402
from fairseq_shiftadd.modules.add_conv import _conv_backward, _conv_forward  # noqa: E402
from fairseq_shiftadd.modules.add_linear import _l1_forward, _l1_input_grad  # noqa: E402

assert isinstance(triton_add._l1_forward_kernel, InterpretedFunction), "TRITON_INTERPRET=1 must be set before triton is imported (conftest.py)"

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
RTOL = {torch.float32: 1e-5, torch.float16: 1.25 * 2**-11, torch.bfloat16: 1.25 * 2**-7}
LAYER_RTOL = {torch.float32: 1e-5, torch.float16: 4 * 2**-10, torch.bfloat16: 4 * 2**-7}
needs_cpp = pytest.mark.skipif(not kernels_available(), reason="C++ kernels could not be built")


def close(actual, expected, dtype, terms):
    """actual, of dtype, within RTOL[dtype] and 1e-6 per reduced term of the float64 expected value."""
    assert actual.dtype == dtype
    torch.testing.assert_close(actual.double(), expected.double(), rtol=RTOL[dtype], atol=1e-6 * terms)


def layer_close(actual, expected, dtype):
    """actual within LAYER_RTOL[dtype] of expected, relative to each entry and to the largest one."""
    assert actual.dtype == dtype
    rtol = LAYER_RTOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=rtol * expected.abs().max().item())


def operands(dtype, *shapes, uniform=False):
    """Random tensors rounded to dtype, each with its float64 copy (exact)."""
    tensors = [(torch.rand(shape) if uniform else torch.randn(shape)).to(dtype) for shape in shapes]
    return tensors, [t.double() for t in tensors]


def naive_linear(x, weight, bias, grad):
    """Broadcast (N, out, in) forward and input gradient."""
    y = -(x[:, None, :] - weight).abs().sum(-1) + bias
    grad_x = ((weight[None] - x[:, None, :]).clamp(-1, 1) * grad[:, :, None]).sum(1)
    return y, grad_x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,in_features,out_features", [(37, 45, 70), (1, 3, 1), (33, 9, 32)])
def test_linear_kernels_match_naive_and_cpp(dtype, rows, in_features, out_features):
    torch.manual_seed(0)
    (x, weight, bias, grad), wide = operands(dtype, (rows, in_features), (out_features, in_features), (out_features,), (rows, out_features))
    y_ref, grad_x_ref = naive_linear(*wide)
    y = triton_add.add_linear_forward(x, weight, bias)
    grad_x = triton_add.add_linear_input_grad(grad, x, weight)
    close(y, y_ref, torch.float32, in_features)
    close(grad_x, grad_x_ref, dtype, out_features)
    close(triton_add.add_linear_forward(x, weight, None), y_ref - wide[2], torch.float32, in_features)
    if kernels_available():  # the C++ kernel in float32 on the same inputs
        x32, w32, b32, g32 = (t.float() for t in (x, weight, bias, grad))
        close(y, _l1_forward(x32, w32, b32, "cpp"), torch.float32, in_features)
        close(grad_x, _l1_input_grad(g32, x32, w32, "cpp"), dtype, out_features)


def naive_conv(x, weight, grad, padding):
    """Loops over output steps and taps (inside the sequence only): forward and both AdderNet gradients."""
    source, kernel_size, steps = x.shape[0], weight.shape[1], grad.shape[0]
    y = torch.zeros(steps, *x.shape[1:], dtype=x.dtype)
    grad_x, grad_w = torch.zeros_like(x), torch.zeros_like(weight)
    for t in range(steps):
        for j in range(kernel_size):
            s = t + j - padding
            if 0 <= s < source:
                diff = x[s] - weight[:, j]
                y[t] -= diff.abs()
                grad_x[s] += (-diff).clamp(-1, 1) * grad[t]
                grad_w[:, j] += (diff * grad[t]).sum(0)
    return y, grad_x, grad_w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("source,steps,padding", [(13, 13, 6), (13, 13, 3), (3, 1, 4)])  # causal, same, one step
def test_conv_kernels_match_naive_and_cpp(dtype, source, steps, padding):
    torch.manual_seed(1)
    batch, channels, kernel_size = 3, 37, 7
    (x, weight, grad), wide = operands(dtype, (source, batch, channels), (channels, kernel_size), (steps, batch, channels))
    y_ref, grad_x_ref, grad_w_ref = naive_conv(*wide, padding)
    y = triton_add.add_conv_forward(x, weight, steps, padding)
    grad_x, grad_w = triton_add.add_conv_backward(grad, x, weight, padding)
    close(y, y_ref, torch.float32, kernel_size)
    close(grad_x, grad_x_ref, dtype, kernel_size)
    close(grad_w, grad_w_ref, dtype, steps * batch)
    if kernels_available():
        x32, w32, g32 = (t.float() for t in (x, weight, grad))
        close(y, _conv_forward(x32, w32, steps, padding, "cpp"), torch.float32, kernel_size)
        for actual, expected, terms in zip((grad_x, grad_w), _conv_backward(g32, x32, w32, padding, "cpp"), (kernel_size, steps * batch)):
            close(actual, expected, dtype, terms)


def test_kernels_reject_mixed_dtypes():
    with pytest.raises(ValueError, match="one dtype"):
        triton_add.add_linear_forward(torch.randn(2, 3), torch.randn(4, 3, dtype=torch.float16), None)
    with pytest.raises(ValueError, match="one dtype"):
        triton_add.add_conv_forward(torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64), 2, 1)


@pytest.fixture
def triton_backend(monkeypatch):
    """Route the operators through the Triton kernels (interpreted) for CPU tensors."""
    for module in ("fairseq_shiftadd.modules.add_linear", "fairseq_shiftadd.modules.add_conv"):
        monkeypatch.setattr(importlib.import_module(module), "select_backend", lambda *tensors: "triton")


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_linear_layer_on_triton(triton_backend, dtype):
    """The autograd function on the Triton path: forward, HardTanh input gradient, eta-rescaled weight gradient."""
    torch.manual_seed(2)
    layer = AddLinear(19, 11, bias=True).to(dtype)
    x = torch.randn(2, 5, 19, dtype=dtype, requires_grad=True)
    grad = torch.randn(2, 5, 11, dtype=dtype)
    layer(x).backward(grad)
    x64, w64, b64, g64 = (t.detach().double().reshape(-1, t.shape[-1]) for t in (x, layer.weight, layer.bias[None], grad))
    y_ref, grad_x_ref = naive_linear(x64, w64, b64[0], g64)
    raw_w = g64.t() @ x64 - w64 * g64.sum(0)[:, None]
    layer_close(layer(x).detach().reshape(-1, 11), y_ref, dtype)
    layer_close(x.grad.reshape(-1, 19), grad_x_ref, dtype)
    layer_close(layer.weight.grad, raw_w * 0.2 * math.sqrt(raw_w.numel()) / raw_w.norm(), dtype)
    layer_close(layer.bias.grad, g64.sum(0), dtype)

@pytest.mark.parametrize("dtype", DTYPES)
def test_add_conv_layer_on_triton(triton_backend, dtype):
    torch.manual_seed(3)
    conv = AddConv1d(2, 5, "causal", weight_softmax=False).to(dtype)
    x = torch.randn(6, 2, 8, dtype=dtype, requires_grad=True)
    grad = torch.randn(6, 2, 8, dtype=dtype)
    y = conv(x)
    y.backward(grad)
    per_channel = conv.weight.detach().double().repeat_interleave(4, dim=0)
    y_ref, grad_x_ref, grad_w_ref = naive_conv(x.detach().double(), per_channel, grad.double(), 4)
    layer_close(y.detach(), y_ref, dtype)
    layer_close(x.grad, grad_x_ref, dtype)
    layer_close(conv.weight.grad, grad_w_ref.view(2, 4, 5).sum(1), dtype)


def test_eta_rescaling_runs_in_float32(triton_backend):
    """On Triton the weight gradient is a float16 GEMM; its norm overflows float16 (65504), the rescaling does not."""
    torch.manual_seed(2)
    layer = AddLinear(64, 32).to(torch.float16)
    x = torch.randn(128, 64).to(torch.float16)
    grad = (torch.randn(128, 32) * 256).to(torch.float16)  # as scaled by a loss scale of 2^8
    layer(x).backward(grad)
    raw = grad.double().t() @ x.double() - layer.weight.detach().double() * grad.double().sum(0)[:, None]
    assert raw.abs().max().item() < 65504 < raw.norm().item()  # a float16 norm would be inf, the gradient 0
    expected = raw * 0.2 * math.sqrt(raw.numel()) / raw.norm()
    layer_close(layer.weight.grad, expected, torch.float16)
