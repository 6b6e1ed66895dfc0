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
import json
import logging
import math
import os
import random
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm

from ..data.sized_dictionary import dictionary_of_size
from ..hardware.costing import random_weight_model
from ..hardware.features import LatencyRecord, append_latency_record, read_latency_records
from ..hardware.latency import describe_device, measure_latency, pinned_threads, resolve_device
from ..search.space import SearchSpace, Subnet
from .common import user_errors_to_exit

logger = logging.getLogger(__name__)

# How many draws may repeat an earlier subnet before the space counts as too small for --num-subnets.
_MAX_DRAWS_PER_SUBNET = 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftadd-measure-latency", description=__doc__)
    parser.add_argument("--search-space", required=True, help="search space YAML (configs/spaces/*.yml)")
    parser.add_argument("--out", required=True, help="JSONL latency dataset to append to")
    parser.add_argument("--num-subnets", type=int, required=True, help="subnets the dataset should hold for this seed")
    parser.add_argument("--seed", type=int, default=1, help="seed of the subnet sequence")
    parser.add_argument("--include-largest-smallest", action="store_true", help="the space's largest and smallest subnets come first")
    parser.add_argument("--threads", type=int, help="CPU threads pinned while timing (default: torch's default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when present, else cpu")
    parser.add_argument("--src-len", type=int, default=30, help="source tokens (batch 1)")
    parser.add_argument("--tgt-len", type=int, default=30, help="incremental decoder steps")
    parser.add_argument("--beam", type=int, default=4, help="beam size (decoder batch)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per subnet")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per subnet (mean of the 10-90%% range)")
    parser.add_argument("--vocab-size", type=int, default=32000, help="joined vocabulary size (output projection)")
    parser.add_argument("--reference", choices=("none", "smallest", "largest"), default="none",
                        help="paired timing against this subnet of the space, for machines whose speed drifts (default: none, HAT's direct timing)")
    parser.add_argument("--reference-ms", type=float, help="with --reference: the scale of the ratios (default: measured once per file)")
    parser.add_argument("--on-error", choices=("stop", "skip"), default="stop", help="a malformed line in --out: stop, or skip it")
    return parser


def subnet_sequence(space: SearchSpace, seed: int, include_extremes: bool = False) -> Iterator[Subnet]:
    """Distinct subnets in a fixed order that depends only on (space, seed, include_extremes)."""
    seen: set[str] = set()
    rng = random.Random(f"shiftadd-latency:{seed}")
    extremes = [space.largest(), space.smallest()] if include_extremes else []
    repeats = 0
    while True:
        subnet = extremes.pop(0) if extremes else space.sample(rng)
        key = subnet.key()
        if key in seen:
            repeats += 1
            if repeats > _MAX_DRAWS_PER_SUBNET * (len(seen) + 1):
                raise ValueError(f"--num-subnets: the search space {space.name} has no more than {len(seen)} distinct subnets")
            continue
        seen.add(key)
        yield subnet


def planned_subnets(space: SearchSpace, count: int, seed: int, include_extremes: bool) -> list[Subnet]:
    sequence = subnet_sequence(space, seed, include_extremes)
    return [next(sequence) for _ in range(count)]


def existing_records(path: Path, space: SearchSpace, device: str, threads: int, reference: str | None, on_error: str) -> list[LatencyRecord]:
    """The rows ``path`` already holds; they must come from the same device, thread count and timing."""
    if not path.is_file():
        return []
    repair_partial_last_line(path)
    if not path.read_text(encoding="utf-8").strip():
        return []
    records = read_latency_records(path, space, on_error=on_error)
    for record in records:
        if (record.device, record.threads) != (device, threads):
            raise ValueError(
                f"--out {path} holds measurements on {record.device} with {record.threads} threads; this run is on "
                f"{device} with {threads} threads (write them to another file)"
            )
        if (record.reference, record.reference_ms) != (records[0].reference, records[0].reference_ms) or record.reference != reference:
            raise ValueError(
                f"--out {path} holds rows timed with --reference {record.reference or 'none'} (reference_ms "
                f"{record.reference_ms}); this run uses --reference {reference or 'none'} (write them to another file)"
            )
    versions = sorted({record.torch for record in records} - {torch.__version__})
    if versions:
        logger.warning("%s also holds rows measured with torch %s (this run: %s)", path, ", ".join(versions), torch.__version__)
    return records


