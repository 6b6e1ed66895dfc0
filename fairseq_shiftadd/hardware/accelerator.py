"""The paper's analytical row-stationary accelerator: energy (mJ) and latency (ms) per op and in total.

docs/architecture.md ("Accelerator model") describes the model behind ShiftAddNAS's figures (Transformer-base at 30
tokens: 69.41 mJ / 41.82 ms): an Eyeriss-style array at 250 MHz; each op is a convolution-shaped
loop nest; among the valid tilings (:mod:`.tiling`) each op keeps the one minimising
(energy - min)/max + (latency - min)/max. The optimum depends only on the op's shape and on how
its operator is charged, so it is cached per (shape, charge): a search re-costs a subnet from the
cache in about a millisecond.

How operators are charged (``conventions``):

``"ours"`` (default)
    Compute: each tap costs the unit energy (:mod:`.energy_table`) of the operator in the
    multiplier's place (mult, shift, or add for |x - w|). The accumulate add that every tap
    shares is not charged, as in the published baseline (3.7 pJ per MAC at 32 bits = the mult
    alone), so the three operators are compared on the same footing. (The op-count model
    charges the accumulate add too.)
    Data movement of a mult op: every word at ``bits``, as the paper's model does.
    A shift op's weight is a sign and a shift amount: DeepShift-PS clamps shifts to [-14, 0] and
    signs to {-1, 0, +1}, 2 * 15 + 1 = 31 codes, one 5-bit word. Weights are stored and moved as
    such, so weight traffic (DRAM, NoC, RF weight reads) is charged at 5 bits; the inputs are
    ordinary activations and the partial sums accumulate at full width, so they stay at
    ``bits``. A shift PE still does one tap per cycle: the accumulate add after the shifter sets
    the cycle just as it does after the multiplier of a pipelined MAC, so no faster clock.
    An add op computes |x - w|, which needs w in x's format, and reads and writes the same
    feature maps as any op of its shape: it is charged the data movement of a mult op.

``"public"``
    The public script's conventions, to compare with its hybrid figures (docs/architecture.md, "Where we depart from the public code"): shift ops move every word at 10 bits and run at twice the
    clock; add ops are assumed on the PE array, with no DRAM, buffer or NoC traffic. Compute as
    in ``"ours"``; mult ops as in ``"ours"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .energy_table import MEMORY_ENERGY_RATIO, UNIT_ENERGY_PJ, unit_energy_pj
from ..op_record import OpRecord
from ..space import OPERATORS
from .tiling import FACTORS, Shape, ordered_factorisations, valid_tilings

CONVENTIONS = ("ours", "public")
CLOCK_HZ = 250e6
WORD_BITS = 16  # access energies are per 16-bit word: the b = bits/16 of docs/architecture.md
SHIFT_WEIGHT_BITS = 5  # sign + shift amount of a DeepShift-PS weight (see module docstring)
PUBLIC_SHIFT_BITS = 10
PUBLIC_SHIFT_CLOCK_RATIO = 2.0

# pJ per 16-bit word access, as the public model charges them: an RF access is anchored to the
# 32-bit mult energy, NoC and buffer at 2x and 6x of it (Eyeriss ratios), partial sums on the
# NoC at 1x and weight reads from the RF at 2x. DRAM is 200 pJ flat, not 200x the RF anchor:
# the published figures depend on that, so it is kept.
_RF_PJ = MEMORY_ENERGY_RATIO["rf"] * UNIT_ENERGY_PJ[32]["mult"]
_DRAM_PJ = MEMORY_ENERGY_RATIO["dram"]
_BUFFER_PJ = MEMORY_ENERGY_RATIO["buffer"] * _RF_PJ
_NOC_PJ = MEMORY_ENERGY_RATIO["noc"] * _RF_PJ
_NOC_PSUM_PJ = _RF_PJ
_RF_WEIGHT_PJ = 2 * _RF_PJ

BREAKDOWN = ("compute", "dram", "buffer", "noc", "rf")


@dataclass(frozen=True)
class Charge:
    """How one operator is charged: pJ per tap, word widths (in units of 16 bits) of the input,
    weight and output traffic, whether data moves beyond the PE array, and the clock ratio."""

    tap_pj: float
    ifmap_b: float
    weight_b: float
    ofmap_b: float
    off_array: bool = True
    clock_ratio: float = 1.0


@lru_cache(maxsize=None)
def charge_for(operator: str, bits: int, conventions: str) -> Charge:
    """The :class:`Charge` of ``operator`` at ``bits`` under ``conventions`` (module docstring)."""
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}")
    if conventions not in CONVENTIONS:
        raise ValueError(f"conventions must be one of {CONVENTIONS}, got {conventions!r}")
    tap_pj = unit_energy_pj(bits)[operator]
    b = bits / WORD_BITS
    if operator == "shift" and conventions == "ours":
        return Charge(tap_pj, b, min(SHIFT_WEIGHT_BITS, bits) / WORD_BITS, b)
    if operator == "shift":
        b_shift = PUBLIC_SHIFT_BITS / WORD_BITS
        return Charge(tap_pj, b_shift, b_shift, b_shift, clock_ratio=PUBLIC_SHIFT_CLOCK_RATIO)
    if operator == "add" and conventions == "public":
        return Charge(tap_pj, b, b, b, off_array=False)
    return Charge(tap_pj, b, b, b)


def tiling_costs(shape: Shape, charge: Charge, tilings: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Energy breakdown (pJ) and latency (cycles) of each tiling.

    Args:
        tilings: int [count, 12], columns in :data:`.tiling.FACTORS` order.
    Returns:
        ({"compute", "dram", "buffer", "noc", "rf"}: float64 [count]), cycles float64 [count].
    """
    t = tilings.astype(np.float64)
    n0, n3, m0, m1, m2, m3, c0, c1, c2, c3, e1, e3 = t.T
    ifmap = float(shape.n * shape.h * shape.w * shape.c) * charge.ifmap_b
    weight = float(shape.r * shape.s * shape.c * shape.m) * charge.weight_b
    ofmap = float(shape.n * shape.e * shape.f * shape.m) * charge.ofmap_b
    taps = float(shape.n * shape.e * shape.f * shape.m * shape.r * shape.s * shape.c)
    r, s, f = float(shape.r), float(shape.s), float(shape.f)
    ifmap_noc = m3 * m2 * m1 * r * (shape.e / shape.h) * ifmap
    energy = {
        "compute": np.full(len(t), taps * charge.tap_pj),
        "dram": _DRAM_PJ * (m3 * ifmap + n3 * e3 * weight + np.maximum(2 * c3 - 1, 1) * ofmap),
        "buffer": _BUFFER_PJ * (m3 * m2 * ifmap + np.maximum(2 * c3 * (c2 - 1), 1) * ofmap),
        "noc": _NOC_PJ * (ifmap_noc + n3 * e3 * e1 * weight)
        + _NOC_PSUM_PJ * np.maximum(c3 * c2 * (c1 * r - 1), 1) * ofmap,
        "rf": _RF_PJ * (ifmap_noc * m0 * s * (f / shape.w) + np.maximum(c3 * c2 * c1 * r * (c0 * s - 1) * 2, 1) * ofmap)
        + _RF_WEIGHT_PJ * n3 * e3 * e1 * f * n0 * weight,
    }
    if not charge.off_array:
        for level in ("dram", "buffer", "noc"):
            energy[level] = np.zeros(len(t))
    cycles = n3 * n0 * m3 * m2 * m0 * c3 * c2 * c0 * e3 * f * s / charge.clock_ratio
    return energy, cycles


