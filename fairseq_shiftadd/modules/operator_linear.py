"""One linear layer position whose operator (mult, shift or add) is chosen per call.

The three ``--weight-sharing`` modes of the paper's ablation live here and nowhere else:

* ``none``: every operator owns its weights (an ``nn.Linear``, a ``ShiftLinear``, an AdderNet
  ``AddLinear``, the last two parametrised by the :class:`OperatorRecipe`), what the public NLP
  code does;
* ``plain``: one float tensor; shift rounds it to powers of two, add uses it as is;
* ``heterogeneous``: as ``plain``, but add uses T(w) (:class:`LaplaceTransform`) and reports a KL
  regulariser towards a Laplacian.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..op_record import OpRecord
from ..space import OPERATORS, WEIGHT_SHARING_MODES
from .add_linear import AddLinear
from .elastic import elastic_linear
from .laplace_transform import LaplaceTransform
from .operator_recipe import OperatorRecipe
from .quantize import QuantOptions, Quantizers, add_layer, mult_linear, shift_linear
from .shift_linear import ShiftLinear, power_of_two


class OperatorLinear(nn.Module):
    """A linear position with elastic sizes and a per-call operator.

    Args:
        in_features / out_features: the largest sizes.
        operators: the operators this position can run (a standalone subnet passes one).
        weight_sharing: ``none``, ``plain`` or ``heterogeneous``.
        recipe: how ``none`` parametrises its shift and add layers (shared modes use the shared weight).
        quant: fixed-point options; each operator quantises its own input (quantize.py).
    """

    def __init__(
        self, in_features: int, out_features: int, operators: Sequence[str], weight_sharing: str = "none",
        recipe: OperatorRecipe = OperatorRecipe(), quant: QuantOptions = QuantOptions(),
    ):
        super().__init__()
        if weight_sharing not in WEIGHT_SHARING_MODES:
            raise ValueError(f"weight_sharing must be one of {WEIGHT_SHARING_MODES}, got {weight_sharing!r}")
        unknown = [op for op in operators if op not in OPERATORS]
        if unknown:
            raise ValueError(f"operators must be among mult, shift, add; got {unknown[0]!r}")
        self.operators = tuple(operators)
        self.weight_sharing = weight_sharing
        self.quant = Quantizers(quant, self.operators)
        if weight_sharing == "none":
            makers = {
                "mult": lambda: nn.Linear(in_features, out_features),
                "shift": lambda: ShiftLinear(in_features, out_features, parametrization=recipe.shift_parametrization),
                "add": lambda: AddLinear(in_features, out_features, bias=True, gain=recipe.add_gain(in_features)),
            }
            self.ops = nn.ModuleDict({op: makers[op]() for op in self.operators})
        else:
            self.shared = nn.Linear(in_features, out_features)
            if weight_sharing == "heterogeneous" and "add" in self.operators:
                self.laplace = LaplaceTransform(self.shared.weight)

    def forward(self, x: Tensor, operator: str, out_features: int) -> Tensor:
        """x: (..., in) with in <= in_features; returns (..., out_features)."""
        quantizer = self.quant.site(operator)
        if self.weight_sharing == "none":
            layer = self.ops[operator]
            if operator == "mult":
                return elastic_linear(x, layer, out_features, quantizer)
            bias = layer.bias[:out_features] if layer.bias is not None else None
            if operator == "shift":
                return shift_linear(x, layer.effective_weight(out_features, x.size(-1)), bias, quantizer)
            return add_layer(x, layer.subtracted_weight(out_features, x.size(-1)), bias, quantizer, layer.eta)
        weight = self.shared.weight[:out_features, : x.size(-1)]
        bias = self.shared.bias[:out_features]
        if operator == "mult":
            return mult_linear(x, weight, bias, quantizer)
        if operator == "shift":
            return shift_linear(x, power_of_two(weight), bias, quantizer)
        return add_layer(x, self.add_weight(weight), bias, quantizer)

    @torch.no_grad()
    def load_shared(self, source: "OperatorLinear") -> None:
        """Take the weights of ``source``, this position under plain or heterogeneous sharing, into this
        ``none`` layer, which then computes what ``source`` computes: mult takes the shared weight, shift
        its DeepShift-Q rounding (:meth:`ShiftLinear.from_linear`), add the weight ``source`` subtracts
        (T(w) under heterogeneous sharing) over this layer's gain."""
        if self.weight_sharing != "none" or source.weight_sharing == "none":
            raise ValueError(f"load_shared takes a shared layer into a 'none' one, not {source.weight_sharing!r} into {self.weight_sharing!r}")
        shared = source.shared
        for operator, layer in self.ops.items():
            if operator == "mult":
                layer.load_state_dict(shared.state_dict())
            elif operator == "shift":
                layer.load_state_dict(ShiftLinear.from_linear(shared, layer.weight_bits, layer.parametrization).state_dict())
            else:
                layer.weight.copy_(source.add_weight(shared.weight) / layer.weight_gain)
                layer.bias.copy_(shared.bias)

    def add_weight(self, weight: Tensor) -> Tensor:
        """The weight an add operator uses: T(w) under heterogeneous sharing, w otherwise."""
        return self.laplace(weight) if hasattr(self, "laplace") else weight

    def regularization(self, operator: str, in_features: int, out_features: int) -> Tensor | None:
        """The KL term of heterogeneous sharing for the active slice, when add is active."""
        if operator != "add" or not hasattr(self, "laplace"):
            return None
        weight = self.shared.weight[:out_features, :in_features]
        return LaplaceTransform.kl_to_laplace(self.laplace(weight))

    def cost_ops(self, name: str, layer: str, operator: str, tokens: int, in_features: int, out_features: int) -> OpRecord:
        params = in_features * out_features + out_features
        return OpRecord.linear(name, layer, operator, tokens, in_features, out_features, params)
