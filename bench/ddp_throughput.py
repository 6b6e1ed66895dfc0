"""Supernet training throughput on 2 gloo ranks vs 1 process with 2 threads, and the gradients DDP sends.

    python bench/ddp_throughput.py [--space multi30k] [--updates 40] [--rounds 3]

Throughput: real ``fairseq-train`` runs of the supernet (``--weight-sharing heterogeneous``) on a
generated toy corpus, every run processing the same batches (2 per update):

* 1 process, 2 threads, ``--update-freq 2`` (and 1 thread, for scale);
* 2 gloo ranks x 1 thread (``torchrun --standalone --nproc_per_node 2 $(which fairseq-train) ... --cpu``),
  ``--ddp-backend legacy_ddp`` as the plugin chooses it (only the trained parameters' gradients travel);
* the same with ``--ddp-backend pytorch_ddp --find-unused-parameters`` (torch's DDP: every gradient travels).

The runs alternate (A B C D A B C D ...) ``--rounds`` times so machine load hits them alike; target
tokens/s is fairseq's own count (``wps``, summed over ranks) over every logged interval after the
first (start-up, kernel loading). Reported: the median over rounds, and the median of the per-round
ratio to the 1-process run.

Traffic: the share of the supernet's gradient elements that a legacy_ddp update all-reduces
(parameters some rank used; pytorch_ddp all-reduces all of them), for ``--traffic-subnets``
sampled subnets of each space, from one real forward/backward of a 2x8-token batch on the CPU.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_common import BIN, load, machine  # noqa: E402  (bench/ is the script's directory)
from fairseq_shiftadd.data.toy_corpus import binarized_toy_corpus  # noqa: E402
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size  # noqa: E402
from fairseq_shiftadd.models.shiftadd_supernet import ShiftAddSupernet, ShiftAddSupernetConfig  # noqa: E402
from fairseq_shiftadd.space import SearchSpace  # noqa: E402

INTERVAL = re.compile(r"train_inner \| .*? wps=([\d.]+), ups=([\d.]+), wpb=([\d.]+)")


def training(args: argparse.Namespace, data: Path, save_dir: Path) -> list[str]:
    return [
        str(BIN / "fairseq-train"), str(data), "--user-dir", str(ROOT / "fairseq_shiftadd"),
        "--task", "shiftadd_supernet_translation", "--arch", "shiftadd_supernet_wmt_en_de",
        "--search-space", str(ROOT / f"configs/spaces/{args.space}.yml"), "--weight-sharing", "heterogeneous",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "10", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--max-tokens", str(args.max_tokens), "--max-update", str(args.updates), "--log-interval", str(args.log_interval),
        "--disable-validation", "--no-save", "--no-progress-bar", "--num-workers", "0", "--seed", "1", "--cpu",
        "--save-dir", str(save_dir),
    ]


def configurations(args: argparse.Namespace, data: Path, save_dir: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (command, OMP_NUM_THREADS)."""
    train = training(args, data, save_dir)
    torchrun = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2"]
    return {
        "1 process x 2 threads, --update-freq 2": ([*train, "--update-freq", "2"], "2"),
        "1 process x 1 thread, --update-freq 2": ([*train, "--update-freq", "2"], "1"),
        "2 gloo ranks x 1 thread, legacy_ddp (chosen)": ([*torchrun, *train], "1"),
        "2 gloo ranks x 1 thread, pytorch_ddp --find-unused-parameters": (
            [*torchrun, *train, "--ddp-backend", "pytorch_ddp", "--find-unused-parameters"], "1"),
    }


def tokens_per_second(log: str) -> float:
    """Target tokens / seconds over the logged intervals after the first (each ``--log-interval`` updates:
    wpb target tokens per update at wps tokens/s)."""
    intervals = [tuple(map(float, match)) for match in INTERVAL.findall(log)][1:]
    if not intervals:
        raise SystemExit(f"no train_inner lines after the first; raise --updates:\n{log[-2000:]}")
    return sum(wpb for _, _, wpb in intervals) / sum(wpb / wps for wps, _, wpb in intervals)