def repair_partial_last_line(path: Path) -> None:
    """Drop a last line cut off by a kill mid-write (no newline, not JSON), so the next append starts clean."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    head, _, tail = data.rpartition(b"\n")
    try:
        json.loads(tail)
    except ValueError:
        logger.warning("%s: dropping the unfinished last line (%d bytes) left by an interrupted run", path, len(tail))
        with open(path, "r+b") as handle:
            handle.truncate(len(head) + 1 if head else 0)
            handle.flush()
            os.fsync(handle.fileno())
        return
    with open(path, "ab") as handle:
        handle.write(b"\n")


def _check_positive(args: argparse.Namespace) -> None:
    for name in ("num_subnets", "src_len", "tgt_len", "beam", "runs", "vocab_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be zero or more, got {args.warmup}")


def reference_scale(given: float | None, records: list[LatencyRecord], reference: torch.nn.Module, timing: dict, runs: int, out: Path) -> float:
    """The reference latency a file's ratios are scaled by: its rows', else ``--reference-ms``, else measured now."""
    if records:
        if given is not None and given != records[0].reference_ms:
            raise ValueError(f"--reference-ms {given} differs from the {records[0].reference_ms} of the rows already in {out}")
        return records[0].reference_ms
    if given is not None:
        return given
    # More runs than a subnet gets: this one number scales the whole file.
    return measure_latency(reference, runs=5 * runs, **timing)["latency_ms"]


@user_errors_to_exit
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_positive(args)
    space = SearchSpace.from_file(args.search_space)
    device = resolve_device(args.device)
    out = Path(args.out)
    reference = None if args.reference == "none" else args.reference
    if args.reference_ms is not None and reference is None:
        raise ValueError("--reference-ms needs --reference smallest|largest")
    if args.reference_ms is not None and not (math.isfinite(args.reference_ms) and args.reference_ms > 0):
        raise ValueError(f"--reference-ms must be a positive number, got {args.reference_ms}")
    with pinned_threads(args.threads) as threads:
        records = existing_records(out, space, describe_device(device), threads, reference, args.on_error)
        done = {record.subnet.key() for record in records}
        todo = [s for s in planned_subnets(space, args.num_subnets, args.seed, args.include_largest_smallest) if s.key() not in done]
        dictionary = dictionary_of_size(args.vocab_size)
        torch.manual_seed(args.seed)
        timing = dict(src_len=args.src_len, tgt_len=args.tgt_len, beam=args.beam, warmup=args.warmup, device=device, threads=threads)
        paired = {}
        if reference is not None and todo:
            paired["reference"] = random_weight_model(getattr(space, reference)(), dictionary)
            paired["reference_ms"] = reference_scale(args.reference_ms, records, paired["reference"], timing, args.runs, out)
        with tqdm(total=args.num_subnets, initial=args.num_subnets - len(todo), desc="subnets", unit="subnet") as bar:
            for subnet in todo:
                result = measure_latency(random_weight_model(subnet, dictionary), runs=args.runs, **timing, **paired)
                record = LatencyRecord(subnet, result["latency_ms"], result["device"], result["torch"], result["threads"],
                                       reference, result.get("reference_ms"))
                append_latency_record(out, record)
                bar.set_postfix(latency_ms=f"{result['latency_ms']:.1f}")
                bar.update()
    logger.info("%s: %d subnets measured now, %d were already there", out, len(todo), args.num_subnets - len(todo))
    return 0
