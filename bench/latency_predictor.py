"""Benchmark the latency predictor on this machine: measure, train, score on held-out subnets.

    python bench/latency_predictor.py --data DATA_BIN [--num-subnets 2000] [--work-dir DIR]
    python bench/latency_predictor.py --vocab-size 32000 --search-space configs/spaces/wmt14.en-de.yml --device cuda

1. ``shiftadd-measure-latency`` measures ``--num-subnets`` subnets of the space (resumable: a rerun
   with the same arguments only measures what is missing from WORK/latency.jsonl), by default
   paired with the space's smallest subnet (``--reference``; every later measurement reuses the
   file's scale), which cancels a drift of the machine's speed. With
   ``--clock cpu`` the bench times the same runs (``translate_once`` of hardware/latency.py, one
   thread, 10-90% mean) with the thread's CPU clock: on a loaded shared machine wall-clock
   latency mostly measures the other jobs (see the repeatability line).
2. The first ``--repeat`` subnets are measured again into WORK/repeat.jsonl (same seed, so the
   same subnets, minutes later): their MAPE against the first measurement is the measurement's own
   noise, a floor no predictor can beat.
3. ``fairseq-train WORK/latency.jsonl --task latency_prediction --arch latency_mlp --criterion
   latency_predictor`` trains the predictor (fixed updates, cosine schedule, validated and saved
   once at the end: no checkpoint selection). With ``--select``, the MLP's settings are first
   chosen among ``--candidates`` on a dev split carved from the training split alone (another
   seeded hash, ``--split-seed 2`` on WORK/select/train-split.jsonl): the held-out subnets never
   influence any choice.
4. ``checkpoint_last.pt`` predicts the task's held-out split (the seeded hash split, ~10%):
   MAPE, RMSE (ms) and Kendall tau, next to the same numbers on the training split.
5. The held-out subnets are re-measured ``--holdout-rounds`` more times in interleaved rounds
   (WORK/holdout-round-K.jsonl, resumable) and the predictor is scored again against the mean of
   all their measurements, a less noisy truth; a single measurement's score against that mean is
   printed beside it.
The load average is printed with every step: other jobs on a shared machine inflate timings.
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from fairseq.data import Dictionary
from tqdm import tqdm

from bench_common import ROOT, load, run  # noqa: E402  (bench/ is the script's directory)

sys.path.insert(0, str(ROOT))

from fairseq_shiftadd.hardware.latency_dataset import planned_subnets  # noqa: E402
from fairseq_shiftadd.data.sized_dictionary import data_vocab_size  # noqa: E402
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size  # noqa: E402
from fairseq_shiftadd.hardware.costing import random_weight_model  # noqa: E402
from fairseq_shiftadd.hardware.latency_dataset import LatencyRecord, append_latency_record, read_latency_records  # noqa: E402
from fairseq_shiftadd.hardware.latency import (  # noqa: E402
    describe_device, dummy_inputs, measure_latency, pinned_threads, translate_once, trimmed_mean,
)
from fairseq_shiftadd.hardware.predictor import LatencyPredictor  # noqa: E402
from fairseq_shiftadd.files import atomic_write_text  # noqa: E402
from fairseq_shiftadd.space import SearchSpace, Subnet  # noqa: E402
from fairseq_shiftadd.tasks.latency_prediction import split_records  # noqa: E402



def measure(args: argparse.Namespace, out: Path, count: int, dictionary: Dictionary, reference_ms: float | None = None) -> float:
    """Measure the first ``count`` subnets of the seeded sequence into ``out`` (resumable); wall seconds.

    ``--clock wall`` runs ``shiftadd-measure-latency`` (wall clock, HAT's 10-90% mean, paired with
    ``--reference`` at the scale ``reference_ms``: None measures one, for the first file);
    ``cpu`` times the same unit of work (``translate_once``, same inputs, one thread) with the
    thread's CPU clock instead, which other jobs time-sharing the cores do not inflate.
    """
    start = time.perf_counter()
    if args.clock == "wall":
        run([
            "shiftadd-measure-latency", "--search-space", args.search_space, "--out", str(out), "--num-subnets", str(count),
            "--seed", "1", "--include-largest-smallest", "--threads", str(args.threads), "--device", args.device,
            "--warmup", str(args.warmup), "--runs", str(args.runs), "--vocab-size", str(len(dictionary)),
            "--reference", args.reference, *(["--reference-ms", repr(reference_ms)] if reference_ms else []),
        ], gpus=args.device == "cuda")
        return time.perf_counter() - start
    space = SearchSpace.from_file(ROOT / args.search_space)
    done = {r.subnet.key() for r in read_latency_records(out, space)} if out.is_file() else set()
    torch.manual_seed(1)
    for subnet in planned_subnets(space, count, seed=1, include_extremes=True):
        if subnet.key() not in done:
            append_latency_record(out, bench_record(subnet, time_subnet(subnet, args, dictionary, {}), args, {}))
    return time.perf_counter() - start


def bench_record(subnet: Subnet, latency_ms: float, args: argparse.Namespace, paired: dict) -> LatencyRecord:
    reference = args.reference if paired else None
    return LatencyRecord(subnet, latency_ms, describe_device(torch.device(args.device)), torch.__version__, args.threads,
                         reference, paired.get("reference_ms"))


def time_subnet(subnet: Subnet, args: argparse.Namespace, dictionary: Dictionary, paired: dict) -> float:
    """One latency of ``subnet`` (ms) by the bench's protocol: ``measure_latency`` (``paired``: its
    ``reference`` and ``reference_ms``) or, with ``--clock cpu``, the same runs timed with the thread's CPU clock."""
    model = random_weight_model(subnet, dictionary).eval()
    if args.clock == "wall":
        return measure_latency(model, warmup=args.warmup, runs=args.runs, device=args.device, threads=args.threads, **paired)["latency_ms"]
    inputs = dummy_inputs(model, 30, 30, 4, torch.device("cpu"))
    samples = []
    with pinned_threads(args.threads), torch.inference_mode():
        for index in range(args.warmup + args.runs):
            begin = time.thread_time()
            translate_once(model, *inputs)
            if index >= args.warmup:
                samples.append((time.thread_time() - begin) * 1000.0)
    return trimmed_mean(samples)