def objective(energy_pj: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """(energy - min)/max + (latency - min)/max over the tilings of one op: lower is better."""
    return (energy_pj - energy_pj.min()) / energy_pj.max() + (cycles - cycles.min()) / cycles.max()


@dataclass(frozen=True)
class _Choice:
    energy_mj: float
    latency_ms: float
    breakdown: Mapping[str, float]
    tiling: Mapping[str, int]


@lru_cache(maxsize=16384)
def _optimal(shape: Shape, charge: Charge) -> _Choice:
    tilings = valid_tilings(shape)
    if len(tilings) == 0:
        raise ValueError(f"shape {shape} has no valid tiling on the accelerator")
    energy, cycles = tiling_costs(shape, charge, tilings)
    total = sum(energy.values())
    best = int(np.argmin(objective(total, cycles)))
    breakdown = {key: float(energy[key][best]) * 1e-9 for key in BREAKDOWN}
    return _Choice(
        energy_mj=float(total[best]) * 1e-9,
        latency_ms=float(cycles[best]) / CLOCK_HZ * 1e3,
        breakdown=MappingProxyType(breakdown),
        tiling=MappingProxyType(dict(zip(FACTORS, map(int, tilings[best])))),
    )


def clear_cache() -> None:
    """Forget every cached tiling and optimum (for cold-start timing)."""
    for cached in (_optimal, valid_tilings, ordered_factorisations, charge_for):
        cached.cache_clear()


@dataclass(frozen=True)
class CostSummary:
    """Energy (mJ, with its breakdown), latency (ms) and arithmetic of one op or a group of ops."""

    name: str
    mult: int
    add: int
    shift: int
    energy_mj: float
    latency_ms: float
    breakdown: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mult": self.mult,
            "add": self.add,
            "shift": self.shift,
            "energy_mj": self.energy_mj,
            "latency_ms": self.latency_ms,
            "breakdown": dict(self.breakdown),
        }


