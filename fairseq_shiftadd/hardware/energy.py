"""The op-count energy model: arithmetic counted from the model's own modules, priced per op.

Conventions (docs/architecture.md, "Costing"): a MAC is one mult and one add, an add-operator tap two adds
(difference and accumulate), a shift-operator tap one shift and one add; "mult" counts MACs.
An optional memory-traffic term, kept apart from compute energy, reads every weight and every
op's input activations once per sequence from DRAM, at the DRAM cost of the accelerator model
(200 RF-access units of ``bits/16`` pJ per word).
"""
from __future__ import annotations

from typing import Any, Sequence

from .energy_table import MEMORY_ENERGY_RATIO, op_energy_pj, unit_energy_pj
from ..op_record import OpRecord

PJ_PER_MJ = 1e9


def dram_word_pj(bits: int) -> float:
    """Energy of moving one ``bits``-bit word from DRAM (the accelerator model's DRAM unit)."""
    return MEMORY_ENERGY_RATIO["dram"] * bits / 16


def memory_words(op: OpRecord) -> int:
    """Words read once per sequence: the op's weights and its input activations."""
    return op.params + op.n * op.h * op.w * op.c


def opcount_report(ops: Sequence[OpRecord], bits: int = 32, memory: bool = False) -> dict[str, Any]:
    """``{"layers": [{"name", "mult", "add", "shift", "energy_mj"}...], "total": {...}}`` per sequence.

    ``total`` also holds ``params`` (the weights the ops read); with ``memory`` every entry gains
    ``memory_energy_mj``.
    """
    unit_energy_pj(bits)
    layers: dict[str, dict[str, Any]] = {}
    for op in ops:
        entry = layers.setdefault(op.layer, {"name": op.layer, "mult": 0, "add": 0, "shift": 0, "energy_mj": 0.0, "params": 0})
        counts = op.arithmetic()
        for kind in ("mult", "add", "shift"):
            entry[kind] += counts[kind]
        entry["energy_mj"] += op_energy_pj(counts["mult"], counts["add"], counts["shift"], bits) / PJ_PER_MJ
        entry["params"] += op.params
        if memory:
            entry["memory_energy_mj"] = entry.get("memory_energy_mj", 0.0) + memory_words(op) * dram_word_pj(bits) / PJ_PER_MJ
    total: dict[str, Any] = {key: sum(layer[key] for layer in layers.values()) for key in ("params", "mult", "add", "shift", "energy_mj")}
    if memory:
        total["memory_energy_mj"] = sum(layer["memory_energy_mj"] for layer in layers.values())
    for layer in layers.values():
        del layer["params"]
    return {"layers": list(layers.values()), "total": total}
