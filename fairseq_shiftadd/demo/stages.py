"""The demo's stages: the whole ShiftAddNAS pipeline on a generated toy corpus, with the real commands.

Each stage runs through :class:`~fairseq_shiftadd.demo.runner.Demo` (commands echoed, logged, resumable):

1. data: the toy English->German corpus, a sentencepiece word model, ``fairseq-preprocess``;
2. supernet: ``fairseq-train --task shiftadd_supernet_translation --sandwich`` (resumes);
3. latency: ``shiftadd-measure-latency`` of random subnets on this CPU;
4. predictor: ``fairseq-train --task latency_prediction --arch latency_mlp``;
5. search: ``shiftadd-search`` under half the all-multiplication baseline's energy and no more
   than its accelerator-model latency: both budgets are computed, not timed, so the same seed
   finds the same subnet on any machine under any load;
6. retrain: ``scripts/retrain.sh`` for the searched subnet (fine-tuned from its supernet weights,
   the command's default for a search's ``best.yml``) and the baseline (from scratch), same budget;
7. score: ``scripts/score.sh CKPT DATA test`` for both;
8. report: ``OUT/report.md`` (BLEU, energy, accelerator latency, CPU latency timed in pairs with
   the baseline, predicted latency, params, subnet, Pareto plot).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..recipes import translation_recipe
from .report import report_markdown
from .runner import (
    ENERGY_FRACTION, LATENCY_REPORT_RUNS, LATENCY_THREADS, REPO, SPACE, Demo, Stage, StageFailed, demo_commands, shown,
)


def stage_data(demo: Demo) -> None:
    """Toy corpus -> sentencepiece word model (the toy vocabulary is ~110 words) -> binarized."""
    import sentencepiece as spm

    from ..data.toy_corpus import write_toy_corpus

    s, raw, pieces = demo.settings, demo.out / "raw", demo.out / "spm"
    demo.note(f"write_toy_corpus({shown(raw)!r}, train={s.train}, valid={s.valid}, test={s.test}, seed={demo.seed})"
              "  (fairseq_shiftadd.data.toy_corpus)")
    write_toy_corpus(raw, train=s.train, valid=s.valid, test=s.test, seed=demo.seed)
    pieces.mkdir(parents=True, exist_ok=True)
    demo.note(f"sentencepiece word model on {shown(raw)}/train.{{en,de}} -> {shown(pieces)}/spm.model")
    spm.SentencePieceTrainer.train(
        input=[str(raw / "train.en"), str(raw / "train.de")], model_prefix=str(pieces / "spm"), model_type="word",
        vocab_size=1000, hard_vocab_limit=False, character_coverage=1.0, minloglevel=2,
    )
    pairs = [f"{shown(raw)}/{split}.{lang}:{shown(pieces)}/{split}.{lang}" for split in ("train", "valid", "test") for lang in ("en", "de")]
    demo.run([shown(Path(sys.executable)), shown(REPO / "data-prep" / "prep_util.py"), "spm-encode", shown(pieces / "spm.model"), *pairs])
    tmp = demo.out / "data-bin.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    demo.run(["fairseq-preprocess", "--source-lang", "en", "--target-lang", "de", "--joined-dictionary",
              "--trainpref", shown(pieces / "train"), "--validpref", shown(pieces / "valid"),
              "--testpref", shown(pieces / "test"), "--destdir", shown(tmp), "--workers", "2"])
    shutil.copy(pieces / "spm.model", tmp / "spm.model")
    shutil.rmtree(demo.data, ignore_errors=True)
    tmp.rename(demo.data)


def stage_supernet(demo: Demo) -> None:
    """Sandwich-rule supernet training; fairseq resumes from checkpoint_last.pt on a re-run."""
    s = demo.settings
    demo.run([
        "fairseq-train", shown(demo.data), "--user-dir", demo.user_dir, "--task", "shiftadd_supernet_translation",
        "--arch", "shiftadd_supernet_tiny", "--search-space", demo.space, "--sandwich",
        *translation_recipe("2e-3", max(10, s.supernet_updates // 8)), "--max-tokens", str(s.max_tokens), "--max-update", str(s.supernet_updates),
        "--save-dir", shown(demo.supernet.parent), "--no-epoch-checkpoints", "--validate-interval", "5",
        "--save-interval", "5", "--seed", str(demo.seed), "--cpu", "--num-workers", "0",
        "--log-format", "simple", "--log-interval", "25",
    ])
    if not demo.supernet.is_file():
        raise StageFailed(f"fairseq-train finished without writing {shown(demo.supernet)}")


def stage_latency(demo: Demo) -> None:
    """Latency of random subnets (random weights: timing only) on this CPU, appended and resumable."""
    s = demo.settings
    demo.run([
        "shiftadd-measure-latency", "--search-space", demo.space, "--out", shown(demo.latency),
        "--num-subnets", str(s.latency_subnets), "--include-largest-smallest", "--vocab-size", str(demo.vocab_size()),
        "--runs", str(s.latency_runs), "--warmup", "2", "--threads", str(LATENCY_THREADS), "--device", "cpu",
        "--seed", str(demo.seed),
    ])


def stage_predictor(demo: Demo) -> None:
    """The latency MLP, trained by fairseq-train on the measured dataset; selected on held-out subnets."""
    epochs = demo.settings.predictor_epochs
    interval = str(max(1, epochs // 6))
    demo.run([
        "fairseq-train", shown(demo.latency), "--user-dir", demo.user_dir, "--task", "latency_prediction",
        "--search-space", demo.space, "--arch", "latency_mlp", "--criterion", "latency_predictor",
        "--optimizer", "adam", "--lr", "3e-3", "--batch-size", "32", "--required-batch-size-multiple", "1",
        "--max-epoch", str(epochs),
        "--save-dir", shown(demo.predictor.parent), "--no-epoch-checkpoints", "--no-save-optimizer-state",
        "--validate-interval", interval, "--save-interval", interval, "--seed", str(demo.seed), "--cpu",
        "--log-format", "simple",
    ])


def cost(demo: Demo, subnet_yml: Path, bits: int, hardware: str = "opcount") -> dict:
    """``shiftadd-cost --json`` of a subnet: {"layers": [...], "total": {"params", "energy_mj", ...}}."""
    output = demo.run(["shiftadd-cost", shown(subnet_yml), "--json", "--bits", str(bits), "--hardware", hardware,
                       "--data", shown(demo.data), "--search-space", demo.space])
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def budgets(demo: Demo) -> dict[str, float]:
    """Half the baseline's op-count energy and its accelerator-model latency; kept in OUT/search/budgets.json.

    Both are computed from the subnets' ops, never timed: the search finds the same subnet whatever
    the machine's load (the CPU-latency predictor is reported beside, not constrained).
    """
    baseline_energy = cost(demo, demo.baseline_yml, 32)["total"]["energy_mj"]
    accel_latency = cost(demo, demo.baseline_yml, 32, "accelerator")["total"]["latency_ms"]
    demo.note(f"baseline: {baseline_energy:.4f} mJ (32-bit op counts), {accel_latency:.4f} ms (accelerator model) -> "
              f"budgets {ENERGY_FRACTION:.0%} of its energy, at most its accelerator latency")
    return {"energy_mj": ENERGY_FRACTION * baseline_energy, "accel_latency_ms": accel_latency}


def stage_search(demo: Demo) -> None:
    """Evolutionary search under an energy and an accelerator-latency budget (resumable by itself)."""
    from ..space import SearchSpace, write_subnet

    s = demo.settings
    demo.note(f"baseline = the space's largest subnet (all attention, mult FFN) -> {shown(demo.baseline_yml)}")
    write_subnet(SearchSpace.from_file(SPACE).largest(), demo.baseline_yml)
    limits = budgets(demo)
    demo.search.mkdir(parents=True, exist_ok=True)
    (demo.search / "budgets.json").write_text(json.dumps(limits))
    demo.run([
        "shiftadd-search", shown(demo.data), "--path", shown(demo.supernet), "--search-space", demo.space,
        "--energy-mj", f"{limits['energy_mj']:.6g}", "--accel-latency-ms", f"{limits['accel_latency_ms']:.6g}",
        "--population", str(s.population), "--parents", str(s.parents), "--mutations", str(s.mutations),
        "--crossovers", str(s.crossovers), "--iterations", str(s.iterations), "--seed", str(demo.seed),
        "--out", shown(demo.search),
    ])
    for name in ("best.yml", "pareto.png", "evaluated.csv"):
        if not (demo.search / name).is_file():
            raise StageFailed(f"shiftadd-search finished without writing {shown(demo.search / name)}")


def stage_retrain(demo: Demo) -> None:
    """Both subnets with the same (scaled-down) recipe, the searched one from its supernet weights
    (``shiftadd-retrain``'s default for a search's ``best.yml``); each resumes on a re-run."""
    s = demo.settings
    for model, subnet_yml in demo.models.items():
        demo.run([
            shown(REPO / "scripts" / "retrain.sh"), shown(subnet_yml), shown(demo.data),
            shown(demo.checkpoint(model).parent), "--max-update", str(s.retrain_updates),
            "--warmup-updates", str(max(10, s.retrain_updates // 8)), "--lr", "2e-3", "--dropout", "0.1",
            "--max-tokens", str(s.max_tokens), "--seed", str(demo.seed), "--cpu", "--num-workers", "0",
            "--validate-interval", "5", "--save-interval", "5", "--log-format", "simple", "--log-interval", "25",
        ])
        if not demo.checkpoint(model).is_file():
            raise StageFailed(f"retraining finished without writing {shown(demo.checkpoint(model))}")


def score_file(demo: Demo, model: str) -> Path:
    return demo.out / "scores" / f"{model}.json"


def stage_score(demo: Demo) -> None:
    """BLEU on the test split, once, for the final report (checkpoints were selected on valid)."""
    for model in demo.models:
        output = demo.run([shown(REPO / "scripts" / "score.sh"), shown(demo.checkpoint(model)), shown(demo.data),
                           "test", "--cpu"])
        result = [line for line in output.splitlines() if line.startswith("{")][-1]
        target = score_file(demo, model)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result + "\n")


def load_model(checkpoint: Path):
    from fairseq import checkpoint_utils

    models, _ = checkpoint_utils.load_model_ensemble([str(checkpoint)])
    return models[0]


def paired_cpu_latency(demo: Demo) -> dict[str, dict[str, float]]:
    """CPU latency of both retrained models, HAT-style (hardware/latency.py): the baseline timed
    alone, the searched model timed in pairs with it (each run right after a baseline run), so
    their ratio holds when the machine's load changes while they are timed."""
    from ..hardware.latency import measure_latency

    baseline, searched = load_model(demo.checkpoint("baseline")), load_model(demo.checkpoint("searched"))
    runs = LATENCY_REPORT_RUNS
    demo.note(f"measure_latency(<baseline>, runs={runs}, device='cpu', threads={LATENCY_THREADS}), then <searched> "
              "paired with it (reference=<baseline>)  (fairseq_shiftadd.hardware.latency)")
    direct = measure_latency(baseline, runs=runs, device="cpu", threads=LATENCY_THREADS)["latency_ms"]
    paired = measure_latency(searched, runs=runs, device="cpu", threads=LATENCY_THREADS,
                             reference=baseline, reference_ms=direct)
    return {"baseline": {"latency": direct, "ratio": 1.0},
            "searched": {"latency": paired["latency_ms"], "ratio": paired["ratio"]}}