def remeasure_rounds(subnets: list[Subnet], args: argparse.Namespace, dictionary: Dictionary, work: Path, paired: dict) -> np.ndarray:
    """Latencies (rounds x subnets) from ``--holdout-rounds`` interleaved re-measurements (resumable).

    Round r times every subnet once before round r+1 starts, so a slow drift of the machine spreads
    over all subnets instead of biasing some.
    """
    space = SearchSpace.from_file(ROOT / args.search_space)
    rounds = []
    for index in tqdm(range(args.holdout_rounds), desc="held-out rounds", unit="round"):
        out = work / f"holdout-round-{index}.jsonl"
        done = {r.subnet.key(): r.latency_ms for r in read_latency_records(out, space)} if out.is_file() else {}
        for subnet in subnets:
            if subnet.key() not in done:
                done[subnet.key()] = time_subnet(subnet, args, dictionary, paired)
                append_latency_record(out, bench_record(subnet, done[subnet.key()], args, paired))
        rounds.append([done[s.key()] for s in subnets])
    return np.array(rounds)


@dataclass(frozen=True)
class Candidate:
    """One setting of the predictor's training: MLP widths, updates, (decoupled) weight decay."""

    hidden_dims: str
    max_update: int
    weight_decay: float

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        """``HIDDEN:UPDATES:WEIGHT_DECAY``, e.g. ``400,400,400:3000:0``."""
        try:
            hidden, updates, decay = text.split(":")
            return cls(hidden, int(updates), float(decay))
        except ValueError:
            raise SystemExit(f"--candidates: expected HIDDEN:UPDATES:WEIGHT_DECAY such as 400,400,400:3000:0, got {text!r}")

    def __str__(self) -> str:
        return f"hidden {self.hidden_dims}, {self.max_update} updates, weight decay {self.weight_decay:g}"


