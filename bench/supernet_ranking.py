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
``--retrain-seeds 1 2`` retrains every subnet at each seed (seed N other than 1 as NAME+seedN), ranks
against the mean loss over the seeds and prints the tau between the seeds' retrainings: how well one
retraining ranks another, the most a supernet's tau can be expected to reach. Without ``--path``
the bench only retrains. Writes WORK/ranking/ranking.json and, with supernets or two seeds,
WORK/ranking/ranking.png.

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
from quality_ladder import SPACES, inherited_start, recipe, seed_suffix, trained_updates, valid_curve  # noqa: E402
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
    if not paths:  # the bench only retrained
        return {}
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


def retrained_by_seed(logs: Path, names: list, seeds: list, updates: int) -> dict[int, list[float]]:
    """{seed: the from-scratch validation nll_loss of every subnet in ``names`` at ``updates``, at that seed}."""
    return {seed: [loss_at(logs, name + seed_suffix(seed), updates) for name in names] for seed in seeds}


def seed_taus(by_seed: dict[int, list[float]]) -> dict[str, float]:
    """{"A-B": Kendall tau between the retrained losses of seeds A and B} for every pair of seeds."""
    from scipy.stats import kendalltau
    seeds = list(by_seed)
    return {f"{a}-{b}": kendalltau(by_seed[a], by_seed[b]).statistic for i, a in enumerate(seeds) for b in seeds[i + 1:]}


