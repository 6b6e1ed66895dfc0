"""The lightweight (convolution-like) branches of the search space: conv, add and shiftadd.

Each branch is linear1 -> operator -> linear2 over the channels it is given (all of them in a
single-branch block, half of them in an ``attn+X`` block):

* ``conv``: fairseq's LightweightConv (Wu et al. 2019), the multiplication baseline;
* ``add``: :class:`AddConv1d`, the same temporal filter with -|x - w| instead of x * w;
* ``shiftadd``: a shift linear (d -> d) before the add convolution (ShiftAddNAS).

Under ``plain``/``heterogeneous`` weight sharing the branches of one layer position share
linear1/linear2 (they are multiplication layers in every branch); under ``none`` each owns them.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from fairseq.modules.lightweight_convolution import LightweightConv1dTBC
from torch import Tensor, nn

from ..op_record import OpRecord
from .add_conv import AddConv1d
from .elastic import elastic_linear
from .operator_recipe import OperatorRecipe
from .quantize import QuantizedTaps, QuantOptions, Quantizers, fake_quantize_input, shift_linear
from .shift_linear import ShiftLinear

BRANCH_KINDS = ("conv", "add", "shiftadd")
WEIGHT_DROPOUT = 0.03  # default DropConnect on the temporal filters, as in LightConv


class ElasticLightweightConv(LightweightConv1dTBC):
    """fairseq's LightweightConv1dTBC for any channel count its heads divide, optionally N-bit.

    Its filters are per head and shared across the head's channels, so no parameter depends on
    the channel count; fairseq only asserts it, and we set it from the input. With ``quant``
    enabled its softmax taps sit on the fixed N-bit grid 1 / q (:class:`QuantizedTaps`); the
    caller quantises the input.
    """

    def __init__(self, dim: int, kernel_size: int, padding_l: int, heads: int, weight_dropout: float, quant: QuantOptions):
        super().__init__(dim, kernel_size, padding_l, heads, weight_dropout, weight_softmax=True)
        if quant.enabled:
            self.weight_dropout_module = QuantizedTaps(self.weight_dropout_module, quant)

    def forward(self, x: Tensor, incremental_state=None, unfold: bool = False) -> Tensor:
        self.input_size = x.size(-1)
        return super().forward(x, incremental_state, unfold)


class LightweightBranches(nn.Module):
    """The lightweight branches one layer position can run.

    Args:
        dim: largest channel count the branch sees.
        kinds: the branches available here (a standalone subnet passes one).
        kernel_size: temporal filter size K.
        causal: decoder (pad K-1 on the left) or encoder ("same" padding).
        heads: filter heads (fixed per model, so channels stay elastic).
        weight_sharing: ``none`` or a sharing mode (linear1/linear2 shared across kinds).
        recipe: how the shiftadd branch's shift layer is parametrised, and whether the add filters
            skip padded steps (``add_conv_padding``).
        quant: fixed-point options of the linears, the shift layer and the filters.
        weight_dropout: DropConnect probability on the temporal filters while training.
    """

    def __init__(
        self, dim: int, kinds: Sequence[str], kernel_size: int, causal: bool, heads: int, weight_sharing: str,
        recipe: OperatorRecipe = OperatorRecipe(), quant: QuantOptions = QuantOptions(),
        weight_dropout: float = WEIGHT_DROPOUT,
    ):
        super().__init__()
        self.kinds = tuple(kinds)
        self.heads = heads
        self.kernel_size = kernel_size
        self.causal = causal
        self.mask_padded_add_taps = recipe.add_conv_padding == "masked"
        owners = ["shared"] if weight_sharing != "none" else list(self.kinds)
        self.linear1 = nn.ModuleDict({owner: nn.Linear(dim, dim) for owner in owners})
        self.linear2 = nn.ModuleDict({owner: nn.Linear(dim, dim) for owner in owners})
        padding_l = kernel_size - 1 if causal else kernel_size // 2
        filters = {
            "conv": lambda: ElasticLightweightConv(dim, kernel_size, padding_l, heads, weight_dropout, quant),
            "add": lambda: AddConv1d(heads, kernel_size, "causal" if causal else "same", True, weight_dropout, quant),
        }
        self.filters = nn.ModuleDict({kind: filters["conv" if kind == "conv" else "add"]() for kind in self.kinds})
        if "shiftadd" in self.kinds:
            self.shift = ShiftLinear(dim, dim, parametrization=recipe.shift_parametrization)
        self.quant = Quantizers(quant, ("linear1", "shift", "conv", "linear2"))

    @torch.no_grad()
    def load_shared(self, source: "LightweightBranches") -> None:
        """Take the shared input and output linears of ``source``, these branches under plain or
        heterogeneous sharing, as each kind's own (this module's ``none`` layout). Filters and the
        shift layer have one layout in every mode; they load by name."""
        if "shared" in self.linear1 or "shared" not in source.linear1:
            raise ValueError("load_shared takes shared branches into 'none' ones")
        for kind in self.kinds:
            self.linear1[kind].load_state_dict(source.linear1["shared"].state_dict())
            self.linear2[kind].load_state_dict(source.linear2["shared"].state_dict())

    def _owner(self, kind: str) -> str:
        return "shared" if "shared" in self.linear1 else kind

    def forward(
        self, x: Tensor, kind: str, padding_mask: Optional[Tensor] = None, incremental_state=None
    ) -> Tensor:
        """x: (T, B, C) -> (T, B, C); ``padding_mask`` (B, T) zeroes padded steps before the filter."""
        dim, quant = x.size(-1), self.quant.site
        h = elastic_linear(x, self.linear1[self._owner(kind)], dim, quant("linear1"))
        if kind == "shiftadd":
            h = shift_linear(h, self.shift.effective_weight(dim, dim), self.shift.bias[:dim], quant("shift"))
        if padding_mask is not None:
            h = h.masked_fill(padding_mask.transpose(0, 1).unsqueeze(-1), 0.0)
        if kind == "conv" and quant("conv") is not None:  # the filter's taps quantise themselves
            h = fake_quantize_input(h, quant("conv"))
        if kind != "conv" and self.mask_padded_add_taps:  # a zeroed step's tap adds -|0 - w|, not nothing
            h = self.filters[kind](h, incremental_state=incremental_state, padding_mask=padding_mask)
        else:
            h = self.filters[kind](h, incremental_state=incremental_state)
        return elastic_linear(h, self.linear2[self._owner(kind)], dim, quant("linear2"))

    def cost_ops(self, prefix: str, layer: str, kind: str, tokens: int, dim: int) -> list[OpRecord]:
        linear_params = dim * dim + dim
        ops = [OpRecord.linear(f"{prefix}.linear1", layer, "mult", tokens, dim, dim, linear_params)]
        if kind == "shiftadd":
            ops.append(OpRecord.linear(f"{prefix}.shift", layer, "shift", tokens, dim, dim, linear_params))
        k = self.kernel_size
        ops.append(
            OpRecord(
                f"{prefix}.{'conv' if kind == 'conv' else 'add_conv'}", layer, "mult" if kind == "conv" else "add",
                "conv", n=dim, c=1, m=1, h=tokens + k - 1, e=tokens, r=k, params=self.heads * k,
            )
        )
        ops.append(OpRecord.linear(f"{prefix}.linear2", layer, "mult", tokens, dim, dim, linear_params))
        return ops
