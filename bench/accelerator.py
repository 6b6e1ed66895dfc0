"""Accelerator cost model speed: vectorised + cached vs a naive pure-Python enumeration, one run.

Costs Transformer-base (6+6 layers, d 512, FFN 2048, 8 heads, 30 tokens; docs/architecture.md)
cold (caches cleared) and warm (per-shape cache filled, as during a search), and times the naive
nested-loop reference (fairseq_shiftadd/hardware/accelerator_reference.py) on each distinct op shape. The naive op-by-op
time is extrapolated from those per-shape timings (every op re-enumerates its shape).

    .venv/bin/python bench/accelerator.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package of this checkout

from fairseq_shiftadd.hardware import accelerator as acc  # noqa: E402
from fairseq_shiftadd.hardware.accelerator_reference import naive_charge, naive_cost, naive_tilings, transformer_base_ops  # noqa: E402
from fairseq_shiftadd.hardware.tiling import Shape  # noqa: E402


def naive_optimum(shape: Shape, operator: str, bits: int) -> tuple[float, float]:
    """Pure-Python reference: enumerate, cost and pick one op's tiling; (energy pJ, cycles)."""
    tilings = naive_tilings(shape)
    charge = naive_charge(operator, bits, "ours")
    costs = [naive_cost(shape, t, charge) for t in tilings]
    lo_e, hi_e = min(e for e, _ in costs), max(e for e, _ in costs)
    lo_c, hi_c = min(c for _, c in costs), max(c for _, c in costs)
    return min(costs, key=lambda ec: (ec[0] - lo_e) / hi_e + (ec[1] - lo_c) / hi_c)


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    ops = transformer_base_ops(30)
    report = acc.accelerator_cost(ops)
    print(f"Transformer-base, 30 tokens, 32 bits: {report.energy_mj:.2f} mJ, {report.latency_ms:.2f} ms "
          f"({len(ops)} ops; paper 69.41 mJ / 41.82 ms)")

    def cold() -> None:
        acc.clear_cache()
        acc.accelerator_cost(ops)

    cold_s = timed(cold, args.repeats)
    acc.accelerator_cost(ops)
    warm_s = timed(lambda: acc.accelerator_cost(ops), max(50, args.repeats))
    mixed = [transformer_base_ops(30, ffn) for ffn in ("mult", "shift", "add")]
    acc.clear_cache()
    mixed_cold_s = timed(lambda: [acc.accelerator_cost(m) for m in mixed], 1)

    shapes: dict[Shape, int] = {}
    for op in ops:
        shapes[Shape.of(op)] = shapes.get(Shape.of(op), 0) + 1
    naive_per_shape = {}
    for shape in shapes:
        start = time.perf_counter()
        naive_optimum(shape, "mult", 32)
        naive_per_shape[shape] = time.perf_counter() - start
    naive_unique_s = sum(naive_per_shape.values())
    naive_op_by_op_s = sum(naive_per_shape[s] * count for s, count in shapes.items())

    print(f"{'model':50s} {'ms':>10s} {'naive/this':>11s}")
    rows = [
        ("naive Python, op by op (extrapolated)", naive_op_by_op_s),
        ("naive Python, once per distinct shape (measured)", naive_unique_s),
        ("vectorised, cold (caches cleared)", cold_s),
        ("vectorised, cold, mult + shift + add FFN variants", mixed_cold_s),
        ("vectorised, warm per-shape cache, per subnet", warm_s),
    ]
    for name, seconds in rows:
        print(f"{name:50s} {seconds * 1e3:10.2f} {naive_op_by_op_s / seconds:10.0f}x")
    print(f"{len(shapes)} distinct shapes; valid tilings per shape: "
          + ", ".join(str(len(naive_tilings(s))) for s in shapes))

if __name__ == "__main__":
    main()
