"""N-bit fixed point: integer reference paths against the fake-quantised float paths, bit for bit."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fairseq_shiftadd.errors import InvalidInput
from fairseq_shiftadd.modules.add_conv import AddConv1d
from fairseq_shiftadd.modules.lightweight_branch import ElasticLightweightConv
from fairseq_shiftadd.modules.quantize import (
    InputQuantizer, QuantOptions, add_layer, integer_l1, integer_shift_sum, rounding_shift, shift_linear, to_grid,
)
from fairseq_shiftadd.modules.shift_linear import ShiftLinear


def quantizers(bits: int, input_range: float) -> tuple[InputQuantizer, InputQuantizer]:
    """A calibrated float-path quantiser and its integer-path twin (same running range), in eval."""
    pair = []
    for integer in (False, True):
        q = InputQuantizer(QuantOptions(bits, integer=integer)).eval()
        q.running_range.fill_(input_range)
        pair.append(q)
    return pair[0], pair[1]


def test_rounding_shift_is_round_half_up_on_negative_numbers_too() -> None:
    x = torch.tensor([-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5, 6, 7], dtype=torch.int32)
    expected = [int((v + 2) // 4) for v in x.tolist()]  # floor(v / 4 + 1/2) in Python integers
    assert rounding_shift(x, 2).tolist() == expected
    assert rounding_shift(x, 0).tolist() == x.tolist()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("parametrization", ["latent", "deepshift-ps"])
def test_integer_shift_layer_equals_the_fake_quantised_float_path_bit_for_bit(seed: int, parametrization: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    rows, fan_in, fan_out = (int(v) for v in torch.randint(1, 80, (3,), generator=gen))
    bits = [4, 8, 8, 8, 12, 6][seed]
    torch.manual_seed(seed)
    layer = ShiftLinear(fan_in, fan_out, parametrization=parametrization)
    x = torch.randn(rows, fan_in, generator=gen) * float(torch.rand((), generator=gen) * 4 + 0.1)
    float_q, int_q = quantizers(bits, float(x.abs().max()) * 0.8)  # some inputs clip
    weight = layer.effective_weight()
    y_float = shift_linear(x, weight, layer.bias, float_q)
    y_int = shift_linear(x, weight, layer.bias, int_q)
    assert torch.equal(y_float, y_int)
    # independent check of the integer sum itself: Python integers, one tap at a time
    x_int = to_grid(x, float_q.scale(x), float_q.options).to(torch.int64)
    k = torch.where(weight != 0, -torch.log2(weight.abs()), 0.0).round().to(torch.int64)  # sign 0: no tap
    for n, o in [(0, 0), (rows - 1, fan_out - 1)]:
        total = sum(int(torch.sign(weight[o, i])) * ((int(x_int[n, i]) + ((1 << int(k[o, i])) >> 1)) >> int(k[o, i])) for i in range(fan_in))
        assert integer_shift_sum(x_int.to(torch.int32), weight)[n, o] == total


@pytest.mark.parametrize("seed", range(6))
def test_integer_add_layer_equals_the_fake_quantised_float_path_bit_for_bit(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    rows, fan_in, fan_out = (int(v) for v in torch.randint(1, 80, (3,), generator=gen))
    bits = [8, 8, 4, 8, 10, 3][seed]
    x = torch.randn(rows, fan_in, generator=gen) * 3
    weight = torch.randn(fan_out, fan_in, generator=gen) * float(torch.rand((), generator=gen) * 5)
    bias = torch.randn(fan_out, generator=gen)
    float_q, int_q = quantizers(bits, float(x.abs().max()))
    y_float = add_layer(x, weight, bias, float_q)
    y_int = add_layer(x, weight, bias, int_q)
    assert torch.equal(y_float, y_int)
    scale = torch.maximum(float_q.running_range, weight.abs().max()) / (2 ** (bits - 1) - 1)
    x_int = torch.round(x / scale).clamp(-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1).to(torch.int32)
    w_int = torch.round(weight / scale).clamp(-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1).to(torch.int32)
    assert torch.equal(integer_l1(x_int, w_int), -(x_int[:, None].to(torch.int64) - w_int).abs().sum(-1).to(torch.int32))


@pytest.mark.parametrize("padding", ["same", "causal"])
def test_integer_add_conv_equals_the_fake_quantised_float_path_and_decodes_incrementally(padding: str) -> None:
    torch.manual_seed(0)
    conv = AddConv1d(2, 5, padding, quant=QuantOptions(8)).eval()
    conv.quant["input"].running_range.fill_(2.5)
    x = torch.randn(9, 3, 8) * 2
    y_float = conv(x)
    conv_int = AddConv1d(2, 5, padding, quant=QuantOptions(8, integer=True)).eval()
    conv_int.load_state_dict(conv.state_dict())
    assert torch.equal(y_float, conv_int(x))
    float_conv = AddConv1d(2, 5, padding).eval()
    float_conv.weight.data.copy_(conv.weight)
    assert not torch.equal(y_float, float_conv(x))  # quantisation changes the result
    if padding == "causal":
        state: dict = {}
        steps = [conv_int(x[t : t + 1], incremental_state=state) for t in range(x.shape[0])]
        assert torch.equal(torch.cat(steps), y_float)
    # Left-padded in a batch, the last sequence's real steps compute what they compute alone, on both paths.
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[2, :4] = True
    for path in (conv, conv_int):
        assert torch.equal(path(x, padding_mask=mask)[4:, 2], path(x[4:, 2:3])[:, 0])
    assert torch.equal(conv(x, padding_mask=mask), conv_int(x, padding_mask=mask))


@pytest.mark.parametrize("causal", [False, True])
def test_lightweight_conv_taps_multiply_on_the_8_bit_grid_and_decode_incrementally(causal: bool) -> None:
    """LightConv (the ``conv`` branch) on an 8-bit input: every output is s / q times an integer sum of
    x_int * round(q * softmax(w)), zero-padded as fairseq pads, in the full pass and step by step."""
    torch.manual_seed(0)
    taps, heads, channels, q, s = 5, 2, 8, 127, 0.05
    padding = taps - 1 if causal else taps // 2
    conv = ElasticLightweightConv(channels, taps, padding, heads, 0.0, QuantOptions(8)).double().eval()
    x_int = torch.randint(-q, q + 1, (9, 3, channels), dtype=torch.int64)
    y = conv(x_int.double() * s)
    taps_int = torch.round(F.softmax(conv.weight.detach().view(heads, taps), -1) * q).to(torch.int64)
    padded = F.pad(x_int, (0, 0, 0, 0, padding, taps - 1 - padding))
    expected = torch.zeros_like(x_int)
    for t in range(x_int.shape[0]):
        for c in range(channels):
            expected[t, :, c] = (padded[t : t + taps, :, c] * taps_int[c // (channels // heads), :, None]).sum(0)
    tap_scale = float(torch.tensor(1.0 / q))  # the grid's scale is a float32 number
    torch.testing.assert_close(y, expected.double() * s * tap_scale, rtol=0, atol=1e-12)
    float_conv = ElasticLightweightConv(channels, taps, padding, heads, 0.0, QuantOptions()).double().eval()
    float_conv.load_state_dict(conv.state_dict())
    assert not torch.allclose(float_conv(x_int.double() * s), y)  # the taps really are quantised
    if causal:
        state: dict = {}
        steps = [conv(x_int[t : t + 1].double() * s, incremental_state=state) for t in range(x_int.shape[0])]
        torch.testing.assert_close(torch.cat(steps), y, rtol=0, atol=1e-12)


def test_fake_quantisation_trains_with_straight_through_gradients() -> None:
    torch.manual_seed(0)
    layer = ShiftLinear(16, 8)
    quantizer = InputQuantizer(QuantOptions(8, grad_bits=8)).train()
    x = torch.randn(5, 16, requires_grad=True)
    shift_linear(x, layer.effective_weight(), layer.bias, quantizer).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and layer.weight.grad.abs().sum() > 0
    assert quantizer.running_range == x.detach().abs().max()


@pytest.mark.parametrize("kwargs, flag", [
    ({"bits": 0}, "--quant-bits"), ({"bits": 1}, "--quant-bits"), ({"bits": 33}, "--quant-bits"),
    ({"bits": 8, "grad_bits": 1}, "--quant-grad-bits"), ({"integer": True}, "--quant-integer"),
])
def test_bad_quantisation_options_are_one_clear_line(kwargs: dict, flag: str) -> None:
    with pytest.raises(InvalidInput, match=flag) as error:
        QuantOptions(**kwargs)
    assert "\n" not in str(error.value)