@dataclass(frozen=True, kw_only=True)
class OpCost(CostSummary):
    """One op's cost and the tiling (:data:`.tiling.FACTORS` -> factor) that achieves it."""

    layer: str
    operator: str
    kind: str
    tiling: Mapping[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "layer": self.layer, "operator": self.operator, "kind": self.kind,
                "tiling": dict(self.tiling)}


def summarise(name: str, items: Sequence[CostSummary]) -> CostSummary:
    """Sum of ``items``: energies, latencies (ops run one after another) and op counts add up."""
    return CostSummary(
        name=name,
        mult=sum(i.mult for i in items),
        add=sum(i.add for i in items),
        shift=sum(i.shift for i in items),
        energy_mj=sum(i.energy_mj for i in items),
        latency_ms=sum(i.latency_ms for i in items),
        breakdown={key: sum(i.breakdown[key] for i in items) for key in BREAKDOWN},
    )


@dataclass(frozen=True)
class AcceleratorReport:
    """Per-op costs of a subnet on the accelerator, with per-layer and total sums."""

    ops: tuple[OpCost, ...]
    bits: int
    conventions: str

    @property
    def total(self) -> CostSummary:
        return summarise("total", self.ops)

    @property
    def energy_mj(self) -> float:
        return sum(op.energy_mj for op in self.ops)

    @property
    def latency_ms(self) -> float:
        return sum(op.latency_ms for op in self.ops)

    def by_layer(self) -> list[CostSummary]:
        """One summary per ``layer``, in order of first appearance."""
        groups: dict[str, list[OpCost]] = {}
        for op in self.ops:
            groups.setdefault(op.layer, []).append(op)
        return [summarise(layer, ops) for layer, ops in groups.items()]

    def to_json(self) -> dict[str, Any]:
        """{"layers": [per layer], "ops": [per op, with tiling], "total": {...}, "bits", "conventions"}."""
        total = self.total.as_dict()
        del total["name"]
        return {
            "layers": [layer.as_dict() for layer in self.by_layer()],
            "ops": [op.as_dict() for op in self.ops],
            "total": total,
            "bits": self.bits,
            "conventions": self.conventions,
        }


def accelerator_cost(ops: Sequence[OpRecord], bits: int = 32, conventions: str = "ours") -> AcceleratorReport:
    """Cost every op of ``ops`` on the accelerator with its optimal tiling.

    Args:
        ops: the subnet's ops (``model.cost_ops(tokens)``), in execution order.
        bits: 32 (float) or 8 (fixed point): unit energies and word width.
        conventions: ``"ours"`` or ``"public"`` (module docstring).
    """
    unit_energy_pj(bits)  # checks bits and conventions even for an empty op list
    if conventions not in CONVENTIONS:
        raise ValueError(f"conventions must be one of {CONVENTIONS}, got {conventions!r}")
    costs = []
    for op in ops:
        choice = _optimal(Shape.of(op), charge_for(op.operator, bits, conventions))
        costs.append(
            OpCost(
                name=op.name,
                **op.arithmetic(),
                energy_mj=choice.energy_mj,
                latency_ms=choice.latency_ms,
                breakdown=choice.breakdown,
                layer=op.layer,
                operator=op.operator,
                kind=op.kind,
                tiling=choice.tiling,
            )
        )
    return AcceleratorReport(tuple(costs), bits, conventions)
