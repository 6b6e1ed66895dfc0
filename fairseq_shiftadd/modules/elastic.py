"""The elastic-layer protocol: a layer owns its largest weights, a call uses leading slices.

One convention for every layer (HAT's weight sharing): the input size is read from the input,
the output size is an argument, and the weight used is ``weight[:out, :in]``. The supernet calls
its layers with the sampled sizes; a standalone subnet is the same layer built at exactly those
sizes, so its parameters are the slices the supernet would use.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .quantize import InputQuantizer, mult_linear


def elastic_linear(x: Tensor, linear: nn.Linear, out_features: int, quantizer: InputQuantizer | None = None) -> Tensor:
    """``linear`` restricted to its leading ``out_features`` x ``x.size(-1)`` block; x: (..., in).

    With ``quantizer``, on N-bit fixed-point input and weight (quantize.py)."""
    in_features = x.size(-1)
    bias = linear.bias[:out_features] if linear.bias is not None else None
    return mult_linear(x, linear.weight[:out_features, :in_features], bias, quantizer)


def elastic_layer_norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    """LayerNorm over the leading ``x.size(-1)`` channels of ``norm``'s affine parameters."""
    dim = x.size(-1)
    return F.layer_norm(x, (dim,), norm.weight[:dim], norm.bias[:dim], norm.eps)


def scaled_dropout(x: Tensor, p: float, dim: int, max_dim: int, training: bool) -> Tensor:
    """Dropout scaled with the sampled width (HAT): a narrower subnet is regularised less."""
    return F.dropout(x, p=p * dim / max_dim, training=training)
