"""Do several processes or threads speed up the search's fitness, or latency measurement, on this machine?

    python bench/parallel_fitness.py [--space multi30k] [--subnets 16] [--valid 1000] [--rounds 3]

Fitness (``shiftadd-search``): validation loss of ``--subnets`` sampled subnets with the supernet's
weights (``SupernetFitness.losses``) over ``--valid`` toy validation pairs, scored by

* 1 process with 2 threads, and with 1 thread;
* 2 worker processes x 1 thread, each holding the supernet and the batches and scoring the next
  subnet as soon as it is free (a ``multiprocessing.Pool`` with ``imap``, chunk size 1).

The scoring time excludes loading (a search's pool would live for the whole search; the load time is
printed apart). The rounds alternate the three, and the losses of the workers are checked against
the 1-process ones.

Latency (``shiftadd-measure-latency``): one subnet's latency measured alone on 1 thread vs the same
measurement while a second process measures another subnet on the other core, the question being
whether two measurements at once still measure the subnet.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_common import BIN, load, machine  # noqa: E402  (bench/ is the script's directory)
from fairseq_shiftadd.data.toy_corpus import binarized_toy_corpus  # noqa: E402
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size  # noqa: E402
from fairseq_shiftadd.hardware.costing import random_weight_model  # noqa: E402
from fairseq_shiftadd.hardware.latency import measure_latency  # noqa: E402
from fairseq_shiftadd.search.fitness import SupernetFitness  # noqa: E402
from fairseq_shiftadd.space import SearchSpace  # noqa: E402

_worker_fitness: SupernetFitness | None = None


def supernet_checkpoint(data: Path, space_file: Path, save_dir: Path) -> Path:
    """A supernet after one update (weights do not change the work)."""
    subprocess.run([
        str(BIN / "fairseq-train"), str(data), "--user-dir", str(ROOT / "fairseq_shiftadd"), "--task", "shiftadd_supernet_translation",
        "--arch", "shiftadd_supernet_wmt_en_de", "--search-space", str(space_file), "--weight-sharing", "heterogeneous",
        "--optimizer", "adam", "--lr", "1e-4", "--max-tokens", "1500", "--max-update", "1", "--disable-validation",
        "--save-dir", str(save_dir), "--no-progress-bar", "--num-workers", "0", "--cpu",
    ], check=True, capture_output=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    return save_dir / "checkpoint_last.pt"


def load_worker(data: str, checkpoint: str, space_file: str) -> None:
    global _worker_fitness
    torch.set_num_threads(1)
    _worker_fitness = SupernetFitness(data, checkpoint, SearchSpace.from_file(space_file))


def worker_loss(subnet) -> float:
    return _worker_fitness.loss(subnet)


def fitness(args: argparse.Namespace, data: Path, checkpoint: Path, space_file: Path) -> None:
    space = SearchSpace.from_file(space_file)
    rng = random.Random(1)
    subnets = [space.sample(rng) for _ in range(args.subnets)]
    start = time.perf_counter()
    local = SupernetFitness(str(data), str(checkpoint), space)
    print(f"\nfitness: {args.space} supernet, {len(local.batches)} validation batches ({args.valid} pairs), "
          f"{args.subnets} subnets per round; loading the supernet and batches: {time.perf_counter() - start:.1f} s; {load()}")
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    pool = context.Pool(2, initializer=load_worker, initargs=(str(data), str(checkpoint), str(space_file)))
    pool.map(worker_loss, subnets[:2], chunksize=1)  # both workers loaded and warm
    print(f"2 workers loaded and warm in {time.perf_counter() - start:.1f} s", flush=True)
    local.losses(subnets[:2])  # warm
    seconds: dict[str, list[float]] = {"1 process x 2 threads": [], "1 process x 1 thread": [], "2 processes x 1 thread": []}
    for round_index in range(args.rounds):
        for name in seconds:
            start = time.perf_counter()
            if name.startswith("2 processes"):
                losses = list(pool.imap(worker_loss, subnets, chunksize=1))
            else:
                torch.set_num_threads(2 if "2 threads" in name else 1)
                losses = local.losses(subnets)
                reference = losses
            seconds[name].append(time.perf_counter() - start)
            print(f"  round {round_index + 1}: {name}: {seconds[name][-1]:.1f} s; {load()}", flush=True)
        worst = max(abs(a - b) for a, b in zip(losses, reference))
        assert worst < 1e-4, f"workers' losses differ from the process's by {worst}"
    pool.close()
    baseline = seconds["1 process x 2 threads"]
    print(f"\n| fitness of {args.subnets} subnets | seconds (median of {args.rounds}) | subnets/s | speed-up vs 1 process x 2 threads (median per-round) |")
    print("|---|---|---|---|")
    for name, values in seconds.items():
        speedup = statistics.median(b / v for v, b in zip(values, baseline))
        print(f"| {name} | {statistics.median(values):.1f} | {args.subnets / statistics.median(values):.2f} | {speedup:.2f}x |")


def latency(args: argparse.Namespace, space_file: Path) -> None:
    space = SearchSpace.from_file(space_file)
    subnet = space.largest()
    model = random_weight_model(subnet, dictionary_of_size(10000))
    other = random_weight_model(space.sample(random.Random(2)), dictionary_of_size(10000))
    context = multiprocessing.get_context("fork")
    alone, together = [], []
    for _ in range(args.rounds):
        alone.append(measure_latency(model, runs=args.latency_runs, threads=1, device="cpu")["latency_ms"])
        neighbour = context.Process(target=measure_latency, args=(other,), kwargs=dict(runs=4 * args.latency_runs, threads=1, device="cpu"))
        neighbour.start()
        together.append(measure_latency(model, runs=args.latency_runs, threads=1, device="cpu")["latency_ms"])
        neighbour.join()
    print(f"\nlatency of the {args.space} space's largest subnet, 1 thread, {args.latency_runs} runs, median of {args.rounds}; {load()}")
    print("| measured | latency ms |")
    print("|---|---|")
    print(f"| alone | {statistics.median(alone):.1f} |")
    print(f"| while another process measures on the other core | {statistics.median(together):.1f} "
          f"({statistics.median(t / a for t, a in zip(together, alone)):.2f}x) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="multi30k", help="search space (configs/spaces/NAME.yml)")
    parser.add_argument("--subnets", type=int, default=16, help="subnets scored per round")
    parser.add_argument("--valid", type=int, default=1000, help="toy validation pairs (Multi30k's val has 1014)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=20, help="timed runs per latency measurement (0: skip latency)")
    args = parser.parse_args()
    print(f"{machine()}; {load()}")
    space_file = ROOT / f"configs/spaces/{args.space}.yml"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = binarized_toy_corpus(work, train=2000, valid=args.valid)
        fitness(args, data, supernet_checkpoint(data, space_file, work / "supernet"), space_file)
    if args.latency_runs:
        latency(args, space_file)
    print(f"\ndone; {load()}")


if __name__ == "__main__":
    main()
