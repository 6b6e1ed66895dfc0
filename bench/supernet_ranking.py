"""Can the supernet rank subnets? Kendall tau between inherited-weight and retrained validation loss.

The search trusts a subnet's validation loss with weights inherited from the supernet. This bench
picks ``--subnets`` subnets of the space spread evenly over its 32-bit op-count energy range (from
a seeded pool of random subnets), retrains each from scratch with the ladder's recipe for
``--updates`` updates (one thread each, resumable), and compares, per supernet given with
``--path``, the inherited-weight loss (the search's own fitness: cross-entropy in bits on the
validation set) with the retrained one (fairseq's validation nll_loss at ``--updates``). The
retrainings do not depend on the supernet, so a changed supernet is re-scored without retraining.
With ``--finetune`` every subnet also fine-tunes from its weights in each supernet for ``--updates``
(``shiftadd-retrain``'s default for a searched subnet), as NAME+from-SUPERNETDIR, and each supernet
gets a second tau, against those fine-tuned losses. The from-scratch retrainings run first.
Writes WORK/ranking/ranking.json and WORK/ranking/ranking.png.

    .venv/bin/python bench/supernet_ranking.py --work /work/m30k-ladder \\
        --path /work/m30k-ladder/supernet-hybrid/checkpoint_best.pt --subnets 8 --updates 600
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_ladder import SPACES, inherited_start, recipe, trained_updates, valid_curve  # noqa: E402
from quality_multi30k import BIN, REPO, prepared_data, pyplot, save_figure, side_by_side  # noqa: E402

from fairseq_shiftadd.hardware.costing import SubnetCoster  # noqa: E402
from fairseq_shiftadd.space import SearchSpace, write_subnet  # noqa: E402


def spread_over_energy(space: SearchSpace, coster: SubnetCoster, count: int, pool: int, seed: int) -> list:
    """``count`` distinct subnets at evenly spaced quantiles of the energy of ``pool`` random subnets."""
    rng = random.Random(seed)
    candidates = sorted({space.sample(rng) for _ in range(pool)}, key=lambda s: coster.energy_mj(s))
    picks = [candidates[round((i + 0.5) / count * (len(candidates) - 1))] for i in range(count)]
    return list(dict.fromkeys(picks))


def finetuned_run(name: str, supernet: str) -> str:
    """NAME+from-DIR: subnet ``name`` fine-tuned from its weights in the supernet checkpoint in DIR."""
    return f"{name}+from-{Path(supernet).parent.name}"


def column_names(paths: list) -> dict:
    """Each supernet checkpoint's folder, with as many parent folders as tell the checkpoints apart
    (and the file name where two checkpoints share a folder)."""
    checkpoints = [Path(path).resolve() for path in paths]
    folders = [checkpoint.parent for checkpoint in checkpoints]
    for depth in range(1, max(len(folder.parts) for folder in folders) + 1):
        names = ["/".join(folder.parts[-depth:]) for folder in folders]
        if len(set(names)) == len(set(folders)):
            break
    shared = {folder for folder in folders if folders.count(folder) > 1}
    return {path: name + (f"/{checkpoint.name}" if checkpoint.parent in shared else "")
            for path, name, checkpoint in zip(paths, names, checkpoints)}


def loss_at(logs: Path, run: str, updates: int) -> float:
    """fairseq's validation nll_loss of ``run`` at ``updates``, from its log."""
    curve = valid_curve(logs / f"{run}.log", key="nll_loss")
    if updates not in curve:
        raise SystemExit(f"supernet_ranking: {logs / (run + '.log')} has no validation at update {updates}")
    return curve[updates]


