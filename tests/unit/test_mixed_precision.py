"""float16/bfloat16 on CPU: every operator forward and backward against float32 (models: test_supernet.py).

On CPU the add operators compute half-precision operands in float32 and round the results once
(under autocast they keep float32 results), so where nothing else rounds (AddLinear, AddConv1d
without the softmax) the half results must equal the float32 results on the same (exactly
upcast) operands, cast to the half dtype, bit for bit. Elsewhere torch's own half-precision ops round along the way (softmax, GEMMs, sums over a
head's channels), and results must be within 4 ulps of the dtype (2^-8 for float16, 2^-5 for
bfloat16) relative to each entry and to the largest entry. Power-of-two weights are exact.
"""
from __future__ import annotations

import copy

import pytest
import torch

from fairseq_shiftadd.modules import AddConv1d, AddLinear, ShiftLinear, power_of_two
from fairseq_shiftadd.modules.lightweight_branch import BRANCH_KINDS, LightweightBranches
from fairseq_shiftadd.modules.operator_linear import OperatorLinear

HALF = [torch.float16, torch.bfloat16]
ULP = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def within_ulps(actual, expected, dtype, ulps=4):
    """actual, of dtype, within `ulps` ulps of that dtype of expected, relative to each entry and to the largest one."""
    assert actual.dtype == dtype
    rtol = ulps * ULP[dtype]
    torch.testing.assert_close(actual.float(), expected.float(), rtol=rtol, atol=rtol * expected.abs().max().item())


def float32_twin(module):
    """A float32 copy of module holding exactly its (half-precision) values."""
    return copy.deepcopy(module).float()


def run_half_and_float32(module, dtype, x_shape, *args):
    """module cast to dtype and its float32 twin, each run forward and backward on the same values.

    Returns (half module, twin, (y, x.grad) in dtype, (y, x.grad) of the twin).
    """
    half = module.to(dtype)
    twin = float32_twin(half)
    x = torch.randn(x_shape).to(dtype).requires_grad_()
    x32 = x.detach().float().requires_grad_()
    y, y32 = half(x, *args), twin(x32, *args)
    grad = torch.randn_like(y)
    y.backward(grad)
    y32.backward(grad.float())
    return half, twin, (y.detach(), x.grad), (y32.detach(), x32.grad)


@pytest.mark.parametrize("dtype", HALF)
def test_add_linear_half_is_float32_rounded_once(backend, dtype):
    torch.manual_seed(0)
    layer, twin, half, full = run_half_and_float32(AddLinear(37, 21, bias=True), dtype, (3, 5, 37))
    for actual, expected in zip(half, full):  # output, input gradient
        assert torch.equal(actual, expected.to(dtype))
    assert torch.equal(layer.weight.grad, twin.weight.grad.to(dtype))
    assert torch.equal(layer.bias.grad, twin.bias.grad.to(dtype))


