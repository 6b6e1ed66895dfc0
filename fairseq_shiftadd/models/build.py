"""Build a :class:`HybridTransformerModel` from per-position candidates (a space or one subnet)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from fairseq.models.transformer import Embedding

from ..modules.hybrid_layer import HybridDecoderLayer, HybridEncoderLayer, LayerOptions
from ..modules.operator_recipe import OperatorRecipe
from ..modules.quantize import QuantOptions
from ..space import SearchSpace, Subnet
from .config import HybridTransformerConfig, fill_missing_options
from .hybrid_transformer import HybridDecoder, HybridEncoder, HybridTransformerModel
from ..errors import InvalidInput


@dataclass(frozen=True)
class SideCandidates:
    """What each layer position of one side must be able to run, at its largest sizes."""

    embed_dim: int
    ffn_dims: Sequence[int]
    blocks: Sequence[Sequence[str]]
    ffn_types: Sequence[Sequence[str]]
    kernel_sizes: Sequence[int]

    @classmethod
    def of_space(cls, space: SearchSpace, side: str) -> "SideCandidates":
        s = getattr(space, side)
        layers = s.max_layers
        return cls(max(s.embed_dim), [max(s.ffn_embed_dim)] * layers, [s.block_types] * layers, [s.ffn_types] * layers, s.kernel_sizes[:layers])

    @classmethod
    def of_subnet(cls, subnet: Subnet, side: str) -> "SideCandidates":
        layers = getattr(subnet, f"{side}_layer_num")
        return cls(
            getattr(subnet, f"{side}_embed_dim"),
            getattr(subnet, f"{side}_ffn_embed_dim"),
            [(block,) for block in getattr(subnet, f"{side}_block_types")],
            [(ffn,) for ffn in getattr(subnet, f"{side}_ffn_types")],
            [subnet.kernel_size(side, i) for i in range(layers)],
        )


def build_hybrid_model(
    cfg: HybridTransformerConfig, task, encoder: SideCandidates, decoder: SideCandidates, subnet: Subnet, model_cls=HybridTransformerModel
) -> HybridTransformerModel:
    """Embeddings + layers for the given candidates, with ``subnet`` active."""
    fill_missing_options(cfg)
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    options = LayerOptions(
        weight_sharing=cfg.weight_sharing,
        lightweight_heads=cfg.lightweight_heads,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        weight_dropout=cfg.weight_dropout,
        recipe=OperatorRecipe(cfg.shift_parametrization, cfg.add_weight_scale, cfg.add_output_gain, cfg.add_conv_padding),
        quant=QuantOptions(cfg.quant_bits, cfg.quant_grad_bits, cfg.quant_integer),
    )
    if cfg.share_all_embeddings:
        if src_dict != tgt_dict:
            raise InvalidInput("--share-all-embeddings needs a joined dictionary (fairseq-preprocess --joined-dictionary)")
        shared = Embedding(len(src_dict), max(encoder.embed_dim, decoder.embed_dim), src_dict.pad())
        encoder_embed = decoder_embed = shared
    else:
        encoder_embed = Embedding(len(src_dict), encoder.embed_dim, src_dict.pad())
        decoder_embed = Embedding(len(tgt_dict), decoder.embed_dim, tgt_dict.pad())
    encoder_layers = [
        HybridEncoderLayer(encoder.embed_dim, ffn, blocks, ffns, k, options)
        for ffn, blocks, ffns, k in zip(encoder.ffn_dims, encoder.blocks, encoder.ffn_types, encoder.kernel_sizes)
    ]
    decoder_layers = [
        HybridDecoderLayer(decoder.embed_dim, encoder.embed_dim, ffn, blocks, ffns, k, options)
        for ffn, blocks, ffns, k in zip(decoder.ffn_dims, decoder.blocks, decoder.ffn_types, decoder.kernel_sizes)
    ]
    model = model_cls(
        HybridEncoder(src_dict, encoder_embed, encoder_layers, encoder.embed_dim, cfg.dropout, cfg.max_source_positions),
        HybridDecoder(tgt_dict, decoder_embed, decoder_layers, decoder.embed_dim, cfg.dropout, cfg.max_target_positions, options.quant),
        subnet,
    )
    model.kl_weight = cfg.kl_weight
    return model
