"""Real-data quality benchmark on Multi30k En-De (test_2016_flickr), all measured here.

Same CPU budget for every model: the baseline and the retrained subnets train side by side, one thread
each, for the same wall time (``--minutes``, fairseq's ``--stop-time-hours``):
a plain fairseq ``transformer`` baseline (3+3 layers, d 256, FFN 512), the ShiftAddNAS supernet
(configs/spaces/multi30k.yml), and the subnets searched under 25/50/75% of the baseline's energy,
retrained from scratch with the baseline's recipe. Checkpoints are selected on val, never on test.
Stages are skipped when their outputs exist, so an interrupted run resumes.

    .venv/bin/python bench/quality_multi30k.py --raw-dir ../shared/data/multi30k --work /tmp/m30k
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SPACE = REPO / "configs/spaces/multi30k.yml"
BASELINE_SUBNET = REPO / "configs/subnets/multi30k-baseline.yml"
BUDGET_FRACTIONS = (0.25, 0.5, 0.75)


def sh(args: list, log: Path) -> str:
    """Run a command, tee its output to ``log``; stop the benchmark with the log's path on failure."""
    print("+", " ".join(map(str, args)), flush=True)
    start = time.time()
    with open(log, "w") as f:
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run(list(map(str, args)), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        f.write(proc.stdout)
    print(f"  ({time.time() - start:.0f} s, log {log})", flush=True)
    if proc.returncode:
        sys.exit(f"quality_multi30k: {args[0]} failed, see {log}")
    return proc.stdout


def sh_parallel(jobs: dict[str, list], logs: Path) -> None:
    """Run training jobs side by side, one thread each, so every model gets the same CPU share."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running = {}
    for name, args in jobs.items():
        print("+", " ".join(map(str, args)), flush=True)
        log = open(logs / f"{name}.log", "w")
        running[name] = (subprocess.Popen(list(map(str, args)), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    for name, (proc, log) in running.items():
        if proc.wait():
            sys.exit(f"quality_multi30k: {name} failed, see {logs / (name + '.log')}")
        log.close()


def recipe(minutes: float, save: Path) -> list:
    """The baseline's recipe, shared by every model: a fixed wall-clock budget, selection on val."""
    return [
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "1000", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--dropout", "0.3", "--max-tokens", "4096", "--stop-time-hours", str(minutes / 60), "--max-epoch", "1000",
        "--save-dir", save, "--no-epoch-checkpoints", "--no-progress-bar", "--log-interval", "50", "--cpu",
        "--num-workers", "0", "--seed", "1", "--share-all-embeddings", "--valid-subset", "valid",
    ]


def cost(subnet: Path, bits: int, vocab: int) -> dict:
    out = subprocess.run([BIN / "shiftadd-cost", subnet, "--search-space", SPACE, "--bits", str(bits), "--json",
                          "--vocab-size", str(vocab)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["total"]


def score(checkpoint: Path, data: Path, subnet: Path, log: Path) -> dict:
    out = sh(["bash", "scripts/score.sh", checkpoint, data, "test", "--subnet", subnet, "--cpu"], log)
    return json.loads(out.strip().splitlines()[-1])


def cpu_latency_ms(subnet: Path, vocab: int) -> float:
    from fairseq_shiftadd.hardware.costing import dictionary_of_size
    from fairseq_shiftadd.hardware.latency import measure_latency
    from fairseq_shiftadd.models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
    from fairseq_shiftadd.search.space import SearchSpace
    from types import SimpleNamespace

    space = SearchSpace.from_file(SPACE)
    dictionary = dictionary_of_size(vocab)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    cfg = ShiftAddTransformerConfig(subnet_config=space.load_subnet(subnet).to_yaml())
    model = ShiftAddTransformer.build_model(cfg, task)
    return measure_latency(model, runs=10, warmup=3, threads=1, device="cpu")["latency_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", default=str(REPO.parent / "shared/data/multi30k"))
    parser.add_argument("--work", default="/tmp/m30k")
    parser.add_argument("--minutes", type=float, default=16.0, help="wall-clock budget of the baseline and each retrained subnet")
    parser.add_argument("--supernet-minutes", type=float, default=15.0)
    args = parser.parse_args()
    work = Path(args.work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data = work / "multi30k/data-bin"
    if not (data / "test.en-de.de.bin").exists():
        sh(["bash", "data-prep/prepare-multi30k.sh", "--raw-dir", args.raw_dir, "--out", work / "multi30k"], logs / "prep.log")
    vocab = sum(1 for _ in open(data / "dict.en.txt")) + 4
    train = [BIN / "fairseq-train", data, "--user-dir", "fairseq_shiftadd"]

    models: dict[str, Path] = {"baseline (fairseq transformer)": BASELINE_SUBNET}
    supernet = work / "supernet"
    if not (supernet / "checkpoint_best.pt").exists():
        sh([*train, "--task", "shiftadd_supernet_translation", "--arch", "shiftadd_supernet_wmt_en_de", "--search-space", SPACE,
            "--sandwich", *recipe(args.supernet_minutes, supernet)], logs / "supernet.log")

    base_energy = cost(BASELINE_SUBNET, 32, vocab)["energy_mj"]
    budgets = [round(f * base_energy, 6) for f in BUDGET_FRACTIONS]
    search = work / "search"
    if not all((search / f"budget-{b:g}" / "best.yml").exists() for b in budgets):
        sh([BIN / "shiftadd-search", data, "--path", supernet / "checkpoint_best.pt", "--search-space", SPACE,
            "--energy-mj", ",".join(f"{b:g}" for b in budgets), "--population", "40", "--parents", "10", "--mutations", "15",
            "--crossovers", "15", "--iterations", "8", "--out", search, "--no-progress"], logs / "search.log")

    # The baseline and the searched subnets train side by side, one thread each, for the same wall time:
    # the same CPU budget by construction, whatever else the machine runs.
    jobs = {}
    baseline = work / "baseline"
    if not (baseline / "checkpoint_best.pt").exists():
        jobs["baseline"] = [*train, "--arch", "transformer", "--encoder-layers", "3", "--decoder-layers", "3",
                            "--encoder-embed-dim", "256", "--decoder-embed-dim", "256", "--encoder-ffn-embed-dim", "512",
                            "--decoder-ffn-embed-dim", "512", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                            *recipe(args.minutes, baseline)]
    for fraction, budget in zip(BUDGET_FRACTIONS, budgets):
        best = search / f"budget-{budget:g}" / "best.yml"
        save = work / f"retrain-{int(fraction * 100)}"
        if not (save / "checkpoint_best.pt").exists():
            jobs[save.name] = [*train, "--arch", "shiftadd_transformer", "--subnet", best, *recipe(args.minutes, save)]
        models[f"searched, {int(fraction * 100)}% energy budget"] = best
    if jobs:
        sh_parallel(jobs, logs)

    rows = []
    for name, subnet in models.items():
        save = baseline if name.startswith("baseline") else work / f"retrain-{name.split(', ')[1].split('%')[0]}"
        scored = score(save / "checkpoint_best.pt", data, subnet, logs / f"score-{save.name}.log")
        rows.append({
            "model": name, "sacrebleu": scored["sacrebleu"], "bleu_tok": scored["bleu_tok"], "signature": scored["signature"],
            "energy_mj_32": cost(subnet, 32, vocab)["energy_mj"], "energy_mj_8": cost(subnet, 8, vocab)["energy_mj"],
            "latency_ms_cpu": cpu_latency_ms(subnet, vocab), "params_m": cost(subnet, 32, vocab)["params"] / 1e6,
        })
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    shutil.copy(search / "pareto.png", work / "pareto.png")
    print("| model | sacreBLEU | tok. BLEU | energy mJ (32-bit) | energy mJ (8-bit) | CPU latency ms | params M |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['sacrebleu']:.2f} | {r['bleu_tok']:.2f} | {r['energy_mj_32']:.4f} | "
              f"{r['energy_mj_8']:.4f} | {r['latency_ms_cpu']:.1f} | {r['params_m']:.2f} |")
    print(f"signature: {rows[0]['signature']}")


if __name__ == "__main__":
    main()
