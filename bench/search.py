"""Benchmark the evolutionary search on the tiny space: fitness rate, cost functions, full search.

    python bench/search.py --data DATA_BIN [--checkpoint SUPERNET.pt] [--iterations 30]

1. Supernet: ``--checkpoint``, or trained here with ``fairseq-train --max-update --train-updates``.
2. Fitness: ``SupernetFitness.loss`` (validation loss with inherited weights, every sentence of
   the valid split) on ``--evals`` random distinct subnets -> evaluations per second.
3. Cost functions per subnet, on ``--cost-subnets`` random subnets after one warm call (which
   builds the meta-device supernet): op-count energy, accelerator energy, params.
4. ``shiftadd-search`` with HAT's defaults (population 125, parents 25, mutations 50,
   crossovers 50) and ``--iterations`` under an energy budget of ``--budget-fraction`` x the largest
   subnet's op-count energy: wall time of the whole command and the distinct subnets it evaluated.
   With fewer than 30 iterations the 30-iteration time is extrapolated linearly from the
   command's mean time per iteration (start-up included; printed as an extrapolation).
"""
from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import time
from pathlib import Path

from bench_common import BIN, ROOT, load, run  # noqa: E402  (bench/ is the script's directory)

sys.path.insert(0, str(ROOT))

from fairseq_shiftadd.data.sized_dictionary import data_vocab_size  # noqa: E402
from fairseq_shiftadd.hardware.costing import SubnetCoster  # noqa: E402
from fairseq_shiftadd.recipes import translation_recipe  # noqa: E402
from fairseq_shiftadd.search.evolution import EvolutionConfig  # noqa: E402
from fairseq_shiftadd.search.fitness import SupernetFitness  # noqa: E402
from fairseq_shiftadd.space import SearchSpace, Subnet  # noqa: E402

SPACE = "configs/spaces/tiny.yml"



def train_supernet(data: str, save: Path, updates: int) -> Path:
    shutil.rmtree(save, ignore_errors=True)
    start = time.perf_counter()
    run([
        "fairseq-train", data, "--user-dir", "fairseq_shiftadd", "--task", "shiftadd_supernet_translation",
        "--arch", "shiftadd_supernet_tiny", "--search-space", SPACE, "--save-dir", str(save),
        *translation_recipe("3e-3", 10),
        "--max-tokens", "1500", "--max-update", str(updates), "--seed", "1", "--num-workers", "0", "--cpu",
        "--no-epoch-checkpoints", "--no-progress-bar",
    ])
    print(f"supernet: fairseq-train --max-update {updates} in {time.perf_counter() - start:.0f} s; {load()}", flush=True)
    return save / "checkpoint_last.pt"


def distinct_subnets(space: SearchSpace, count: int, seed: str) -> list[Subnet]:
    rng, found = random.Random(seed), {}
    while len(found) < count:
        subnet = space.sample(rng)
        found.setdefault(subnet.key(), subnet)
    return list(found.values())


def per_call_ms(fn, subnets: list[Subnet]) -> float:
    fn(subnets[0])  # warm: builds the meta-device supernet once
    start = time.perf_counter()
    for subnet in subnets:
        fn(subnet)
    return (time.perf_counter() - start) * 1000 / len(subnets)


def time_search(args: argparse.Namespace, checkpoint: Path, budget_mj: float) -> tuple[float, int]:
    """(wall seconds, distinct subnets evaluated) of one ``shiftadd-search`` command."""
    out = Path(args.work_dir) / f"search-{args.iterations}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    run([
        "shiftadd-search", args.data, "--path", str(checkpoint), "--search-space", SPACE, "--energy-mj", repr(budget_mj),
        "--out", str(out), "--iterations", str(args.iterations), "--seed", "1", "--no-progress",
    ])
    seconds = time.perf_counter() - start
    with open(out / "evaluated.csv") as handle:
        return seconds, sum(1 for _ in csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="binarized toy corpus")
    parser.add_argument("--checkpoint", help="trained tiny supernet (default: train one here)")
    parser.add_argument("--train-updates", type=int, default=150)
    parser.add_argument("--work-dir", default="/tmp/shiftadd-bench-search")
    parser.add_argument("--evals", type=int, default=100, help="subnets the fitness rate is timed on")
    parser.add_argument("--cost-subnets", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=EvolutionConfig().iterations)
    parser.add_argument("--budget-fraction", type=float, default=0.5)
    args = parser.parse_args()
    space = SearchSpace.from_file(ROOT / SPACE)
    defaults = EvolutionConfig()
    print(f"{load()}", flush=True)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train_supernet(args.data, Path(args.work_dir) / "supernet", args.train_updates)

    fitness = SupernetFitness(args.data, str(checkpoint), space)
    sentences = sum(len(batch["id"]) for batch in fitness.batches)
    subnets = distinct_subnets(space, args.evals, "bench-fitness")
    fitness.loss(subnets[0])
    start = time.perf_counter()
    fitness.losses(subnets)
    seconds = time.perf_counter() - start
    print(f"fitness: {len(subnets)} subnets in {seconds:.1f} s = {len(subnets) / seconds:.1f} evaluations/s "
          f"({sentences} validation sentences in {len(fitness.batches)} batches each); {load()}", flush=True)

    coster = SubnetCoster(space, vocab_size=data_vocab_size(args.data))
    cost_subnets = distinct_subnets(space, args.cost_subnets, "bench-cost")
    for name, fn in (
        ("op-count energy", lambda s: coster.energy_mj(s, hardware="opcount")),
        ("accelerator energy", lambda s: coster.energy_mj(s, hardware="accelerator")),
        ("params (standalone model on meta)", coster.params),
    ):
        print(f"cost function {name}: {per_call_ms(fn, cost_subnets):.2f} ms per subnet; {load()}", flush=True)

    budget = args.budget_fraction * coster.energy_mj(space.largest(), hardware="opcount")
    seconds, evaluated = time_search(args, checkpoint, budget)
    print(f"search (population {defaults.population}, parents {defaults.parents}, mutations {defaults.mutations}, "
          f"crossovers {defaults.crossovers}, iterations {args.iterations}), --energy-mj {budget:.4g} "
          f"({args.budget_fraction:g} x largest): {seconds:.0f} s wall, {evaluated} distinct subnets evaluated; {load()}")
    if args.iterations < defaults.iterations:
        per_iteration = seconds / args.iterations
        print(f"extrapolated to {defaults.iterations} iterations at {per_iteration:.1f} s per iteration (linear): "
              f"~{per_iteration * defaults.iterations:.0f} s")


if __name__ == "__main__":
    main()
