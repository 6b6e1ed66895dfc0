"""Every valid row-stationary tiling of one convolution-shaped op, enumerated at once with numpy.

The ShiftAddNAS accelerator (docs/architecture.md, "Accelerator model") splits each loop into ordered factors,
N = N0*N3, M = M0*M1*M2*M3, C = C0*C1*C2*C3 (C3 = 1), E = E1*E3, and keeps those that fit the
PE array, the register files and the global buffer. Instead of nesting Python loops over the
factorisations (the public script's 115 s for Transformer-base), the factorisations of each
dimension are tabulated once, crossed as integer arrays and pruned constraint by constraint, so
the cross product stays small and every check is one vectorised comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..op_record import OpRecord

PE_COUNT = 168  # M1*C1*E1*R < PE_COUNT
MAX_M0 = 16  # M0 <= MAX_M0
IFMAP_RF_WORDS = 12  # C0*S < IFMAP_RF_WORDS
WEIGHT_RF_WORDS = 960  # M0*C0*S < WEIGHT_RF_WORDS
BUFFER_WORDS = 65536  # ifmap tile + psum tile < BUFFER_WORDS

FACTORS = ("N0", "N3", "M0", "M1", "M2", "M3", "C0", "C1", "C2", "C3", "E1", "E3")


@dataclass(frozen=True)
class Shape:
    """The loop bounds of one op: batch n, channels c -> m, input h x w, kernel r x s, output e x f."""

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

    def __post_init__(self) -> None:
        for field, value in vars(self).items():
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")

    @classmethod
    def of(cls, op: OpRecord) -> "Shape":
        return cls(op.n, op.c, op.m, op.h, op.w, op.r, op.s, op.e, op.f, op.stride)


@lru_cache(maxsize=None)
def ordered_factorisations(n: int, parts: int) -> np.ndarray:
    """All ordered tuples of ``parts`` positive integers whose product is ``n`` (1s included).

    Returns: int64 [count, parts], read-only (it is cached).
    """
    if parts == 1:
        table = np.array([[n]], dtype=np.int64)
    else:
        blocks = []
        for first in (d for d in range(1, n + 1) if n % d == 0):
            rest = ordered_factorisations(n // first, parts - 1)
            blocks.append(np.hstack([np.full((len(rest), 1), first, dtype=np.int64), rest]))
        table = np.concatenate(blocks)
    table.flags.writeable = False
    return table


def _cross(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Every row of ``left`` beside every row of ``right``: [a, p] x [b, q] -> [a*b, p+q]."""
    return np.hstack([np.repeat(left, len(right), axis=0), np.tile(right, (len(left), 1))])


@lru_cache(maxsize=4096)
def valid_tilings(shape: Shape) -> np.ndarray:
    """The tilings of ``shape`` that satisfy every constraint of the accelerator model
    (docs/architecture.md).

    Returns: int64 [count, 12], columns in :data:`FACTORS` order, read-only (it is cached).
    """
    m = ordered_factorisations(shape.m, 4)
    m = m[m[:, 0] <= MAX_M0]
    c = ordered_factorisations(shape.c, 3)
    c = c[c[:, 0] * shape.s < IFMAP_RF_WORDS]
    c = np.hstack([c, np.ones((len(c), 1), dtype=np.int64)])  # C3 = 1
    mc = _cross(m, c)  # M0 M1 M2 M3 C0 C1 C2 C3
    mc = mc[mc[:, 0] * mc[:, 4] * shape.s < WEIGHT_RF_WORDS]
    mce = _cross(mc, ordered_factorisations(shape.e, 2))  # ... E1 E3
    mce = mce[mce[:, 1] * mce[:, 5] * mce[:, 8] * shape.r < PE_COUNT]
    t = _cross(ordered_factorisations(shape.n, 2), mce)  # N0 N3 M0..M3 C0..C3 E1 E3
    n0, m0, m1, m2, c0, c1, e1 = t[:, 0], t[:, 2], t[:, 3], t[:, 4], t[:, 6], t[:, 7], t[:, 10]
    ifmap_tile = n0 * c1 * c0 * ((e1 - 1) * shape.stride + shape.r) * ((shape.f - 1) * shape.stride + shape.s)
    psum_tile = n0 * m2 * m1 * m0 * e1 * shape.f
    t = t[ifmap_tile + psum_tile < BUFFER_WORDS]
    t.flags.writeable = False
    return t
