"""AddConv1d against an independent loop reference: values, AdderNet gradients, incremental decoding."""

import pytest
import torch

from fairseq_shiftadd.modules import AddConv1d
from fairseq_shiftadd.modules.add_conv import _conv_backward, _conv_forward

DTYPES = [torch.float32, torch.float64]


def reference(x, raw_weight, padding, weight_softmax=True):
    """Loop over output steps and taps; taps outside the sequence are skipped. Autograd of the
    surrogate gives AdderNet's gradients: d/dx = -clamp(x - w, -1, 1), d/dw = x - w."""
    steps, _, channels = x.shape
    heads, kernel_size = raw_weight.shape
    weight = torch.softmax(raw_weight, -1) if weight_softmax else raw_weight
    per_channel = torch.stack([weight[c // (channels // heads)] for c in range(channels)])  # (C, K)
    p = kernel_size - 1 if padding == "causal" else kernel_size // 2
    outputs = []
    for t in range(steps):
        value = surrogate = 0
        for j in range(kernel_size):
            s = t + j - p
            if 0 <= s < steps:
                d = x[s] - per_channel[:, j]
                value = value - d.abs().detach()
                dx = x[s] - per_channel[:, j].detach()
                huber = torch.where(dx.abs() <= 1, 0.5 * dx**2, dx.abs() - 0.5)
                surrogate = surrogate - huber - 0.5 * (x[s].detach() - per_channel[:, j]) ** 2
        outputs.append(value + surrogate - surrogate.detach())
    return torch.stack(outputs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", ["same", "causal"])
@pytest.mark.parametrize("shape", [(7, 3, 6, 3, 5), (2, 2, 4, 2, 5), (9, 2, 70, 2, 3)])  # T, B, C, heads, K
def test_matches_reference(backend, dtype, padding, shape):
    torch.manual_seed(0)
    steps, batch, channels, heads, kernel_size = shape
    conv = AddConv1d(heads, kernel_size, padding).to(dtype)
    x = torch.randn(steps, batch, channels, dtype=dtype, requires_grad=True)
    grad = torch.randn(steps, batch, channels, dtype=dtype)
    y = conv(x)
    y.backward(grad)
    x_ref = x.detach().clone().requires_grad_()
    w_ref = conv.weight.detach().clone().requires_grad_()
    y_ref = reference(x_ref, w_ref, padding)
    y_ref.backward(grad)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad)


def test_batch_first_input_transposed_and_no_softmax():
    torch.manual_seed(1)
    conv = AddConv1d(2, 3, "same", weight_softmax=False)
    x_bf = torch.randn(4, 6, 8)  # (B, T, C) as a batch-first caller holds it
    y = conv(x_bf.transpose(0, 1))  # non-contiguous (T, B, C)
    torch.testing.assert_close(y, reference(x_bf.transpose(0, 1), conv.weight, "same", weight_softmax=False).detach())


@pytest.mark.parametrize("padding", ["same", "causal"])
def test_padded_steps_count_as_outside_the_sequence_values_and_gradients(backend, padding):
    """A sequence left-padded in a batch (pads hold garbage) gives the values and AdderNet gradients
    of the same sequence alone: a padded step's taps contribute nothing, as taps outside x."""
    torch.manual_seed(5)
    conv = AddConv1d(2, 5, padding).double()
    alone = torch.randn(4, 1, 6, dtype=torch.float64, requires_grad=True)
    garbage = torch.randn(3, 1, 6, dtype=torch.float64)
    padded = torch.cat([garbage, alone.detach()]).requires_grad_()
    mask = torch.tensor([[True] * 3 + [False] * 4])
    grad = torch.randn(4, 1, 6, dtype=torch.float64)
    conv(alone).backward(grad)
    w_grad_alone, conv.weight.grad = conv.weight.grad, None
    y = conv(padded, padding_mask=mask)
    y[3:].backward(grad)
    torch.testing.assert_close(y[3:], conv(alone))
    torch.testing.assert_close(conv.weight.grad, w_grad_alone)
    torch.testing.assert_close(padded.grad[3:], alone.grad)
    assert torch.equal(padded.grad[:3], torch.zeros_like(garbage))


def test_hand_computed_values():
    conv = AddConv1d(1, 3, "causal", weight_softmax=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    x = torch.tensor([1.0, 5.0, -1.0]).view(3, 1, 1)
    # t=0: |1-3|; t=1: |1-2| + |5-3|; t=2: |1-1| + |5-2| + |-1-3|
    torch.testing.assert_close(conv(x).flatten(), torch.tensor([-2.0, -3.0, -7.0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_size", [1, 4, 7])
def test_incremental_equals_full_causal(backend, dtype, kernel_size):
    torch.manual_seed(2)
    conv = AddConv1d(4, kernel_size, "causal").to(dtype).eval()
    x = torch.randn(11, 3, 8, dtype=dtype)
    full = conv(x)
    state = {}
    steps = torch.cat([conv(x[t : t + 1], incremental_state=state) for t in range(11)])
    if backend == "kernel":  # same arithmetic in the same order: bitwise equal
        assert torch.equal(steps, full)
    else:
        torch.testing.assert_close(steps, full)


def test_reorder_incremental_state(backend):
    torch.manual_seed(3)
    conv = AddConv1d(2, 3, "causal").eval()
    x = torch.randn(6, 3, 4)
    order = torch.tensor([2, 0, 0])
    state = {}
    for t in range(3):
        conv(x[t : t + 1], incremental_state=state)
    conv.reorder_incremental_state(state, order)
    after = torch.cat([conv(x[t : t + 1], incremental_state=state) for t in range(3, 6)])
    history = torch.cat([x[:3, order], x[3:]])
    torch.testing.assert_close(after, conv(history)[3:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps,padding", [(13, 7), (13, 3), (1, 2)])  # causal, same, one incremental step
def test_kernel_matches_fallback(kernels, dtype, steps, padding):
    torch.manual_seed(4)
    x, weight = torch.randn(13 if steps > 1 else 6, 5, 75, dtype=dtype), torch.rand(75, 8, dtype=dtype)
    grad = torch.randn(steps, 5, 75, dtype=dtype)
    torch.testing.assert_close(_conv_forward(x, weight, steps, padding, "cpp"), _conv_forward(x, weight, steps, padding, "torch"))
    for kernel, fallback in zip(_conv_backward(grad, x, weight, padding, "cpp"), _conv_backward(grad, x, weight, padding, "torch")):
        torch.testing.assert_close(kernel, fallback)


def test_bad_input():
    with pytest.raises(ValueError, match="kernel_size"):
        AddConv1d(2, 4, "same")
    with pytest.raises(ValueError, match="padding"):
        AddConv1d(2, 3, "valid")
    with pytest.raises(ValueError, match="num_heads"):
        AddConv1d(0, 3)
    with pytest.raises(ValueError, match="channels"):
        AddConv1d(3, 3)(torch.randn(5, 2, 8))
    with pytest.raises(ValueError, match="padding='causal'"):
        AddConv1d(2, 3, "same")(torch.randn(1, 2, 4), incremental_state={})
    with pytest.raises(ValueError, match="x must be"):
        AddConv1d(2, 3)(torch.randn(5, 4))
