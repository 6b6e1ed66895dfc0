"""Real-data quality benchmark on Multi30k En-De (test_2016_flickr), all measured here.

Every model of a stage gets the same CPU share by construction: the stage's jobs run side by side,
one thread each, for the same wall time (fairseq's ``--stop-time-hours``), whatever else runs.

1. Supernets on configs/spaces/multi30k.yml (sandwich sampling) under ``heterogeneous`` weight
   sharing (the paper's) and, for the ablation, ``plain`` and ``none``: ``--supernet-minutes``.
2. Searches on val (its first ``--valid-sentences`` sentences, never test): the heterogeneous
   supernet under 25/50/75% of the baseline's 32-bit op-count energy, the ablation ones under 50%.
3. Every searched subnet retrained from scratch with the baseline's recipe, side by side with a
   plain fairseq ``transformer`` baseline (3+3 layers, d 256, FFN 512): ``--minutes`` each.
4. sacreBLEU on test_2016_flickr of checkpoint_best.pt (selected on val), energy (32/8-bit),
   measured CPU latency, params, updates; WORK/results.json, WORK/bleu_vs_energy.png.
Finished stages are skipped and trainings resume from checkpoint_last.pt, so an interrupted run
continues, and a larger ``--minutes`` (with ``--only`` for some models) extends trainings.

    .venv/bin/python bench/quality_multi30k.py --raw-dir ../shared/data/multi30k --work /tmp/m30k
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fairseq_shiftadd.data.sized_dictionary import data_vocab_size
from fairseq_shiftadd.files import atomic_path
from fairseq_shiftadd.recipes import translation_recipe
from fairseq_shiftadd.venv_commands import VENV_BIN as BIN, venv_env

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "configs/spaces/multi30k.yml"
BASELINE_SUBNET = REPO / "configs/subnets/multi30k-baseline.yml"
BUDGET_FRACTIONS = (0.25, 0.5, 0.75)
PAPER_SHARING = "heterogeneous"
ABLATION_SHARING = ("plain", "none")
ABLATION_FRACTION = 0.5
EVOLUTION = ["--population", "30", "--parents", "8", "--mutations", "11", "--crossovers", "11", "--iterations", "6"]


def sh(args: list, log: Path) -> str:
    """Run a command, tee its output to ``log``; stop the benchmark with the log's path on failure."""
    print("+", " ".join(map(str, args)), flush=True)
    start = time.time()
    proc = subprocess.run(list(map(str, args)), cwd=REPO, env=venv_env(cpu_only=True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(proc.stdout)
    print(f"  ({time.time() - start:.0f} s, log {log})", flush=True)
    if proc.returncode:
        sys.exit(f"quality_multi30k: {args[0]} failed, see {log}")
    return proc.stdout


def side_by_side(jobs: dict[str, list], logs: Path, at_once: int | None = None, append: bool = False) -> None:
    """Run a stage's jobs, one thread each, ``at_once`` at a time (None: all), so every job gets the same CPU share.

    Every job of a stage stops at the same wall-clock budget, so ``at_once`` equal to the number of
    cores gives each job a whole core, in waves. Job NAME logs to ``logs/NAME.log``, appended to
    with ``append`` (a resumed training keeps its earlier log).
    """
    if not jobs:
        return
    start = time.time()
    queue = list(jobs.items())
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    while queue or running:
        while queue and len(running) < (at_once or len(jobs)):
            name, args = queue.pop(0)
            print("+", " ".join(map(str, args)), flush=True)
            log = open(logs / f"{name}.log", "a" if append else "w")
            proc = subprocess.Popen(list(map(str, args)), cwd=REPO, env=venv_env(cpu_only=True, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"),
                                    stdout=log, stderr=subprocess.STDOUT)
            running[name] = (proc, log)
        time.sleep(1)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            if proc.returncode:
                for other, _ in running.values():
                    other.terminate()
                sys.exit(f"quality_multi30k: {name} failed, see {logs / (name + '.log')}")
    print(f"  ({len(jobs)} jobs, {at_once or len(jobs)} at a time: {time.time() - start:.0f} s)", flush=True)


def last_int(log: Path, pattern: str) -> int:
    """The last integer ``pattern`` captures in a training log (commas allowed), e.g. num_updates."""
    found = re.findall(pattern, log.read_text())
    if not found:
        raise SystemExit(f"quality_multi30k: no {pattern!r} in {log}")
    return int(found[-1].replace(",", ""))


def trained_minutes(save: Path) -> float:
    """fairseq's cumulative training time in ``save``'s checkpoint_last.pt, in minutes (0: none yet).

    A stage whose budget grew (a larger ``--minutes``) resumes from there: fairseq counts the time
    already spent against ``--stop-time-hours``.
    """
    last = save / "checkpoint_last.pt"
    if not last.is_file():
        return 0.0
    import torch
    import fairseq_shiftadd  # noqa: F401  (allow-lists fairseq's checkpoint types for weights-only loading)
    return torch.load(last, map_location="cpu", weights_only=True)["extra_state"]["previous_training_time"] / 60


def multi30k_recipe(save: Path, budget: list, warmup: int = 400, seed: int = 1) -> list:
    """The baseline's recipe, shared by every model of the Multi30k benches, selection on val;
    ``budget``: the flags that stop the training (wall clock here, updates in quality_ladder.py)."""
    return [
        *translation_recipe("1e-3", warmup), *budget,
        "--dropout", "0.3", "--max-tokens", "4096", "--max-epoch", "1000",
        "--save-dir", save, "--no-epoch-checkpoints", "--no-progress-bar", "--log-interval", "50", "--cpu",
        "--num-workers", "0", "--seed", str(seed), "--share-all-embeddings", "--valid-subset", "valid",
    ]


def recipe(minutes: float, save: Path, warmup: int = 400) -> list:
    """The baseline's recipe at a fixed wall-clock budget.

    Supernets get a shorter warm-up (``--supernet-warmup``): a sandwich update costs three
    subnets' passes, so a short supernet would otherwise spend its whole budget warming up.
    """
    return multi30k_recipe(save, ["--stop-time-hours", str(minutes / 60)], warmup)


def cost(subnet: Path, bits: int, vocab: int) -> dict:
    out = subprocess.run([BIN / "shiftadd-cost", subnet, "--search-space", SPACE, "--bits", str(bits), "--json",
                          "--vocab-size", str(vocab)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["total"]


def score(checkpoint: Path, data: Path, subnet: Path, log: Path) -> dict:
    out = sh(["bash", "scripts/score.sh", checkpoint, data, "test", "--subnet", subnet, "--cpu"], log)
    return json.loads(out.strip().splitlines()[-1])


def scored_once(checkpoint: Path, data: Path, subnet: Path, log: Path) -> dict:
    """score()'s summary; a log newer than the checkpoint is reused (a rerun that rebuilds a table
    decodes nothing twice; an 8-bit decode is minutes)."""
    if log.is_file() and log.stat().st_mtime > checkpoint.stat().st_mtime:
        last = log.read_text().strip().splitlines()[-1:]
        if last and last[0].startswith("{"):
            return json.loads(last[0])
    return score(checkpoint, data, subnet, log)


def cpu_latency_ms(subnet: Path, vocab: int) -> float:
    from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
    from fairseq_shiftadd.hardware.costing import random_weight_model
    from fairseq_shiftadd.hardware.latency import measure_latency
    from fairseq_shiftadd.space import SearchSpace

    model = random_weight_model(SearchSpace.from_file(SPACE).load_subnet(subnet), dictionary_of_size(vocab))
    return measure_latency(model, runs=10, warmup=3, threads=1, device="cpu")["latency_ms"]


def plot(rows: list[dict], out: Path) -> None:
    """BLEU vs 32-bit energy of every retrained model: the picture the paper's claim is about."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = {"baseline": "s", PAPER_SHARING: "o", "plain": "^", "none": "v"}
    for sharing, marker in markers.items():
        mine = [r for r in rows if r["sharing"] == sharing]
        if mine:
            label = "fairseq transformer baseline" if sharing == "baseline" else f"searched, {sharing} sharing"
            ax.scatter([r["energy_mj_32"] for r in mine], [r["sacrebleu"] for r in mine], marker=marker, s=60, label=label)
    for r in rows:
        if r["sharing"] != "baseline":
            ax.annotate(r["budget"], (r["energy_mj_32"], r["sacrebleu"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("energy per 30-token sentence, mJ (32-bit op count)")
    ax.set_ylabel("sacreBLEU, Multi30k test_2016_flickr")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, its DEBUG lines kept out of the output
    (fairseq's import leaves the root logger at DEBUG)."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out: Path) -> None:
    """Write a finished plot to ``out`` (PNG) atomically."""
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def prepared_data(work: Path, raw_dir: str, logs: Path) -> tuple[Path, int]:
    """WORK/multi30k/data-bin, prepared by the Multi30k recipe on first use, and its joined vocabulary size."""
    data = work / "multi30k/data-bin"
    if not (data / "test.en-de.de.bin").exists():
        sh(["bash", "data-prep/prepare-multi30k.sh", "--raw-dir", raw_dir, "--out", work / "multi30k"], logs / "prep.log")
    return data, data_vocab_size(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", default=str(REPO.parent / "shared/data/multi30k"))
    parser.add_argument("--work", default="/tmp/m30k")
    parser.add_argument("--minutes", type=float, default=72.0,
                        help="wall-clock budget of the baseline and each retrained subnet (72: 24 core-minutes each, six side by side on 2 cores)")
    parser.add_argument("--supernet-minutes", type=float, default=20.0, help="wall-clock budget of each supernet")
    parser.add_argument("--supernet-warmup", type=int, default=100, help="learning-rate warm-up updates of the supernets")
    parser.add_argument("--valid-sentences", type=int, default=200, help="val sentences scored by the search")
    parser.add_argument("--only", nargs="+", metavar="MODEL",
                        help="train only these models (baseline, retrain-SHARING-PCT), e.g. to extend two of them with a larger --minutes")
    parser.add_argument("--at-once", type=int, metavar="N",
                        help="run at most N trainings of a stage at a time (N = cores: --minutes are core-minutes); default all")
    parser.add_argument("--no-ablation", action="store_true", help="train and search only the heterogeneous supernet")
    args = parser.parse_args()
    work = Path(args.work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data, vocab = prepared_data(work, args.raw_dir, logs)
    train = [BIN / "fairseq-train", data, "--user-dir", "fairseq_shiftadd"]
    sharings = (PAPER_SHARING,) if args.no_ablation else (PAPER_SHARING, *ABLATION_SHARING)

    side_by_side({
        f"supernet-{sharing}": [*train, "--task", "shiftadd_supernet_translation", "--arch", "shiftadd_supernet_wmt_en_de",
                                "--search-space", SPACE, "--sandwich", "--weight-sharing", sharing,
                                *recipe(args.supernet_minutes, work / f"supernet-{sharing}", args.supernet_warmup)]
        for sharing in sharings if trained_minutes(work / f"supernet-{sharing}") < args.supernet_minutes
    }, logs, args.at_once)

    base_energy = cost(BASELINE_SUBNET, 32, vocab)["energy_mj"]
    budgets = {fraction: round(fraction * base_energy, 6) for fraction in BUDGET_FRACTIONS}
    searched: dict[tuple[str, float], Path] = {}
    jobs = {}
    for sharing in sharings:
        fractions = BUDGET_FRACTIONS if sharing == PAPER_SHARING else (ABLATION_FRACTION,)
        out = work / f"search-{sharing}"
        for fraction in fractions:
            searched[sharing, fraction] = (out / f"budget-{budgets[fraction]:g}" if len(fractions) > 1 else out) / "best.yml"
        if not all(searched[sharing, f].exists() for f in fractions):
            jobs[out.name] = [BIN / "shiftadd-search", data, "--path", work / f"supernet-{sharing}/checkpoint_best.pt",
                              "--search-space", SPACE, "--energy-mj", ",".join(f"{budgets[f]:g}" for f in fractions),
                              *EVOLUTION, "--max-sentences-valid", str(args.valid_sentences), "--out", out, "--no-progress"]
    side_by_side(jobs, logs, args.at_once)

    models = {"baseline": (BASELINE_SUBNET, work / "baseline", "baseline", "-")}
    for (sharing, fraction), best in searched.items():
        name = f"retrain-{sharing}-{int(fraction * 100)}"
        models[name] = (best, work / name, sharing, f"{int(fraction * 100)}%")
    retrain = [name for name, (_, save, _, _) in models.items()
               if trained_minutes(save) < args.minutes and (not args.only or name in args.only)]
    jobs = {}
    if "baseline" in retrain:
        jobs["baseline"] = [*train, "--arch", "transformer", "--encoder-layers", "3", "--decoder-layers", "3",
                            "--encoder-embed-dim", "256", "--decoder-embed-dim", "256", "--encoder-ffn-embed-dim", "512",
                            "--decoder-ffn-embed-dim", "512", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                            *recipe(args.minutes, work / "baseline")]
    claim_first = sorted(models, key=lambda name: name != f"retrain-{PAPER_SHARING}-{int(ABLATION_FRACTION * 100)}")
    for name in claim_first:  # with --at-once, the paper's claim (baseline vs the 50% hybrid) trains in the first wave
        subnet, save, _, _ = models[name]
        if name != "baseline" and name in retrain:
            jobs[name] = [*train, "--arch", "shiftadd_transformer", "--subnet", subnet, *recipe(args.minutes, save)]
    side_by_side(jobs, logs, args.at_once)

    rows = []
    for name, (subnet, save, sharing, budget) in models.items():
        if not (save / "checkpoint_best.pt").exists():
            print(f"{name}: not trained yet (rerun without --only), left out of the table", flush=True)
            continue
        scored = score(save / "checkpoint_best.pt", data, subnet, logs / f"score-{name}.log")
        total32 = cost(subnet, 32, vocab)
        rows.append({
            "model": name, "sharing": sharing, "budget": budget, "sacrebleu": scored["sacrebleu"],
            "bleu_tok": scored["bleu_tok"], "signature": scored["signature"], "energy_mj_32": total32["energy_mj"],
            "energy_mj_8": cost(subnet, 8, vocab)["energy_mj"], "latency_ms_cpu": cpu_latency_ms(subnet, vocab),
            "params_m": total32["params"] / 1e6, "updates": last_int(logs / f"{name}.log", r'num_updates"?[: ]+"?(\d+)'),
            "train_minutes": round(trained_minutes(save), 1),
        })
    supernets = {sharing: last_int(logs / f"supernet-{sharing}.log", r"num\. shared model params: ([\d,]+)") / 1e6
                 for sharing in sharings}
    (work / "results.json").write_text(json.dumps({"models": rows, "supernet_params_m": supernets}, indent=1))
    shutil.copy(work / f"search-{PAPER_SHARING}/pareto.png", work / "pareto.png")
    plot(rows, work / "bleu_vs_energy.png")
    print("| model | sharing | budget | sacreBLEU | tok. BLEU | energy mJ (32-bit) | energy mJ (8-bit) | CPU latency ms | params M | updates | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['sharing']} | {r['budget']} | {r['sacrebleu']:.2f} | {r['bleu_tok']:.2f} | "
              f"{r['energy_mj_32']:.4f} | {r['energy_mj_8']:.4f} | {r['latency_ms_cpu']:.1f} | {r['params_m']:.2f} | {r['updates']} | {r['train_minutes']} |")
    print("supernet params (M): " + ", ".join(f"{k} {v:.2f}" for k, v in supernets.items()))
    print(f"signature: {rows[0]['signature']}")


if __name__ == "__main__":
    main()
