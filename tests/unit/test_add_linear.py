"""AddLinear against an independent broadcast reference, incl. AdderNet's backward and eta rescaling."""
import math

import pytest
import torch

from fairseq_shiftadd.modules import AddLinear, add_linear
from fairseq_shiftadd.modules.add_linear import _l1_forward, _l1_input_grad

DTYPES = [torch.float32, torch.float64]


TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def reference(x, weight, bias, eta):
    """Naive (N, out, in) broadcast whose autograd gives AdderNet's gradients:
    value -|x - w|; d/dx = -clamp(x - w, -1, 1) (Huber slope); d/dw = x - w (quadratic slope)."""
    value = -(x[..., None, :] - weight).abs().sum(-1)
    d = x[..., None, :] - weight.detach()
    surrogate_x = -torch.where(d.abs() <= 1, 0.5 * d**2, d.abs() - 0.5)
    surrogate_w = -0.5 * (x.detach()[..., None, :] - weight) ** 2
    surrogate = (surrogate_x + surrogate_w).sum(-1)
    y = value.detach() + surrogate - surrogate.detach()
    return y if bias is None else y + bias


def rescale(grad_w, eta):
    return grad_w * eta * math.sqrt(grad_w.numel()) / grad_w.norm()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(13,), (5, 3), (3, 5)])  # tokens; batch-first (B, T); time-first (T, B)
@pytest.mark.parametrize("sizes", [(7, 3), (37, 45), (270, 260)])  # edge tiles; > one 256-deep block
def test_forward_backward_match_reference(backend, dtype, lead, sizes):
    torch.manual_seed(0)
    in_features, out_features = sizes
    layer = AddLinear(in_features, out_features, bias=True).to(dtype)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(*lead, in_features, dtype=dtype, requires_grad=True)
    grad = torch.randn(*lead, out_features, dtype=dtype)
    y = layer(x)
    y.backward(grad)

    x_ref = x.detach().clone().requires_grad_()
    w_ref = layer.weight.detach().clone().requires_grad_()
    b_ref = layer.bias.detach().clone().requires_grad_()
    y_ref = reference(x_ref, w_ref, b_ref, 0.2)
    y_ref.backward(grad)
    assert y.shape == (*lead, out_features)
    tol = TOL[dtype]
    torch.testing.assert_close(y, y_ref, rtol=tol["rtol"], atol=tol["atol"] * in_features)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)
    torch.testing.assert_close(layer.weight.grad, rescale(w_ref.grad, 0.2), **tol)
    torch.testing.assert_close(layer.bias.grad, b_ref.grad, **tol)
    assert layer.weight.grad.norm().item() == pytest.approx(0.2 * math.sqrt(in_features * out_features), rel=1e-6)


def test_hand_computed_values():
    x = torch.tensor([[1.0, -2.0]], requires_grad=True)
    weight = torch.tensor([[0.5, 0.0], [3.0, -2.5]], requires_grad=True)
    y = add_linear(x, weight, eta=1.0)
    torch.testing.assert_close(y, torch.tensor([[-2.5, -2.5]]))  # -(0.5 + 2), -(2 + 0.5)
    y.backward(torch.tensor([[1.0, 2.0]]))
    # dx = sum_o clamp(w - x, -1, 1) g = [-0.5*1 + 1*2, 1*1 + -0.5*2]
    torch.testing.assert_close(x.grad, torch.tensor([[1.5, 0.0]]))
    raw = torch.tensor([[0.5, -2.0], [-4.0, 1.0]])  # (x - w) * g
    torch.testing.assert_close(weight.grad, raw * 2.0 / raw.norm())


def test_sliced_noncontiguous_weight_and_input(backend):
    torch.manual_seed(1)
    full = torch.randn(9, 11, requires_grad=True)
    x = torch.randn(8, 6).t()  # (6, 8), non-contiguous
    x.requires_grad_()
    y = add_linear(x, full[:5, :8])
    y.sum().backward()
    x_ref = x.detach().contiguous().requires_grad_()
    w_ref = full.detach()[:5, :8].clone().requires_grad_()
    reference(x_ref, w_ref, None, 0.2).sum().backward()
    torch.testing.assert_close(y, reference(x_ref, w_ref, None, 0.2).detach())
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(full.grad[:5, :8], rescale(w_ref.grad, 0.2))
    assert full.grad[5:].abs().sum() == 0 and full.grad[:, 8:].abs().sum() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_matches_fallback(kernels, dtype):
    torch.manual_seed(2)
    x, weight = torch.randn(70, 300, dtype=dtype), torch.randn(90, 300, dtype=dtype)
    bias, grad = torch.randn(90, dtype=dtype), torch.randn(70, 90, dtype=dtype)
    tol = TOL[dtype]
    torch.testing.assert_close(_l1_forward(x, weight, bias, "cpp"), _l1_forward(x, weight, bias, "torch"), rtol=tol["rtol"], atol=tol["atol"] * 300)
    torch.testing.assert_close(_l1_input_grad(grad, x, weight, "cpp"), _l1_input_grad(grad, x, weight, "torch"), **tol)


def test_bad_input():
    layer = AddLinear(4, 3)
    with pytest.raises(ValueError, match="in_features=4"):
        layer(torch.randn(2, 5))
    with pytest.raises(ValueError, match="in_features"):
        AddLinear(0, 3)
    with pytest.raises(ValueError, match="out_features"):
        AddLinear(3, -1)
    with pytest.raises(ValueError, match="bias"):
        add_linear(torch.randn(2, 4), torch.randn(3, 4), torch.randn(4))


def test_gain_scales_the_subtracted_weight_and_old_checkpoints_load_with_gain_one():
    torch.manual_seed(7)
    layer = AddLinear(16, 8, bias=True, gain=4.0)
    x = torch.randn(5, 16)
    torch.testing.assert_close(layer(x), reference(x, 4.0 * layer.weight.detach(), layer.bias.detach(), 0.2))
    torch.testing.assert_close(layer.subtracted_weight(3, 7), 4.0 * layer.weight.detach()[:3, :7])
    old_state = {k: v for k, v in layer.state_dict().items() if k != "weight_gain"}  # saved before the gain existed
    layer.upgrade_state_dict_named(old_state, "")
    layer.load_state_dict(old_state)
    assert float(layer.weight_gain) == 1.0
    torch.testing.assert_close(layer(x), reference(x, layer.weight.detach(), layer.bias.detach(), 0.2))
    with pytest.raises(ValueError, match="gain"):
        AddLinear(3, 3, gain=0.0)
