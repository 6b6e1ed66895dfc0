"""ShiftLinear in both parametrisations (latent / DeepShift-PS), from_linear and power_of_two against hand references."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairseq_shiftadd.modules import ShiftLinear, power_of_two

DTYPES = [torch.float32, torch.float64]


def allowed(weight_bits):
    low = -(2 ** (weight_bits - 1) - 2)
    return {0.0} | {s * 2.0**k for s in (1.0, -1.0) for k in range(low, 1)}


def reference_weight(shift, sign, low):
    """Elementwise: sign(round(sign)) * 2^round(clamp(shift, low, 0)), with Python's round (half to even)."""
    out = torch.empty_like(shift)
    for index in range(shift.numel()):
        s, g = shift.view(-1)[index].item(), sign.view(-1)[index].item()
        rounded_sign = float(round(g) > 0) - float(round(g) < 0)
        out.view(-1)[index] = rounded_sign * 2.0 ** round(min(max(s, low), 0.0))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(7,), (3, 5), (5, 3)])  # tokens; batch-first; time-first
def test_forward_backward(dtype, lead):
    torch.manual_seed(0)
    layer = ShiftLinear(9, 5, parametrization="deepshift-ps").to(dtype)
    with torch.no_grad():
        layer.shift[0, 0] = 3.0  # clamped to 0
        layer.shift[0, 1] = -20.0  # clamped to -14
    weight = layer.effective_weight()
    expected = reference_weight(layer.shift.detach(), layer.sign.detach(), -14)
    torch.testing.assert_close(weight, expected, rtol=0, atol=0)
    assert set(weight.flatten().tolist()) <= allowed(5)

    x = torch.randn(*lead, 9, dtype=dtype, requires_grad=True)
    grad = torch.randn(*lead, 5, dtype=dtype)
    y = layer(x)
    torch.testing.assert_close(y, x.detach() @ expected.t() + layer.bias.detach())
    y.backward(grad)
    grad_weight = grad.reshape(-1, 5).t() @ x.detach().reshape(-1, 9)  # dL/dW of the effective weight
    torch.testing.assert_close(x.grad, grad @ expected)
    # straight-through: W = sign_q * 2^shift_q, identity through rounding/clamping
    torch.testing.assert_close(layer.shift.grad, grad_weight * expected * math.log(2.0))
    magnitude = reference_weight(layer.shift.detach(), torch.ones_like(expected), -14)  # 2^shift_q
    torch.testing.assert_close(layer.sign.grad, grad_weight * magnitude)
    torch.testing.assert_close(layer.bias.grad, grad.reshape(-1, 5).sum(0))


def test_effective_weight_slice():
    torch.manual_seed(1)
    layer = ShiftLinear(8, 6, weight_bits=4, parametrization="deepshift-ps")
    sliced = layer.effective_weight(4, 5)
    torch.testing.assert_close(sliced, layer.effective_weight()[:4, :5], rtol=0, atol=0)
    assert set(layer.effective_weight().flatten().tolist()) <= allowed(4)
    sliced.sum().backward()
    assert layer.shift.grad[4:].abs().sum() == 0 and layer.shift.grad[:, 5:].abs().sum() == 0
    assert layer.sign.grad[:4, :5].abs().sum() > 0
    with pytest.raises(ValueError, match="out_features"):
        layer.effective_weight(7, 5)
    with pytest.raises(ValueError, match="in_features"):
        layer.effective_weight(4, 0)


