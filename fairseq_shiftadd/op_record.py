"""The record every cost model consumes: one operation of a subnet, as the model's own modules report it.

Modules describe their work as :class:`OpRecord` objects (``module.cost_ops(tokens)``); the op-count
energy model and the accelerator model both read these records, so the model that is trained is the
model that is costed (docs/architecture.md, "Costing").
"""
from __future__ import annotations

from dataclasses import dataclass

from .space import OPERATORS

KINDS = ("linear", "qk", "av", "conv")


@dataclass(frozen=True)
class OpRecord:
    """One operation, in the convolution-shaped view of the
    accelerator model (docs/architecture.md, "Accelerator model").

    A linear over T tokens is n=T, c=d_in, m=d_out, every other size 1. Q K^T is n=T*heads,
    c=head_dim, m=T_k; A V is n=T*heads, c=T_k, m=head_dim. A lightweight (depthwise, per-head
    shared) temporal convolution over T tokens and C channels with K taps is n=C, c=1, m=1,
    h=T (+padding), e=T, r=K: its taps are C*T*K.

    Args:
        name: dotted path of the module, e.g. ``encoder.layers.0.ffn.fc1``.
        layer: the layer it belongs to, e.g. ``encoder.layers.0`` (or ``embeddings``).
        operator: ``mult`` (multiply-accumulate), ``shift`` (bit-shift + add) or ``add`` (|x-w| + add).
        kind: ``linear``, ``qk``, ``av`` or ``conv``.
        params: trained weights this op reads (0 for activation-activation products).
    """

    name: str
    layer: str
    operator: str
    kind: str
    n: int
    c: int
    m: int
    h: int = 1
    w: int = 1
    r: int = 1
    s: int = 1
    e: int = 1
    f: int = 1
    stride: int = 1
    params: int = 0

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"operator must be one of {OPERATORS}, got {self.operator!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def taps(self) -> int:
        """Multiply (or shift, or add) positions: N*E*F*M*R*S*C."""
        return self.n * self.e * self.f * self.m * self.r * self.s * self.c

    def arithmetic(self) -> dict[str, int]:
        """Operations of the taps (docs/architecture.md, "Costing"): a MAC is a mult and an add, a shift tap a
        shift and an add, an add tap two adds (difference and accumulate)."""
        taps = self.taps
        return {
            "mult": taps if self.operator == "mult" else 0,
            "add": 2 * taps if self.operator == "add" else taps,
            "shift": taps if self.operator == "shift" else 0,
        }

    @classmethod
    def linear(cls, name: str, layer: str, operator: str, tokens: int, d_in: int, d_out: int, params: int) -> "OpRecord":
        return cls(name, layer, operator, "linear", n=tokens, c=d_in, m=d_out, params=params)
