"""The FFN of each operator at initialisation: what it adds to the residual stream."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fairseq_shiftadd.modules.feed_forward import FeedForward
from fairseq_shiftadd.modules.operator_recipe import OperatorRecipe


def output_std(operator: str, recipe: OperatorRecipe, seed: int = 0) -> float:
    torch.manual_seed(seed)
    ffn = FeedForward(256, 512, [operator], "none", 0.0, recipe).eval()
    x = F.layer_norm(torch.randn(32, 8, 256), (256,))  # a post-LayerNorm residual stream
    with torch.no_grad():
        return float(ffn(x, operator, 512).std())


def test_the_linear_output_gain_starts_an_add_ffn_at_a_multiplication_ffns_scale() -> None:
    mult = output_std("mult", OperatorRecipe())
    assert output_std("add", OperatorRecipe(add_output_gain="linear")) == pytest.approx(mult, rel=0.1)
    assert output_std("add", OperatorRecipe(add_output_gain="unit")) == pytest.approx(1.0, rel=0.01)
    assert mult == pytest.approx(18**-0.5, rel=0.1)  # the closed form the recipe uses
