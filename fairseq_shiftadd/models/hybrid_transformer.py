"""The hybrid encoder-decoder shared by the supernet and standalone subnets.

Both models are a :class:`HybridTransformerModel` built from per-position layer candidates; they
differ only in which candidates they hold (every choice of the space, or the chosen ones at their
sizes) and whether the active subnet may change. The active subnet decides, per call, each
layer's block, FFN operator and sizes (:class:`LayerChoice`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.models import FairseqEncoder, FairseqEncoderDecoderModel, FairseqIncrementalDecoder
from fairseq.modules import SinusoidalPositionalEmbedding
from torch import Tensor, nn

from ..op_record import OpRecord
from ..modules.elastic import scaled_dropout
from ..modules.hybrid_layer import HybridDecoderLayer, HybridEncoderLayer, LayerChoice
from ..modules.quantize import QuantOptions, Quantizers, mult_linear
from ..space import Subnet

EncoderOut = Dict[str, List[Tensor]]


def layer_choices(subnet: Subnet, side: str) -> list[LayerChoice]:
    """Per-layer choices of one side of a subnet."""
    layers = getattr(subnet, f"{side}_layer_num")
    choices = []
    for i in range(layers):
        choices.append(
            LayerChoice(
                block=getattr(subnet, f"{side}_block_types")[i],
                ffn_type=getattr(subnet, f"{side}_ffn_types")[i],
                ffn_dim=getattr(subnet, f"{side}_ffn_embed_dim")[i],
                heads=getattr(subnet, f"{side}_self_attention_heads")[i],
                ende_heads=subnet.decoder_ende_attention_heads[i] if side == "decoder" else 0,
                ende_attn=subnet.decoder_arbitrary_ende_attn[i] if side == "decoder" else -1,
            )
        )
    return choices


class SinusoidalTable:
    """Sinusoidal position embeddings for any width, computed once per (width, device).

    The table of width d is fairseq's own; it is computed for the active width (not sliced from a
    wider one) so a supernet subnet and its exported standalone model see the same positions.
    """

    def __init__(self, padding_idx: int, max_positions: int):
        self.padding_idx = padding_idx
        self.size = max_positions + padding_idx + 1
        self._tables: dict[tuple[int, torch.device], Tensor] = {}

    def __call__(self, tokens: Tensor, dim: int) -> Tensor:
        """tokens: (B, T) -> (B, T, dim)."""
        key = (dim, tokens.device)
        if key not in self._tables:
            table = SinusoidalPositionalEmbedding.get_embedding(self.size, dim, self.padding_idx)
            self._tables[key] = table.to(tokens.device)
        positions = utils.make_positions(tokens, self.padding_idx)
        return self._tables[key][positions]


def embed(tokens: Tensor, table: nn.Embedding, dim: int, positions: SinusoidalTable) -> Tensor:
    """Scaled token embedding (leading ``dim`` channels) plus positions; (B, T) -> (B, T, dim)."""
    x = math.sqrt(dim) * F.embedding(tokens, table.weight[:, :dim], table.padding_idx)
    return x + positions(tokens, dim).type_as(x)


class HybridStack:
    """What encoder and decoder share: embeddings, layers, and which side of the subnet they run.

    Args:
        embed_tokens: the (possibly shared, possibly wider) embedding table.
        layers: the layer positions.
        embed_dim: this side's largest model dimension.
        dropout: dropout at ``embed_dim`` (scaled down for narrower subnets).
        max_positions: longest sequence.
    """

    side: str

    def init_stack(self, embed_tokens: nn.Embedding, layers: list, embed_dim: int, dropout: float, max_positions: int) -> None:
        self.embed_tokens = embed_tokens
        self.layers = nn.ModuleList(layers)
        self.dropout = dropout
        self.max_embed_dim = self.embed_dim = embed_dim
        self.max_sequence_positions = max_positions
        self.positions = SinusoidalTable(self.dictionary.pad(), max_positions)
        self.choices: list[LayerChoice] = []

    def configure(self, subnet: Subnet) -> None:
        """Run ``subnet``'s choices for this side from now on."""
        self.embed_dim = getattr(subnet, f"{self.side}_embed_dim")
        self.choices = layer_choices(subnet, self.side)

    def max_positions(self) -> int:
        return self.max_sequence_positions


class HybridEncoder(HybridStack, FairseqEncoder):
    side = "encoder"

    def __init__(self, dictionary, embed_tokens: nn.Embedding, layers: List[HybridEncoderLayer], embed_dim: int, dropout: float, max_positions: int):
        super().__init__(dictionary)
        self.init_stack(embed_tokens, layers, embed_dim, dropout, max_positions)

    def forward(self, src_tokens: Tensor, src_lengths: Optional[Tensor] = None, return_all_hiddens: bool = False) -> EncoderOut:
        """src_tokens: (B, S). Returns fairseq's encoder dict plus every layer's output (S, B, d)."""
        padding_mask = src_tokens.eq(self.dictionary.pad())
        x = embed(src_tokens, self.embed_tokens, self.embed_dim, self.positions)
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = scaled_dropout(x, self.dropout, self.embed_dim, self.max_embed_dim, self.training).transpose(0, 1)
        mask = padding_mask if padding_mask.any() else None
        states = []
        for layer, choice in zip(self.layers, self.choices):
            x = layer(x, choice, mask)
            states.append(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding_mask],
            "encoder_states": states,
            "src_tokens": [],
            "src_lengths": [src_lengths] if src_lengths is not None else [],
        }

    def reorder_encoder_out(self, encoder_out: EncoderOut, new_order: Tensor) -> EncoderOut:
        return {
            "encoder_out": [t.index_select(1, new_order) for t in encoder_out["encoder_out"]],
            "encoder_padding_mask": [t.index_select(0, new_order) for t in encoder_out["encoder_padding_mask"]],
            "encoder_states": [t.index_select(1, new_order) for t in encoder_out["encoder_states"]],
            "src_tokens": [],
            "src_lengths": [t.index_select(0, new_order) for t in encoder_out["src_lengths"]],
        }