def test_add_linear_under_autocast_takes_bfloat16_operands(backend):
    """As F.linear under autocast, float32 parameters and input are used in bfloat16; the result stays float32."""
    torch.manual_seed(1)
    layer = AddLinear(16, 9, bias=True)
    rounded = float32_twin(layer.to(torch.bfloat16))
    layer.float()
    x = torch.randn(6, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    grad = torch.randn(6, 9).to(torch.bfloat16).float()
    y.backward(grad)
    y_ref = rounded(x.to(torch.bfloat16).float())
    y_ref.backward(grad)
    assert y.dtype == torch.float32 and torch.equal(y, y_ref)
    assert layer.weight.grad.dtype == torch.float32
    assert torch.equal(layer.weight.grad, rounded.weight.grad.to(torch.bfloat16).float())


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("padding", ["same", "causal"])
def test_add_conv_half_is_float32_rounded_once(backend, dtype, padding):
    torch.manual_seed(3)
    conv, twin, half, full = run_half_and_float32(AddConv1d(2, 5, padding, weight_softmax=False), dtype, (9, 3, 8))
    for actual, expected in zip(half, full):  # output, input gradient
        assert torch.equal(actual, expected.to(dtype))
    within_ulps(conv.weight.grad, twin.weight.grad, dtype)  # the repeat over a head's channels sums in dtype


def powers_of_two_or_zero(weight):
    magnitude = weight[weight != 0].abs().double()
    return bool(torch.equal(torch.exp2(torch.log2(magnitude).round()), magnitude))


@pytest.mark.parametrize("dtype", HALF)
def test_power_of_two_half_rounds_as_float32(dtype):
    torch.manual_seed(4)
    exponents = torch.randint(-17, 4, (20000,)).float()
    weight = (torch.randn(20000) * torch.exp2(exponents)).to(dtype)
    ties = torch.exp2(torch.arange(-14, 0) + 0.5).to(dtype)  # nearest-representable |w| at the rounding boundary
    weight = torch.cat([weight, ties, -ties, torch.tensor([0.0, 3e4, -3e4], dtype=dtype)]).requires_grad_()
    rounded = power_of_two(weight)
    assert rounded.dtype == dtype
    assert torch.equal(rounded, power_of_two(weight.detach().float()).to(dtype))
    assert powers_of_two_or_zero(rounded)
    rounded.backward(torch.arange(weight.numel(), dtype=dtype))
    assert torch.equal(weight.grad, torch.arange(weight.numel(), dtype=dtype))  # straight-through


SMALLEST_SUBNORMAL = {torch.float16: 2.0**-24, torch.bfloat16: 2.0**-133}


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("weight_bits", [5, 6])
@pytest.mark.parametrize("parametrization", ["latent", "deepshift-ps"])
def test_shift_linear_half_weights_are_exact_powers_of_two(dtype, weight_bits, parametrization):
    """Exact where the dtype holds the power of two; 0 below its smallest subnormal (6-bit shifts below -24 in float16)."""
    torch.manual_seed(5)
    shift = ShiftLinear(40, 30, weight_bits=weight_bits, parametrization=parametrization)
    layer, twin, half, full = run_half_and_float32(shift, dtype, (7, 40))
    weight, weight32 = layer.effective_weight(), twin.effective_weight()
    assert torch.equal(weight, weight32.to(dtype)) and powers_of_two_or_zero(weight)
    underflow = (weight == 0) & (weight32 != 0)
    assert torch.equal(underflow, (weight32 != 0) & (weight32.abs() < SMALLEST_SUBNORMAL[dtype]))
    if (dtype, weight_bits, parametrization) == (torch.float16, 6, "deepshift-ps"):
        assert underflow.any()  # shifts are uniform in [-30, 0]
    for actual, expected in zip(half, full):  # output, input gradient
        within_ulps(actual, expected, dtype)
    trained = "weight" if parametrization == "latent" else "shift"
    within_ulps(getattr(layer, trained).grad, getattr(twin, trained).grad, dtype)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", BRANCH_KINDS)
def test_lightweight_branches_half(dtype, kind):
    torch.manual_seed(6)
    branches = LightweightBranches(16, BRANCH_KINDS, kernel_size=3, causal=True, heads=2, weight_sharing="plain").eval()
    _, _, half, full = run_half_and_float32(branches, dtype, (6, 2, 16), kind)
    for actual, expected in zip(half, full):  # output, input gradient
        within_ulps(actual, expected, dtype)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("sharing", ["none", "plain", "heterogeneous"])
def test_operator_linear_half(dtype, sharing):
    torch.manual_seed(7)
    linear = OperatorLinear(24, 12, ["mult", "shift", "add"], sharing).to(dtype)
    twin = float32_twin(linear)
    x = torch.randn(5, 24).to(dtype)
    for operator in ("mult", "shift", "add"):
        within_ulps(linear(x, operator, 10), twin(x.float(), operator, 10), dtype)