def plot(results: dict, out: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4.5))
    retrained = [r["retrained_loss"] for r in results["subnets"]]
    first, *others = results["seeds"]
    for other in others if not results["supernets"] else []:
        ax.scatter([r["retrained_losses"][str(first)] for r in results["subnets"]],
                   [r["retrained_losses"][str(other)] for r in results["subnets"]],
                   label=f"seed {other} against seed {first} (tau {results['seed_taus'][f'{first}-{other}']:.2f})")
    folder = column_names(list(results["supernets"]))
    for path, scores in results["supernets"].items():
        supernet = folder[path]
        ax.scatter(scores["inherited_losses"], retrained, label=f"{supernet}, from scratch (tau {scores['kendall_tau']:.2f})")
        if "finetuned_losses" in scores:
            ax.scatter(scores["inherited_losses"], scores["finetuned_losses"], marker="x",
                       label=f"{supernet}, fine-tuned (tau {scores['kendall_tau_finetuned']:.2f})")
    ax.set_xlabel("validation loss with inherited supernet weights (bits/token)" if results["supernets"]
                  else f"validation loss after {results['updates']} updates, seed {first} (bits/token)")
    ax.set_ylabel(f"validation loss after {results['updates']} updates (bits/token)")
    ax.set_title(f"Supernet ranking, {len(retrained)} subnets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--raw-dir", default=str(REPO.parent / "shared/data/multi30k"), help="Multi30k raw files")
    parser.add_argument("--work", default="/work/m30k-ladder", help="the ladder's work directory (data, supernets)")
    parser.add_argument("--path", nargs="*", default=[], metavar="CKPT", help="supernet checkpoints to score (none: only retrain)")
    parser.add_argument("--space", choices=sorted(SPACES), default="hybrid", help="search space of the supernets")
    parser.add_argument("--subnets", type=int, default=8, help="subnets to retrain, spread over the energy range")
    parser.add_argument("--pool", type=int, default=2000, help="random subnets the spread is chosen from")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pool")
    parser.add_argument("--updates", type=int, default=600, help="updates of every retraining")
    parser.add_argument("--retrain-seeds", type=int, nargs="+", default=[1], metavar="SEED",
                        help="seeds of the from-scratch retrainings (ranked against their mean; two or more: tau between seeds)")
    parser.add_argument("--at-once", type=int, default=2, help="trainings at a time, one thread each (cores)")
    parser.add_argument("--finetune", action="store_true",
                        help="also fine-tune every subnet from its weights in each supernet and rank against that")
    args = parser.parse_args()
    if args.subnets < 3:
        parser.error(f"--subnets must be at least 3, got {args.subnets}")
    if len(set(args.retrain_seeds)) < len(args.retrain_seeds):
        parser.error(f"--retrain-seeds: each seed once, got {args.retrain_seeds}")
    if args.finetune and not args.path:
        parser.error("--finetune needs the supernets to fine-tune from (--path)")
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

    def training(name: str, run: str, start: list, seed: int = 1) -> list:
        return [BIN / "fairseq-train", data, "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer",
                "--subnet", out / f"{name}.yml", *recipe(out / run, args.updates, seed=seed), *start]

    jobs = {name + seed_suffix(seed): training(name, name + seed_suffix(seed), [], seed)
            for seed in args.retrain_seeds for name in names}
    if args.finetune:
        for path in args.path:
            for name in names:
                run = finetuned_run(name, path)
                jobs[run] = training(name, run, inherited_start(path, out / f"{name}.yml", out / run))
    side_by_side({run: job for run, job in jobs.items() if trained_updates(out / run) < args.updates},
                 logs, args.at_once, append=True)

    from scipy.stats import kendalltau
    from fairseq_shiftadd.search.fitness import SupernetFitness

    by_seed = retrained_by_seed(logs, names, args.retrain_seeds, args.updates)
    retrained = [sum(losses) / len(losses) for losses in zip(*by_seed.values())]
    results = {"updates": args.updates, "seeds": args.retrain_seeds, "subnets": [
        {"name": name, "energy_mj_32": coster.energy_mj(subnet), "retrained_loss": loss,
         "retrained_losses": {str(seed): by_seed[seed][i] for seed in args.retrain_seeds}}
        for i, (name, subnet, loss) in enumerate(zip(names, subnets, retrained))
    ], "seed_taus": seed_taus(by_seed), "supernets": {}}
    for path in args.path:
        inherited = SupernetFitness(str(data), path, space).losses(subnets)
        scores = results["supernets"][path] = {"inherited_losses": inherited, "kendall_tau": kendalltau(inherited, retrained).statistic}
        if args.finetune:
            scores["finetuned_losses"] = [loss_at(logs, finetuned_run(name, path), args.updates) for name in names]
            scores["kendall_tau_finetuned"] = kendalltau(inherited, scores["finetuned_losses"]).statistic
    (out / "ranking.json").write_text(json.dumps(results, indent=1))
    if results["supernets"] or results["seed_taus"]:  # something to rank against
        plot(results, out / "ranking.png")
    folder = column_names(args.path)
    per_seed = [f"retrained, seed {seed}" for seed in args.retrain_seeds] if len(args.retrain_seeds) > 1 else []
    columns = [(f"inherited ({folder[p]})", p, "inherited_losses") for p in args.path]
    if args.finetune:
        columns += [(f"fine-tuned from {folder[p]}", p, "finetuned_losses") for p in args.path]
    mean = "retrained val loss" + (" (mean over seeds)" if per_seed else "")
    print("| " + " | ".join(["subnet", "energy mJ (32-bit)", mean, *per_seed, *(title for title, _, _ in columns)]) + " |")
    print("|---|---|---|" + "---|" * (len(per_seed) + len(columns)))
    for i, r in enumerate(results["subnets"]):
        cells = [r["name"], f"{r['energy_mj_32']:.4f}", f"{r['retrained_loss']:.3f}"]
        cells += [f"{r['retrained_losses'][str(seed)]:.3f}" for seed in args.retrain_seeds] if per_seed else []
        cells += [f"{results['supernets'][p][key][i]:.3f}" for _, p, key in columns]
        print("| " + " | ".join(cells) + " |")
    for pair, tau in results["seed_taus"].items():
        print(f"Kendall tau between the retrainings of seeds {pair.replace('-', ' and ')}: {tau:.3f}")
    for path, scores in results["supernets"].items():
        print(f"Kendall tau, {path}: {scores['kendall_tau']:.3f} (from scratch)"
              + (f", {scores['kendall_tau_finetuned']:.3f} (fine-tuned)" if args.finetune else ""))


if __name__ == "__main__":
    main()