def throughput(args: argparse.Namespace, data: Path, work: Path) -> None:
    configs = configurations(args, data, work / "save")
    results: dict[str, list[float]] = {name: [] for name in configs}
    print(f"\nthroughput: {args.space} space, heterogeneous sharing, toy corpus ({args.sentences} pairs), "
          f"--max-tokens {args.max_tokens}, {args.updates} updates per run, {args.rounds} rounds; {load()}", flush=True)
    for round_index in range(args.rounds):
        for name, (command, threads) in configs.items():
            env = dict(os.environ, OMP_NUM_THREADS=threads, CUDA_VISIBLE_DEVICES="")
            proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            results[name].append(tokens_per_second(proc.stdout + proc.stderr))
            print(f"  round {round_index + 1}: {name}: {results[name][-1]:.0f} tokens/s; {load()}", flush=True)
    baseline = next(iter(results))
    print(f"\n| configuration | target tokens/s (median of {args.rounds}) | vs 1 process (median per-round ratio) |")
    print("|---|---|---|")
    for name, values in results.items():
        ratio = statistics.median(v / b for v, b in zip(values, results[baseline]))
        print(f"| {name} | {statistics.median(values):.0f} | {ratio:.2f}x |")
    legacy, pytorch = (values for name, values in results.items() if name.startswith("2 gloo ranks"))
    print(f"\nlegacy_ddp vs pytorch_ddp --find-unused-parameters: {statistics.median(a / b for a, b in zip(legacy, pytorch)):.2f}x "
          "(median per-round ratio)")


def allreduced_share(space_name: str, sharing: str, vocab: int, subnets: int) -> tuple[float, float, int]:
    """(mean, max) share of gradient elements legacy_ddp all-reduces per update, and the supernet's size."""
    space = SearchSpace.from_file(ROOT / f"configs/spaces/{space_name}.yml")
    dictionary = dictionary_of_size(vocab)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary, space=space)
    model = ShiftAddSupernet.build_model(
        ShiftAddSupernetConfig(weight_sharing=sharing, dropout=0.0, attention_dropout=0.0, weight_dropout=0.0), task
    )
    total = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(dictionary.nspecial, vocab, (2, 8), generator=generator)
    shares = []
    for update in range(subnets):
        model.zero_grad(set_to_none=True)
        model.set_subnet(space.sample_for_update(1, update))
        loss = model(tokens, torch.full((2,), 8), tokens)[0].float().mean()
        regularizer = model.regularization_loss()
        (loss if regularizer is None else loss + regularizer).backward()
        shares.append(sum(p.numel() for p in model.parameters() if p.grad is not None) / total)
    return statistics.mean(shares), max(shares), total


def traffic(args: argparse.Namespace) -> None:
    print(f"\nGradient elements all-reduced per update ({args.traffic_subnets} sampled subnets; pytorch_ddp: 100%); {load()}")
    print("| space | weight sharing | supernet params | legacy_ddp, mean | legacy_ddp, max |")
    print("|---|---|---|---|---|")
    for space_name, vocab in (("multi30k", 10000), ("wmt14.en-de", 32000)):
        for sharing in ("none", "heterogeneous"):
            mean, most, total = allreduced_share(space_name, sharing, vocab, args.traffic_subnets)
            print(f"| {space_name} | {sharing} | {total / 1e6:.1f}M | {100 * mean:.0f}% | {100 * most:.0f}% |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="multi30k", help="search space of the throughput runs (configs/spaces/NAME.yml)")
    parser.add_argument("--sentences", type=int, default=4000, help="toy training pairs")
    parser.add_argument("--max-tokens", type=int, default=1500)
    parser.add_argument("--updates", type=int, default=40, help="updates per run")
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the runs")
    parser.add_argument("--traffic-subnets", type=int, default=10, help="subnets per space for the traffic table (0: skip)")
    args = parser.parse_args()
    print(f"{machine()}; {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        throughput(args, binarized_toy_corpus(work, train=args.sentences), work)
    if args.traffic_subnets:
        traffic(args)
    print(f"\ndone; {load()}")


if __name__ == "__main__":
    main()