def train_predictor(data: Path, save: Path, candidate: Candidate, search_space: str, split_seed: int) -> str:
    """Train a predictor from scratch with real ``fairseq-train``; its last validation line (RMSE, MAPE, tau)."""
    shutil.rmtree(save, ignore_errors=True)  # never resume an older run
    log = run([
        "fairseq-train", str(data), "--user-dir", str(ROOT / "fairseq_shiftadd"),
        "--task", "latency_prediction", "--search-space", str(ROOT / search_space), "--split-seed", str(split_seed),
        "--arch", "latency_mlp", "--hidden-dims", candidate.hidden_dims, "--criterion", "latency_predictor",
        "--optimizer", "adam", "--lr", "1e-3", "--weight-decay", repr(candidate.weight_decay), "--lr-scheduler", "cosine",
        "--batch-size", "128", "--max-update", str(candidate.max_update), "--save-dir", str(save),
        "--cpu", "--seed", "1", "--no-epoch-checkpoints", "--no-save-optimizer-state", "--save-interval", "100000",
        "--validate-interval", "100000", "--log-format", "simple",
    ])
    valid = [line for line in log.splitlines() if "valid on 'valid'" in line]
    return valid[-1].split("|", 3)[-1].strip()


def select_on_dev(train_split: list[LatencyRecord], candidates: list[Candidate], args: argparse.Namespace, work: Path) -> Candidate:
    """The candidate with the best Kendall tau (then MAPE) on a dev split of the training subnets only."""
    data = work / "train-split.jsonl"
    atomic_write_text(data, "".join(record.to_json() + "\n" for record in train_split))
    results = []
    for candidate in tqdm(candidates, desc="selecting on dev", unit="candidate"):
        line = train_predictor(data, work / "predictor", candidate, args.search_space, split_seed=2)
        tau = float(re.search(r"kendall_tau (-?[\d.]+)", line).group(1))
        mape = float(re.search(r"mape ([\d.]+)", line).group(1))
        results.append((tau, -mape, candidate))
        print(f"  dev: {candidate}: MAPE {mape:.2f}%, Kendall tau {tau:.3f}", flush=True)
    chosen = max(results, key=lambda result: result[:2])[2]
    print(f"chosen on dev: {chosen}", flush=True)
    return chosen


