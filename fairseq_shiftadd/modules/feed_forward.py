"""The position-wise feed-forward network with a searchable operator (mult, shift or add)."""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..op_record import OpRecord
from .elastic import elastic_layer_norm, scaled_dropout
from .operator_linear import OperatorLinear
from .operator_recipe import OperatorRecipe
from .quantize import QuantOptions


class FeedForward(nn.Module):
    """fc1 -> ReLU -> dropout -> fc2, both linears of the chosen operator.

    An add layer's output is -sum|x - w|: all negative and growing with the fan-in, so ReLU would
    zero it. As AdderNet follows every adder layer with BatchNorm, the add FFN normalises each
    adder output (LayerNorm, the Transformer's normaliser) before the nonlinearity and the residual;
    the recipe sets the second LayerNorm's initial gain (its share of the residual stream).

    Args:
        embed_dim / ffn_dim: the largest sizes.
        operators: the FFN operators this position can run.
        recipe: how shift and add layers are parametrised.
        quant: fixed-point options of both linears.
    """

    def __init__(
        self, embed_dim: int, ffn_dim: int, operators: Sequence[str], weight_sharing: str, activation_dropout: float,
        recipe: OperatorRecipe = OperatorRecipe(), quant: QuantOptions = QuantOptions(),
    ):
        super().__init__()
        self.fc1 = OperatorLinear(embed_dim, ffn_dim, operators, weight_sharing, recipe, quant)
        self.fc2 = OperatorLinear(ffn_dim, embed_dim, operators, weight_sharing, recipe, quant)
        if "add" in operators:
            self.add_norm1 = nn.LayerNorm(ffn_dim)
            self.add_norm2 = nn.LayerNorm(embed_dim)
            nn.init.constant_(self.add_norm2.weight, recipe.add_output_norm_gain())
        self.max_ffn_dim = ffn_dim
        self.activation_dropout = activation_dropout

    def forward(self, x: Tensor, operator: str, ffn_dim: int) -> Tensor:
        """x: (T, B, d) -> (T, B, d)."""
        embed_dim = x.size(-1)
        h = self.fc1(x, operator, ffn_dim)
        if operator == "add":
            h = elastic_layer_norm(h, self.add_norm1)
        h = scaled_dropout(F.relu(h), self.activation_dropout, ffn_dim, self.max_ffn_dim, self.training)
        y = self.fc2(h, operator, embed_dim)
        return elastic_layer_norm(y, self.add_norm2) if operator == "add" else y

    def regularization(self, operator: str, embed_dim: int, ffn_dim: int) -> list[Tensor]:
        terms = [self.fc1.regularization(operator, embed_dim, ffn_dim), self.fc2.regularization(operator, ffn_dim, embed_dim)]
        return [t for t in terms if t is not None]

    def cost_ops(self, prefix: str, layer: str, operator: str, tokens: int, embed_dim: int, ffn_dim: int) -> list[OpRecord]:
        return [
            self.fc1.cost_ops(f"{prefix}.fc1", layer, operator, tokens, embed_dim, ffn_dim),
            self.fc2.cost_ops(f"{prefix}.fc2", layer, operator, tokens, ffn_dim, embed_dim),
        ]
