"""Multi-head attention whose sizes are chosen per call (HAT-style elastic weights).

The module owns the largest projections; a call with a smaller model dimension uses their
leading slices. The attention width (q/k/v size) equals the query's model dimension and the head
count is a per-call argument, so the same weights serve every subnet of the space and a standalone
subnet holds exactly the slices it uses.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fairseq.incremental_decoding_utils import with_incremental_state
from torch import Tensor, nn

from ..op_record import OpRecord
from .elastic import elastic_linear
from .quantize import QuantOptions, Quantizers, mult_matmul, probability_scale

IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


@with_incremental_state
class ElasticAttention(nn.Module):
    """Scaled dot-product attention with elastic projections.

    Args:
        query_dim: largest model dimension of the queries (= attention width and output size).
        key_dim: largest model dimension of keys/values (the encoder's, for cross-attention).
        dropout: attention-probability dropout.
        quant: fixed-point options of the projections and of Q K^T and A V (probabilities on a
            fixed [-1, 1] grid, softmax in float).
    """

    def __init__(self, query_dim: int, key_dim: int, dropout: float = 0.0, quant: QuantOptions = QuantOptions()):
        super().__init__()
        self.q_proj = nn.Linear(query_dim, query_dim)
        self.k_proj = nn.Linear(key_dim, query_dim)
        self.v_proj = nn.Linear(key_dim, query_dim)
        self.out_proj = nn.Linear(query_dim, query_dim)
        self.dropout = dropout
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        self.quant = Quantizers(quant, ("query", "key", "value", "out", "q", "k", "v"))

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        num_heads: int,
        key_padding_mask: Optional[Tensor] = None,
        causal: bool = False,
        incremental_state: Optional[IncrementalState] = None,
        static_kv: bool = False,
    ) -> Tensor:
        """Attend from ``query`` (T, B, d) to ``key`` (= value) (S, B, d_k); returns (T, B, d).

        With ``incremental_state``, ``query`` is the newest step (1, B, d); self-attention keys
        are appended to a cache, cross-attention keys (``static_kv``) are projected once.
        """
        tgt_len, bsz, dim = query.shape
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide the attention width {dim}")
        head_dim = dim // num_heads
        quant = self.quant.site
        q = elastic_linear(query, self.q_proj, dim, quant("query")) * head_dim**-0.5
        cache = self._get_input_buffer(incremental_state) if incremental_state is not None else {}
        if static_kv and "key" in cache:
            k, v = (cache[name].view(bsz * num_heads, -1, head_dim) for name in ("key", "value"))
        else:
            k = elastic_linear(key, self.k_proj, dim, quant("key"))
            v = elastic_linear(key, self.v_proj, dim, quant("value"))
            k, v = (t.view(-1, bsz * num_heads, head_dim).transpose(0, 1) for t in (k, v))
            if not static_kv and "key" in cache:
                k = torch.cat([cache["key"].view(bsz * num_heads, -1, head_dim), k], dim=1)
                v = torch.cat([cache["value"].view(bsz * num_heads, -1, head_dim), v], dim=1)
        if incremental_state is not None:  # cached as (B, H, S, head_dim) so beams reorder on dim 0
            self._set_input_buffer(
                incremental_state,
                {"key": k.view(bsz, num_heads, -1, head_dim), "value": v.view(bsz, num_heads, -1, head_dim)},
            )
        q = q.view(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
        scores = self._matmul(q, k.transpose(1, 2), "q", "k")  # (B*H, T, S)
        src_len = k.size(1)
        if causal and incremental_state is None:
            future = torch.ones(tgt_len, src_len, dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        if key_padding_mask is not None:
            scores = scores.view(bsz, num_heads, tgt_len, src_len)
            scores = scores.masked_fill(key_padding_mask[:, None, None, :].to(torch.bool), float("-inf"))
            scores = scores.view(bsz * num_heads, tgt_len, src_len)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).type_as(scores)
        probs = F.dropout(probs, p=self.dropout, training=self.training)
        out = self._matmul(probs, v, None, "v").transpose(0, 1).reshape(tgt_len, bsz, dim)
        return elastic_linear(out, self.out_proj, dim, quant("out"))

    def _matmul(self, a: Tensor, b: Tensor, a_site: Optional[str], b_site: str) -> Tensor:
        """a @ b, on N-bit grids when quantised (``a_site`` None: probabilities, scale 1 / q)."""
        b_quantizer = self.quant.site(b_site)
        if b_quantizer is None:
            return torch.bmm(a, b)
        options = b_quantizer.options
        a_scale = self.quant[a_site].scale(a) if a_site else probability_scale(options, a)
        return mult_matmul(a, b, a_scale, b_quantizer.scale(b), options)

    def cost_ops(self, prefix: str, layer: str, tokens: int, key_tokens: int, dim: int, key_dim: int, num_heads: int) -> list[OpRecord]:
        """Projections over their tokens, then Q K^T and A V as batched products (docs/architecture.md, "Costing")."""
        head_dim = dim // num_heads
        return [
            OpRecord.linear(f"{prefix}.q_proj", layer, "mult", tokens, dim, dim, dim * dim + dim),
            OpRecord.linear(f"{prefix}.k_proj", layer, "mult", key_tokens, key_dim, dim, key_dim * dim + dim),
            OpRecord.linear(f"{prefix}.v_proj", layer, "mult", key_tokens, key_dim, dim, key_dim * dim + dim),
            OpRecord(f"{prefix}.qk", layer, "mult", "qk", n=tokens * num_heads, c=head_dim, m=key_tokens),
            OpRecord(f"{prefix}.av", layer, "mult", "av", n=tokens * num_heads, c=key_tokens, m=head_dim),
            OpRecord.linear(f"{prefix}.out_proj", layer, "mult", tokens, dim, dim, dim * dim + dim),
        ]

    def reorder_incremental_state(self, incremental_state: IncrementalState, new_order: Tensor) -> None:
        cache = self._get_input_buffer(incremental_state)
        if cache:
            self._set_input_buffer(
                incremental_state, {name: tensor.index_select(0, new_order) for name, tensor in cache.items()}
            )

    def _get_input_buffer(self, incremental_state: Optional[IncrementalState]) -> Dict[str, Tensor]:
        return self.get_incremental_state(incremental_state, "attn_state") or {}

    def _set_input_buffer(self, incremental_state: IncrementalState, buffer: Dict[str, Tensor]) -> None:
        self.set_incremental_state(incremental_state, "attn_state", buffer)