def scores(predicted: np.ndarray, measured: np.ndarray) -> str:
    mape = float(np.mean(np.abs(predicted - measured) / measured) * 100)
    rmse = math.sqrt(float(np.mean((predicted - measured) ** 2)))
    tau = float(kendalltau(predicted, measured).statistic)
    return f"MAPE {mape:.2f}% | RMSE {rmse:.3f} ms | Kendall tau {tau:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--data", help="binarized data dir whose joined dictionary sets the vocabulary size")
    vocab.add_argument("--vocab-size", type=int, help="joined vocabulary size (output projection), without data")
    parser.add_argument("--search-space", default="configs/spaces/tiny.yml")
    parser.add_argument("--work-dir", default="/tmp/shiftadd-bench-latency")
    parser.add_argument("--num-subnets", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=50, help="subnets measured twice (measurement noise)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where latency is measured (the predictor trains on CPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: shiftadd-measure-latency; cpu: the thread's CPU time of the same runs")
    parser.add_argument("--reference", choices=("none", "smallest", "largest"), default="smallest",
                        help="paired timing against this subnet (wall clock only; none: HAT's direct timing)")
    parser.add_argument("--holdout-rounds", type=int, default=3,
                        help="re-measure the held-out subnets this many more times and score against the mean too")
    parser.add_argument("--max-update", type=int, default=3000)
    parser.add_argument("--hidden-dims", default="400,400,400")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--select", action="store_true",
                        help="choose hidden dims / updates / weight decay among --candidates on a dev split of the training subnets")
    parser.add_argument("--candidates", nargs="+", metavar="HIDDEN:UPDATES:WEIGHT_DECAY", default=[
        "400,400,400:600:0", "400,400,400:3000:0", "400,400,400:3000:0.1", "100,100:3000:0", "100,100:3000:0.1", "64:3000:0"])
    args = parser.parse_args()
    if args.clock == "cpu" and (args.reference != "none" or args.device != "cpu"):
        parser.error("--clock cpu times CPU runs directly: use it with --reference none --device cpu")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    space = SearchSpace.from_file(ROOT / args.search_space)
    dictionary = dictionary_of_size(args.vocab_size or data_vocab_size(args.data))

    print(f"space {space.name}, vocab {len(dictionary)}, {args.threads} thread(s), warmup {args.warmup}, runs {args.runs}, "
          f"clock {args.clock}, reference {args.reference}; {load()}", flush=True)
    seconds = measure(args, work / "latency.jsonl", args.num_subnets, dictionary)
    records = read_latency_records(work / "latency.jsonl", space)
    latencies = np.array([r.latency_ms for r in records])
    print(f"measured {len(records)} subnets in {seconds:.0f} s this run ({records[0].device}); latency "
          f"{latencies.min():.2f}-{latencies.max():.2f} ms, mean {latencies.mean():.2f}; {load()}", flush=True)

    paired = {}
    if args.reference != "none":
        paired = {"reference": random_weight_model(getattr(space, args.reference)(), dictionary), "reference_ms": records[0].reference_ms}
        print(f"paired timing against the {args.reference} subnet, scale reference_ms {records[0].reference_ms:.3f}", flush=True)
    seconds = measure(args, work / "repeat.jsonl", args.repeat, dictionary, paired.get("reference_ms"))
    first = {r.subnet.key(): r.latency_ms for r in records}
    again = read_latency_records(work / "repeat.jsonl", space)
    pairs = np.array([(first[r.subnet.key()], r.latency_ms) for r in again])
    print(f"measurement repeatability ({len(pairs)} subnets re-measured, {seconds:.0f} s): "
          f"{scores(pairs[:, 1], pairs[:, 0])}; {load()}", flush=True)

    splits = split_records(records, seed=1, valid_fraction=0.1)
    chosen = Candidate(args.hidden_dims, args.max_update, args.weight_decay)
    if args.select:
        chosen = select_on_dev(splits["train"], [Candidate.parse(text) for text in args.candidates], args, work / "select")
    save = work / "predictor"
    start = time.perf_counter()
    last_valid = train_predictor(work / "latency.jsonl", save, chosen, args.search_space, split_seed=1)
    print(f"fairseq-train ({chosen}): {time.perf_counter() - start:.0f} s; last validation: {last_valid}", flush=True)

    predictor = LatencyPredictor.from_checkpoint(save / "checkpoint_last.pt", space=space)
    for name, split in splits.items():
        measured = np.array([r.latency_ms for r in split])
        predicted = predictor.predict([r.subnet for r in split])
        print(f"{'held-out' if name == 'valid' else 'train'} ({len(split)} subnets): {scores(predicted, measured)}")
    if args.holdout_rounds:
        held_out = [r.subnet for r in splits["valid"]]
        first = np.array([r.latency_ms for r in splits["valid"]])
        start = time.perf_counter()
        mean = np.vstack([first, remeasure_rounds(held_out, args, dictionary, work, paired)]).mean(axis=0)
        print(f"held-out re-measured {args.holdout_rounds} more times ({time.perf_counter() - start:.0f} s); against the mean "
              f"of {args.holdout_rounds + 1} measurements: predictor {scores(predictor.predict(held_out), mean)}; "
              f"one measurement {scores(first, mean)}; {load()}", flush=True)
    print(f"done; {load()}")


if __name__ == "__main__":
    main()
