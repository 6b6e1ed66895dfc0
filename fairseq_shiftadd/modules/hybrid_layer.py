"""Hybrid encoder and decoder layers: one class per side serves the supernet and standalone subnets.

A layer is built with the candidates of its position (all of the space's for the supernet, the
chosen one for a standalone subnet) at their largest sizes, and each call receives a
:class:`LayerChoice` saying which block, FFN operator and sizes to run. Post-norm residual blocks
as in Transformer-base and HAT.

Blocks: ``attn`` (self-attention), ``conv``/``add``/``shiftadd`` (one lightweight branch over all
channels) and ``attn+X`` (Lite Transformer's two branches: the first half of the channels goes to
attention, the second half to branch X, outputs concatenated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..op_record import OpRecord
from ..space import block_branch, block_has_attention
from .elastic import elastic_layer_norm, scaled_dropout
from .elastic_attention import ElasticAttention
from .feed_forward import FeedForward
from .lightweight_branch import BRANCH_KINDS, WEIGHT_DROPOUT, LightweightBranches
from .operator_recipe import OperatorRecipe
from .quantize import QuantOptions


@dataclass(frozen=True)
class LayerChoice:
    """What one layer runs: its block, FFN operator and sizes (heads of self/cross attention)."""

    block: str
    ffn_type: str
    ffn_dim: int
    heads: int
    ende_heads: int = 0
    ende_attn: int = -1

    @property
    def attended_encoder_layers(self) -> int:
        """Arbitrary encoder-decoder attention: -1 -> last layer, k -> last k+1 layers."""
        return 1 if self.ende_attn == -1 else self.ende_attn + 1


@dataclass(frozen=True)
class LayerOptions:
    """Hyper-parameters shared by every layer of a model."""

    weight_sharing: str = "none"
    lightweight_heads: int = 4
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    recipe: OperatorRecipe = OperatorRecipe()
    quant: QuantOptions = QuantOptions()
    weight_dropout: float = WEIGHT_DROPOUT


class HybridLayer(nn.Module):
    """Token mixing (attention / lightweight branch / both) followed by the FFN.

    Args:
        embed_dim, ffn_dim: largest sizes at this position.
        blocks, ffn_types: the candidates at this position.
        kernel_size: the lightweight filters' K at this position.
        causal: decoder layers mix causally.
    """

    def __init__(
        self,
        embed_dim: int,
        ffn_dim: int,
        blocks: Sequence[str],
        ffn_types: Sequence[str],
        kernel_size: int,
        causal: bool,
        options: LayerOptions,
    ):
        super().__init__()
        self.max_embed_dim = embed_dim
        self.options = options
        if any(block_has_attention(block) for block in blocks):
            self.self_attn = ElasticAttention(embed_dim, embed_dim, options.attention_dropout, options.quant)
        kinds = [kind for kind in BRANCH_KINDS if any(block_branch(block) == kind for block in blocks)]
        if kinds:
            self.branches = LightweightBranches(
                embed_dim, kinds, kernel_size, causal, options.lightweight_heads, options.weight_sharing, options.recipe,
                options.quant, options.weight_dropout,
            )
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.ffn = FeedForward(
            embed_dim, ffn_dim, ffn_types, options.weight_sharing, options.activation_dropout, options.recipe, options.quant
        )
        self.final_layer_norm = nn.LayerNorm(embed_dim)
        self.causal = causal

    def _dropout(self, x: Tensor) -> Tensor:
        return scaled_dropout(x, self.options.dropout, x.size(-1), self.max_embed_dim, self.training)

    def mix(self, x: Tensor, choice: LayerChoice, padding_mask: Optional[Tensor], incremental_state=None) -> Tensor:
        """Token mixing of ``choice.block``; x: (T, B, d) -> (T, B, d)."""
        branch = block_branch(choice.block)
        if not block_has_attention(choice.block):
            return self.branches(x, branch, padding_mask, incremental_state)
        if branch is None:
            return self.self_attn(x, x, choice.heads, padding_mask, self.causal, incremental_state)
        half = x.size(-1) // 2
        attended = x[..., :half]
        attention = self.self_attn(attended, attended, choice.heads, padding_mask, self.causal, incremental_state)
        return torch.cat([attention, self.branches(x[..., half:], branch, padding_mask, incremental_state)], dim=-1)

    def residual_mix(self, x: Tensor, choice: LayerChoice, padding_mask: Optional[Tensor], incremental_state=None) -> Tensor:
        return elastic_layer_norm(x + self._dropout(self.mix(x, choice, padding_mask, incremental_state)), self.self_attn_layer_norm)

    def residual_ffn(self, x: Tensor, choice: LayerChoice) -> Tensor:
        return elastic_layer_norm(x + self._dropout(self.ffn(x, choice.ffn_type, choice.ffn_dim)), self.final_layer_norm)

    def regularization(self, choice: LayerChoice, embed_dim: int) -> list[Tensor]:
        return self.ffn.regularization(choice.ffn_type, embed_dim, choice.ffn_dim)

    def mixing_cost_ops(self, prefix: str, choice: LayerChoice, tokens: int, dim: int) -> list[OpRecord]:
        branch = block_branch(choice.block)
        if not block_has_attention(choice.block):
            return self.branches.cost_ops(f"{prefix}.branch", prefix, branch, tokens, dim)
        attn_dim = dim if branch is None else dim // 2
        ops = self.self_attn.cost_ops(f"{prefix}.self_attn", prefix, tokens, tokens, attn_dim, attn_dim, choice.heads)
        if branch is not None:
            ops += self.branches.cost_ops(f"{prefix}.branch", prefix, branch, tokens, dim - attn_dim)
        return ops


class HybridEncoderLayer(HybridLayer):
    def __init__(self, embed_dim: int, ffn_dim: int, blocks: Sequence[str], ffn_types: Sequence[str], kernel_size: int, options: LayerOptions):
        super().__init__(embed_dim, ffn_dim, blocks, ffn_types, kernel_size, False, options)

    def forward(self, x: Tensor, choice: LayerChoice, padding_mask: Optional[Tensor]) -> Tensor:
        """x: (T, B, d); padding_mask: (B, T), True at padding."""
        return self.residual_ffn(self.residual_mix(x, choice, padding_mask), choice)

    def cost_ops(self, prefix: str, choice: LayerChoice, tokens: int, dim: int) -> list[OpRecord]:
        ops = self.mixing_cost_ops(prefix, choice, tokens, dim)
        return ops + self.ffn.cost_ops(f"{prefix}.ffn", prefix, choice.ffn_type, tokens, dim, choice.ffn_dim)


class HybridDecoderLayer(HybridLayer):
    """Causal token mixing, cross-attention to the last k encoder layers, FFN."""

    def __init__(
        self, embed_dim: int, encoder_dim: int, ffn_dim: int, blocks: Sequence[str], ffn_types: Sequence[str],
        kernel_size: int, options: LayerOptions,
    ):
        super().__init__(embed_dim, ffn_dim, blocks, ffn_types, kernel_size, True, options)
        self.encoder_attn = ElasticAttention(embed_dim, encoder_dim, options.attention_dropout, options.quant)
        self.encoder_attn_layer_norm = nn.LayerNorm(embed_dim)

    def forward(
        self, x: Tensor, choice: LayerChoice, encoder_out: Tensor, encoder_padding_mask: Optional[Tensor], incremental_state=None
    ) -> Tensor:
        """x: (T, B, d); encoder_out: (S, B, d_enc), the attended encoder layers concatenated in time."""
        x = self.residual_mix(x, choice, None, incremental_state)
        attended = self.encoder_attn(x, encoder_out, choice.ende_heads, encoder_padding_mask, False, incremental_state, static_kv=True)
        x = elastic_layer_norm(x + self._dropout(attended), self.encoder_attn_layer_norm)
        return self.residual_ffn(x, choice)

    def cost_ops(self, prefix: str, choice: LayerChoice, tokens: int, dim: int, encoder_dim: int) -> list[OpRecord]:
        """The decoder is charged as one parallel pass over ``tokens`` target tokens."""
        ops = self.mixing_cost_ops(prefix, choice, tokens, dim)
        key_tokens = tokens * choice.attended_encoder_layers
        ops += self.encoder_attn.cost_ops(f"{prefix}.encoder_attn", prefix, tokens, key_tokens, dim, encoder_dim, choice.ende_heads)
        return ops + self.ffn.cost_ops(f"{prefix}.ffn", prefix, choice.ffn_type, tokens, dim, choice.ffn_dim)
