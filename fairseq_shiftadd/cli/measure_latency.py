"""``shiftadd-measure-latency``: a latency dataset of random subnets of a space, measured on this device.

Subnet ``i`` of the dataset is a pure function of ``(--seed, i)`` (distinct subnets, optionally
the largest and smallest first), so a run that is killed and restarted with the same arguments
measures exactly the subnets it had not written yet: rows already in ``--out`` for this space,
device and thread count are skipped, and the result is the file an uninterrupted run writes.

``--reference smallest|largest`` times every run of a subnet paired with a run of that subnet of
the space (hardware/latency.py: the ratio cancels a drift of the machine's speed). The ratios are
scaled by ``--reference-ms``, by default the reference's own latency measured directly when the
file is started and then read back from its rows, so one file keeps one scale; pass the same
``--reference-ms`` to put several files on one scale.
"""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from ..errors import InvalidInput, user_errors_to_exit
from .common import add_verbose, parse
from ..hardware.latency import resolve_device
from ..hardware.latency_dataset import measure_subnets
from ..space import SearchSpace

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftadd-measure-latency", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--search-space", required=True, help="search space YAML (configs/spaces/*.yml)")
    parser.add_argument("--out", required=True, help="JSONL latency dataset to append to")
    parser.add_argument("--num-subnets", type=int, required=True, help="subnets the dataset should hold for this seed")
    parser.add_argument("--seed", type=int, default=1, help="seed of the subnet sequence")
    parser.add_argument("--include-largest-smallest", action="store_true", help="the space's largest and smallest subnets come first")
    parser.add_argument("--threads", type=int, help="CPU threads pinned while timing (None: torch's default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="device to time on (None: cuda when present, else cpu)")
    parser.add_argument("--src-len", type=int, default=30, help="source tokens (batch 1)")
    parser.add_argument("--tgt-len", type=int, default=30, help="incremental decoder steps")
    parser.add_argument("--beam", type=int, default=4, help="beam size (decoder batch)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per subnet")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per subnet (mean of the 10-90%% range)")
    parser.add_argument("--vocab-size", type=int, default=32000, help="joined vocabulary size (output projection)")
    parser.add_argument("--reference", choices=("none", "smallest", "largest"), default="none",
                        help="paired timing against this subnet of the space, for machines whose speed drifts (none: HAT's direct timing)")
    parser.add_argument("--reference-ms", type=float, help="with --reference: the scale of the ratios (None: measured once per file)")
    parser.add_argument("--on-error", choices=("stop", "skip"), default="stop", help="a malformed line in --out: stop, or skip it")
    add_verbose(parser)
    return parser


def _check_positive(args: argparse.Namespace) -> None:
    for name in ("num_subnets", "src_len", "tgt_len", "beam", "runs", "vocab_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInput(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.warmup < 0:
        raise InvalidInput(f"--warmup must be zero or more, got {args.warmup}")


@user_errors_to_exit
def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    _check_positive(args)
    space = SearchSpace.from_file(args.search_space)
    reference = None if args.reference == "none" else args.reference
    if args.reference_ms is not None and reference is None:
        raise InvalidInput("--reference-ms needs --reference smallest|largest")
    if args.reference_ms is not None and not (math.isfinite(args.reference_ms) and args.reference_ms > 0):
        raise InvalidInput(f"--reference-ms must be a positive number, got {args.reference_ms}")
    todo = measure_subnets(
        Path(args.out), space, args.num_subnets, seed=args.seed, include_extremes=args.include_largest_smallest,
        vocab_size=args.vocab_size, runs=args.runs, warmup=args.warmup, src_len=args.src_len, tgt_len=args.tgt_len,
        beam=args.beam, device=resolve_device(args.device), threads=args.threads, reference=reference,
        reference_ms=args.reference_ms, on_error=args.on_error,
    )
    logger.info("%s: %d subnets measured now, %d were already there", args.out, todo, args.num_subnets - todo)
    return 0
