"""Two demo runs, one of them next to a CPU burner: the same searched subnet and the same computed report columns.

The demo's search is constrained by computed costs (op-count energy, accelerator-model latency), so
what it finds must not depend on the machine's load; only the timed columns (marked * in the
report) may differ. Usage::

    python bench/demo_determinism.py [--quick] [--out DIR]

Prints both runs' tables and exits 1 if the searched subnet or a computed column differs.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

from fairseq_shiftadd.demo.report import computed_columns, table_rows
from fairseq_shiftadd.venv_commands import run_venv_command

REPO = Path(__file__).resolve().parents[1]


def burn(stop) -> None:
    """Keep one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def run_demo(out: Path, quick: bool) -> tuple[str, dict[str, list[str]], float]:
    start = time.monotonic()
    proc = run_venv_command(["shiftadd-demo", "--out", str(out), *(["--quick"] if quick else [])], cwd=REPO)
    if proc.returncode:
        sys.exit(f"shiftadd-demo --out {out} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = (out / "report.md").read_text()
    return (out / "search" / "best.yml").read_text(), table_rows(report), time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="demo-determinism", help="folder for the two demo outputs (quiet/ and loaded/)")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick setting (2-3 minutes a run)")
    args = parser.parse_args()
    out = Path(args.out)
    quiet = run_demo(out / "quiet", args.quick)
    stop = multiprocessing.Event()
    burner = multiprocessing.Process(target=burn, args=(stop,), daemon=True)
    burner.start()
    try:
        loaded = run_demo(out / "loaded", args.quick)
    finally:
        stop.set()
        burner.join()
    same = True
    for name, (subnet, rows, seconds) in (("no burner", quiet), ("with a CPU burner", loaded)):
        print(f"{name}: {seconds:.0f} s")
        for model, cells in rows.items():
            print(f"  {model}: {' | '.join(cells)}")
    if quiet[0] != loaded[0]:
        print("DIFFERENT searched subnets")
        same = False
    if computed_columns(quiet[1]) != computed_columns(loaded[1]):
        print("DIFFERENT computed columns")
        same = False
    print("same searched subnet and computed columns" if same else "FAILED")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