class HybridDecoder(HybridStack, FairseqIncrementalDecoder):
    side = "decoder"

    def __init__(
        self, dictionary, embed_tokens: nn.Embedding, layers: List[HybridDecoderLayer], embed_dim: int, dropout: float,
        max_positions: int, quant: QuantOptions = QuantOptions(),
    ):
        super().__init__(dictionary)
        self.init_stack(embed_tokens, layers, embed_dim, dropout, max_positions)
        self.quant = Quantizers(quant, ("output_projection",))

    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: Optional[EncoderOut] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        features_only: bool = False,
        **unused: Any,
    ):
        """prev_output_tokens: (B, T). Returns logits (B, T, V) (or features) and fairseq's extra dict.

        With ``incremental_state`` only the newest token is run, through exactly the operators of
        the full-sequence pass (docs/architecture.md, "Where we depart from the public code").
        """
        dim = self.embed_dim
        x = embed(prev_output_tokens, self.embed_tokens, dim, self.positions)
        if incremental_state is not None:
            x = x[:, -1:]
        x = scaled_dropout(x, self.dropout, dim, self.max_embed_dim, self.training).transpose(0, 1)
        states = encoder_out["encoder_states"]
        padding_mask = encoder_out["encoder_padding_mask"][0]
        has_padding = bool(padding_mask.any())
        for layer, choice in zip(self.layers, self.choices):
            attended = min(choice.attended_encoder_layers, len(states))
            keys = torch.cat(states[-attended:], dim=0)
            mask = torch.cat([padding_mask] * attended, dim=1) if has_padding else None
            x = layer(x, choice, keys, mask, incremental_state)
        x = x.transpose(0, 1)
        if not features_only:
            x = self.output_layer(x)
        return x, {"attn": [None], "inner_states": None}

    def output_layer(self, features: Tensor) -> Tensor:
        """Project onto the (shared) embedding matrix, N-bit when quantised; (B, T, d) -> (B, T, V)."""
        return mult_linear(features, self.embed_tokens.weight[:, : features.size(-1)], None, self.quant.site("output_projection"))


class HybridTransformerModel(FairseqEncoderDecoderModel):
    """Encoder-decoder whose layers run the active subnet's choices."""

    def __init__(self, encoder: HybridEncoder, decoder: HybridDecoder, subnet: Subnet):
        super().__init__(encoder, decoder)
        self.set_subnet(subnet)

    def set_subnet(self, subnet: Subnet) -> None:
        """Make ``subnet`` the architecture every following forward pass runs."""
        self.subnet = subnet
        self.encoder.configure(subnet)
        self.decoder.configure(subnet)

    def regularization_loss(self) -> Optional[Tensor]:
        """Sum of the heterogeneous-sharing KL terms of the active subnet (None if it has none)."""
        terms: list[Tensor] = []
        for side, layers in (("encoder", self.encoder.layers), ("decoder", self.decoder.layers)):
            dim = getattr(self.subnet, f"{side}_embed_dim")
            for layer, choice in zip(layers, getattr(self, side).choices):
                terms += layer.regularization(choice, dim)
        return torch.stack(terms).sum() if terms else None

    def cost_ops(self, tokens: int = 30, include_embeddings: bool = False) -> list[OpRecord]:
        """Every operation of the active subnet on a ``tokens``-token sentence pair.

        Embedding look-ups cost nothing; ``include_embeddings`` adds the output projection
        (tokens x d x vocabulary MACs).
        """
        subnet = self.subnet
        ops: list[OpRecord] = []
        for i, (layer, choice) in enumerate(zip(self.encoder.layers, self.encoder.choices)):
            ops += layer.cost_ops(f"encoder.layers.{i}", choice, tokens, subnet.encoder_embed_dim)
        for i, (layer, choice) in enumerate(zip(self.decoder.layers, self.decoder.choices)):
            ops += layer.cost_ops(f"decoder.layers.{i}", choice, tokens, subnet.decoder_embed_dim, subnet.encoder_embed_dim)
        if include_embeddings:
            vocab, dim = self.decoder.embed_tokens.num_embeddings, subnet.decoder_embed_dim
            ops.append(OpRecord.linear("decoder.output_projection", "embeddings", "mult", tokens, dim, vocab, 0))
        return ops

    def max_positions(self):
        return (self.encoder.max_positions(), self.decoder.max_positions())