def stage_report(demo: Demo) -> None:
    """Collect scores, costs and measured latencies into OUT/report.md."""
    from ..hardware.predictor import LatencyPredictor
    from ..space import SearchSpace

    space = SearchSpace.from_file(SPACE)
    predictor = LatencyPredictor.from_checkpoint(demo.predictor, space=space)
    limits = json.loads((demo.search / "budgets.json").read_text())
    rows = []
    timed = paired_cpu_latency(demo)
    for model, subnet_yml in demo.models.items():
        subnet = space.load_subnet(subnet_yml)
        score = json.loads(score_file(demo, model).read_text())
        costs = {bits: cost(demo, subnet_yml, bits)["total"] for bits in (32, 8)}
        accelerator = cost(demo, subnet_yml, 32, "accelerator")["total"]
        rows.append({
            "model": model, "subnet": subnet, "score": score, "energy32": costs[32]["energy_mj"],
            "energy8": costs[8]["energy_mj"], "params": costs[32]["params"],
            "accel_latency": accelerator["latency_ms"], **timed[model],
            "predicted": float(predictor.predict([subnet])[0]),
        })
    shutil.copy(demo.search / "pareto.png", demo.out / "pareto.png")
    (demo.out / "report.md").write_text(report_markdown(demo, rows, limits, demo_commands(demo, STAGES)), encoding="utf-8")
    print(f"  report: {shown(demo.out / 'report.md')}", flush=True)


STAGES = [
    Stage("data", "toy corpus -> sentencepiece -> fairseq-preprocess", stage_data),
    Stage("supernet", "supernet training (fairseq-train, sandwich rule)", stage_supernet),
    Stage("latency", "latency dataset on this CPU (shiftadd-measure-latency)", stage_latency),
    Stage("predictor", "latency predictor (fairseq-train --task latency_prediction)", stage_predictor),
    Stage("search", "evolutionary search under energy and accelerator-latency budgets (shiftadd-search)", stage_search),
    Stage("retrain", "retrain searched subnet and baseline (scripts/retrain.sh)", stage_retrain),
    Stage("score", "test BLEU (scripts/score.sh)", stage_score),
    Stage("report", "report.md", stage_report),
]


