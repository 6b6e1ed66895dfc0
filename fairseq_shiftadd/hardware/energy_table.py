"""Unit energies of arithmetic and memory: the one table every cost model reads.

Arithmetic, in pJ per operation at 45 nm (docs/architecture.md, "Costing"): the mult and add figures are
M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014 (32-bit
float and 8-bit integer); the shift figures are those the ShiftAdd papers (DeepShift, ShiftAddNet,
ShiftAddNAS) tabulate beside Horowitz's for a barrel shifter of the same width.

Memory, relative to one register-file access (RF : NoC : global buffer : DRAM = 1 : 2 : 6 : 200),
are the Eyeriss ratios (Chen et al., ISCA 2016) that the ShiftAddNAS accelerator model uses.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

BITS = (32, 8)
ARITHMETIC = ("mult", "add", "shift")
ENERGY_SOURCE = (
    "Horowitz, ISSCC 2014, 45 nm (mult, add); ShiftAdd papers' 45 nm table (shift); "
    "Eyeriss memory ratios RF:NoC:buffer:DRAM = 1:2:6:200 (Chen et al., ISCA 2016)"
)

UNIT_ENERGY_PJ: Mapping[int, Mapping[str, float]] = MappingProxyType(
    {
        32: MappingProxyType({"mult": 3.7, "add": 0.9, "shift": 0.13}),  # 32-bit float
        8: MappingProxyType({"mult": 0.2, "add": 0.03, "shift": 0.024}),  # 8-bit fixed point
    }
)

MEMORY_ENERGY_RATIO: Mapping[str, float] = MappingProxyType(
    {"rf": 1.0, "noc": 2.0, "buffer": 6.0, "dram": 200.0}
)


def unit_energy_pj(bits: int) -> Mapping[str, float]:
    """The pJ per mult, add and shift at ``bits`` (32: float, 8: fixed point)."""
    if bits not in UNIT_ENERGY_PJ:
        raise ValueError(f"bits must be one of {BITS}, got {bits!r}")
    return UNIT_ENERGY_PJ[bits]


def op_energy_pj(mult: float, add: float, shift: float, bits: int = 32) -> float:
    """Compute energy in pJ of ``mult`` multiplies, ``add`` additions and ``shift`` shifts."""
    unit = unit_energy_pj(bits)
    return mult * unit["mult"] + add * unit["add"] + shift * unit["shift"]