@pytest.mark.parametrize("parametrization", ["latent", "deepshift-ps"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_linear_roundtrip(dtype, parametrization):
    torch.manual_seed(2)
    linear = nn.Linear(6, 4).to(dtype)
    with torch.no_grad():
        linear.weight[0, :3] = torch.tensor([0.0, 3.0, -1e-9], dtype=dtype)
    layer = ShiftLinear.from_linear(linear, parametrization=parametrization)
    expected = torch.tensor(
        [[math.copysign(2.0 ** round(math.log2(min(max(abs(w), 2.0**-14), 1.0))), w) if w else 0.0 for w in row] for row in linear.weight.tolist()],
        dtype=dtype,
    )
    assert expected[0, :3].tolist() == [0.0, 1.0, -(2.0**-14)]
    torch.testing.assert_close(layer.effective_weight(), expected, rtol=0, atol=0)
    torch.testing.assert_close(power_of_two(linear.weight), expected, rtol=0, atol=0)
    torch.testing.assert_close(layer.bias, linear.bias)
    x = torch.randn(3, 6, dtype=dtype)
    torch.testing.assert_close(layer(x), F.linear(x, expected, linear.bias))


@pytest.mark.parametrize("dtype", DTYPES)
def test_latent_forward_backward(dtype):
    """latent: W = sign(w) * 2^round(log2 clamp(|w|, 2^-14, 1)), gradient straight through to w."""
    torch.manual_seed(4)
    layer = ShiftLinear(9, 5).to(dtype)
    assert layer.parametrization == "latent" and not hasattr(layer, "shift")
    with torch.no_grad():
        layer.weight[0, :3] = torch.tensor([5.0, 1e-9, -0.3], dtype=dtype)
    expected = torch.tensor(
        [[math.copysign(2.0 ** round(math.log2(min(max(abs(w), 2.0**-14), 1.0))), w) for w in row] for row in layer.weight.tolist()],
        dtype=dtype,
    )
    assert expected[0, :3].tolist() == [1.0, 2.0**-14, -0.25]
    torch.testing.assert_close(layer.effective_weight(), expected, rtol=0, atol=0)
    torch.testing.assert_close(layer.effective_weight(4, 5), expected[:4, :5], rtol=0, atol=0)
    x = torch.randn(7, 9, dtype=dtype, requires_grad=True)
    grad = torch.randn(7, 5, dtype=dtype)
    y = layer(x)
    torch.testing.assert_close(y, x.detach() @ expected.t() + layer.bias.detach())
    y.backward(grad)
    torch.testing.assert_close(layer.weight.grad, grad.t() @ x.detach())
    torch.testing.assert_close(x.grad, grad @ expected)


def test_latent_learns_faster_than_deepshift_ps():
    """One Adam step at lr 1e-3 changes many of a latent layer's weights and almost none of a PS layer's: a PS
    exponent moves 1e-3 per step and needs ~0.5 to change, only signs near 0 flip (docs/operators.md)."""
    changed = {}
    for parametrization in ("latent", "deepshift-ps"):
        torch.manual_seed(5)
        layer = ShiftLinear(256, 512, parametrization=parametrization)
        if parametrization == "deepshift-ps":
            with torch.no_grad():  # away from rounding boundaries, as after any training
                layer.shift.copy_(layer.shift.round() + 0.25)
        before = layer.effective_weight().detach().clone()
        optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3)
        layer(torch.randn(64, 256)).pow(2).mean().backward()
        optimizer.step()
        changed[parametrization] = (layer.effective_weight() != before).float().mean().item()
    assert changed["deepshift-ps"] < 0.002
    assert changed["latent"] > 10 * changed["deepshift-ps"]


def test_upgrade_deepshift_ps_checkpoint_to_latent():
    """A PS state dict loads into a latent layer with the same effective weight (fairseq's upgrade hook)."""
    torch.manual_seed(6)
    old = ShiftLinear(6, 4, parametrization="deepshift-ps")
    state = {f"layer.{k}": v.clone() for k, v in old.state_dict().items()}
    new = ShiftLinear(6, 4)
    new.upgrade_state_dict_named(state, "layer")
    assert sorted(state) == ["layer.bias", "layer.weight"]
    new.load_state_dict({k.removeprefix("layer."): v for k, v in state.items()})
    torch.testing.assert_close(new.effective_weight(), old.effective_weight(), rtol=0, atol=0)
    x = torch.randn(3, 6)
    torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)


@pytest.mark.parametrize("weight_bits", [2, 3, 5, 8])
def test_power_of_two_values_and_straight_through_gradient(weight_bits):
    torch.manual_seed(3)
    weight = (torch.randn(50) * 2).requires_grad_()
    rounded = power_of_two(weight, weight_bits)
    assert set(rounded.tolist()) <= allowed(weight_bits)
    assert torch.equal(torch.sign(rounded), torch.sign(weight.detach()))
    rounded.backward(torch.arange(50.0))
    torch.testing.assert_close(weight.grad, torch.arange(50.0))


def test_bad_input():
    for bits in (0, 1, 33):
        with pytest.raises(ValueError, match="weight_bits"):
            ShiftLinear(3, 3, weight_bits=bits)
        with pytest.raises(ValueError, match="weight_bits"):
            power_of_two(torch.ones(2), bits)
        with pytest.raises(ValueError, match="weight_bits"):
            ShiftLinear.from_linear(nn.Linear(2, 2), weight_bits=bits)
    with pytest.raises(ValueError, match="in_features"):
        ShiftLinear(0, 3)
    with pytest.raises(ValueError, match="out_features"):
        ShiftLinear(3, 0)
    with pytest.raises(ValueError, match="in_features=3"):
        ShiftLinear(3, 2)(torch.randn(4, 2))
    with pytest.raises(ValueError, match="parametrization"):
        ShiftLinear(3, 2, parametrization="q")