def plot(results: dict, out: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4.5))
    retrained = [r["retrained_loss"] for r in results["subnets"]]
    folder = column_names(list(results["supernets"]))
    for path, scores in results["supernets"].items():
        supernet = folder[path]
        ax.scatter(scores["inherited_losses"], retrained, label=f"{supernet}, from scratch (tau {scores['kendall_tau']:.2f})")
        if "finetuned_losses" in scores:
            ax.scatter(scores["inherited_losses"], scores["finetuned_losses"], marker="x",
                       label=f"{supernet}, fine-tuned (tau {scores['kendall_tau_finetuned']:.2f})")
    ax.set_xlabel("validation loss with inherited supernet weights (bits/token)")
    ax.set_ylabel(f"validation loss after {results['updates']} updates (bits/token)")
    ax.set_title(f"Supernet ranking, {len(retrained)} subnets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--raw-dir", default=str(REPO.parent / "shared/data/multi30k"), help="Multi30k raw files")
    parser.add_argument("--work", default="/work/m30k-ladder", help="the ladder's work directory (data, supernets)")
    parser.add_argument("--path", nargs="+", required=True, metavar="CKPT", help="supernet checkpoints to score")
    parser.add_argument("--space", choices=sorted(SPACES), default="hybrid", help="search space of the supernets")
    parser.add_argument("--subnets", type=int, default=8, help="subnets to retrain, spread over the energy range")
    parser.add_argument("--pool", type=int, default=2000, help="random subnets the spread is chosen from")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pool")
    parser.add_argument("--updates", type=int, default=600, help="updates of every retraining")
    parser.add_argument("--at-once", type=int, default=2, help="trainings at a time, one thread each (cores)")
    parser.add_argument("--finetune", action="store_true",
                        help="also fine-tune every subnet from its weights in each supernet and rank against that")
    args = parser.parse_args()
    if args.subnets < 3:
        parser.error(f"--subnets must be at least 3, got {args.subnets}")
    if args.finetune and len({finetuned_run("", path) for path in args.path}) < len(args.path):
        parser.error("--finetune: the --path checkpoints must lie in folders of different names (their runs are NAME+from-FOLDER)")
    work = Path(args.work)
    out = work / "ranking"
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data, vocab = prepared_data(work, args.raw_dir, logs)
    space = SearchSpace.from_file(SPACES[args.space])
    coster = SubnetCoster(space, vocab_size=vocab)
    subnets = spread_over_energy(space, coster, args.subnets, args.pool, args.seed)
    names = [f"subnet-{i}" for i in range(len(subnets))]
    for name, subnet in zip(names, subnets):
        write_subnet(subnet, out / f"{name}.yml")

    def training(name: str, run: str, start: list) -> list:
        return [BIN / "fairseq-train", data, "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer",
                "--subnet", out / f"{name}.yml", *recipe(out / run, args.updates), *start]

    jobs = {name: training(name, name, []) for name in names}
    if args.finetune:
        for path in args.path:
            for name in names:
                run = finetuned_run(name, path)
                jobs[run] = training(name, run, inherited_start(path, out / f"{name}.yml", out / run))
    side_by_side({run: job for run, job in jobs.items() if trained_updates(out / run) < args.updates},
                 logs, args.at_once, append=True)

    from scipy.stats import kendalltau
    from fairseq_shiftadd.search.fitness import SupernetFitness

    retrained = [loss_at(logs, name, args.updates) for name in names]
    results = {"updates": args.updates, "subnets": [
        {"name": name, "energy_mj_32": coster.energy_mj(subnet), "retrained_loss": loss}
        for name, subnet, loss in zip(names, subnets, retrained)
    ], "supernets": {}}
    for path in args.path:
        inherited = SupernetFitness(str(data), path, space).losses(subnets)
        scores = results["supernets"][path] = {"inherited_losses": inherited, "kendall_tau": kendalltau(inherited, retrained).statistic}
        if args.finetune:
            scores["finetuned_losses"] = [loss_at(logs, finetuned_run(name, path), args.updates) for name in names]
            scores["kendall_tau_finetuned"] = kendalltau(inherited, scores["finetuned_losses"]).statistic
    (out / "ranking.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "ranking.png")
    folder = column_names(args.path)
    columns = [(f"inherited ({folder[p]})", p, "inherited_losses") for p in args.path]
    if args.finetune:
        columns += [(f"fine-tuned from {folder[p]}", p, "finetuned_losses") for p in args.path]
    print("| subnet | energy mJ (32-bit) | retrained val loss | " + " | ".join(title for title, _, _ in columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for i, r in enumerate(results["subnets"]):
        cells = " | ".join(f"{results['supernets'][p][key][i]:.3f}" for _, p, key in columns)
        print(f"| {r['name']} | {r['energy_mj_32']:.4f} | {r['retrained_loss']:.3f} | {cells} |")
    for path, scores in results["supernets"].items():
        print(f"Kendall tau, {path}: {scores['kendall_tau']:.3f} (from scratch)"
              + (f", {scores['kendall_tau_finetuned']:.3f} (fine-tuned)" if args.finetune else ""))


if __name__ == "__main__":
    main()
