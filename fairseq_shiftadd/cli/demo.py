"""``shiftadd-demo`` (``make demo``): the whole ShiftAddNAS pipeline on a generated toy corpus, with the real commands.

The stages are listed in :mod:`fairseq_shiftadd.demo.stages`; finished ones are skipped on a re-run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from ..demo.runner import FULL, QUICK, Demo, StageFailed, run_stages, shown
from ..demo.stages import STAGES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftadd-demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="demo-out", help="output folder (finished stages are skipped on re-run)")
    parser.add_argument("--quick", action="store_true", help="a much smaller setting (2-3 minutes), for tests")
    parser.add_argument("--seed", type=int, default=1, help="seed of the corpus, training, sampling and search")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    demo = Demo(Path(args.out), QUICK if args.quick else FULL, args.seed)
    start = time.monotonic()
    try:
        run_stages(demo, STAGES)
    except StageFailed as err:
        print(f"demo: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; run the same command again to continue", file=sys.stderr, flush=True)
        return 130
    print(f"\ndemo finished in {time.monotonic() - start:.0f} s: {shown(demo.out / 'report.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
