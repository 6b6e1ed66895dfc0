"""``make demo``: the whole ShiftAddNAS pipeline on a generated toy corpus, with the real commands.

Stages (each prints its commands before running them, logs everything to ``OUT/logs/STAGE.log``
and leaves ``OUT/.stages/NN-STAGE`` once its outputs are complete, so a re-run skips it):

1. data: the toy English->German corpus, a sentencepiece word model, ``fairseq-preprocess``;
2. supernet: ``fairseq-train --task shiftadd_supernet_translation --sandwich`` (resumes);
3. latency: ``shiftadd-measure-latency`` of random subnets on this CPU;
4. predictor: ``fairseq-train --task latency_prediction --arch latency_mlp``;
5. search: ``shiftadd-search`` under half the all-multiplication baseline's energy, no slower
   (predicted) than the baseline;
6. retrain: ``scripts/retrain.sh`` for the searched subnet and the baseline, same budget;
7. score: ``scripts/score.sh CKPT DATA test`` for both;
8. report: ``OUT/report.md`` (BLEU, energy, measured latency, params, subnet, Pareto plot).
"""
from __future__ import annotations

import argparse
import codecs
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SPACE = REPO / "configs" / "spaces" / "tiny.yml"
ENERGY_FRACTION = 0.5  # energy budget of the search, as a fraction of the baseline's
# One CPU thread per process: on a shared 2-core machine, 2-thread torch under contention ran 4x slower
# than 1 thread (0.37 vs 1.4 supernet updates/s, measured here with other training jobs running).
THREADS = {"OMP_NUM_THREADS": "1"}
LATENCY_THREADS = 1  # latency is measured single-threaded too: steadier
LATENCY_REPORT_RUNS = 30  # timed translations per retrained model in the report
# Lines of a command's output worth showing on the console (the log keeps everything).
PROGRESS = re.compile(r"\| (train_inner|valid) \||done training|Wrote preprocessed|BLEU|best loss|\d+%\|")
MAX_SHOWN = 400  # longer lines (fairseq's config dump) stay in the log only
FAIRSEQ_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| \w+ \| [\w.]+ \| ")


@dataclass(frozen=True)
class Settings:
    """Sizes of one demo run; ``FULL`` takes about 10 minutes on 2 CPU cores, ``QUICK`` 2-3."""

    train: int
    valid: int
    test: int
    supernet_updates: int
    latency_subnets: int
    latency_runs: int
    predictor_epochs: int
    population: int
    parents: int
    mutations: int
    crossovers: int
    iterations: int
    retrain_updates: int
    max_tokens: int = 2048


FULL = Settings(train=4000, valid=300, test=300, supernet_updates=800, latency_subnets=300, latency_runs=10,
                predictor_epochs=60, population=60, parents=15, mutations=20, crossovers=20, iterations=12,
                retrain_updates=700)
QUICK = Settings(train=1000, valid=100, test=100, supernet_updates=120, latency_subnets=60, latency_runs=3,
                 predictor_epochs=20, population=12, parents=4, mutations=4, crossovers=4, iterations=2,
                 retrain_updates=100)


class StageFailed(Exception):
    """A stage could not finish; the message is one line naming the cause."""


def shown(path: Path) -> str:
    """A path as the user should type it: relative to the current directory when inside it."""
    absolute = Path(os.path.abspath(path))  # not resolve(): the venv's python is a symlink to keep
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


class Demo:
    """Paths, settings and the command runner shared by the stages."""

    def __init__(self, out: Path, settings: Settings, seed: int) -> None:
        self.out, self.settings, self.seed = out, settings, seed
        self.data = out / "data-bin"
        self.supernet = out / "supernet" / "checkpoint_last.pt"
        self.latency = out / "latency.jsonl"
        self.predictor = out / "predictor" / "checkpoint_best.pt"
        self.search = out / "search"
        self.baseline_yml = out / "baseline.yml"
        self.models = {"searched": self.search / "best.yml", "baseline": self.baseline_yml}
        self.user_dir = shown(REPO / "fairseq_shiftadd")
        self.space = shown(SPACE)
        self.log: Path | None = None
        self.commands: list[str] = []

    def checkpoint(self, model: str) -> Path:
        return self.out / "retrain" / model / "checkpoint_best.pt"

    def vocab_size(self) -> int:
        from .search import data_vocab_size

        return data_vocab_size(str(self.data))

    def note(self, text: str) -> None:
        """A step that runs inside this process: shown like a command, as a comment."""
        print(f"  # {text}", flush=True)
        self._log_line(f"# {text}")
        self.commands.append(f"# {text}")

    def _log_line(self, text: str) -> None:
        assert self.log is not None
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(text + "\n")

    def run(self, command: Sequence[str]) -> str:
        """Run one command (an executable of this venv or a script of the repo), print it first,
        log all its output and show its progress lines; returns its stdout+stderr text."""
        text = " ".join(f"{name}={value}" for name, value in THREADS.items()) + " " + shlex.join(command)
        print(f"  $ {text}", flush=True)
        self._log_line(f"$ {text}")
        self.commands.append(text)
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1", **THREADS)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        output = self._stream(proc)
        if proc.wait():
            lines = [line for line in re.split(r"[\r\n]", output) if line.strip()]
            last = FAIRSEQ_PREFIX.sub("", lines[-1]).strip() if lines else "no output"
            raise StageFailed(f"{command[0]} exited with {proc.returncode}: {last}")
        return output

    def _stream(self, proc: subprocess.Popen) -> str:
        """Copy the output to the log; echo progress lines (tqdm bars in place on a terminal,
        else at most every 10 s)."""
        assert self.log is not None and proc.stdout is not None
        tty = sys.stdout.isatty()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-character
        chunks: list[str] = []
        pending, shown_bar_at, bar = "", 0.0, ""
        with open(self.log, "a", encoding="utf-8") as log:
            while data := proc.stdout.read1(65536):
                text = decoder.decode(data)
                log.write(text)
                log.flush()
                chunks.append(text)
                pending += text
                *pieces, pending = re.split(r"(\r|\n)", pending)
                for piece, end in zip(pieces[0::2], pieces[1::2]):
                    if len(piece) > MAX_SHOWN or not PROGRESS.search(piece):
                        continue
                    piece = FAIRSEQ_PREFIX.sub("", piece).rstrip()
                    if end == "\n":
                        print(("\r" if tty and bar else "") + f"    {piece}".ljust(len(bar) + 4), flush=True)
                        bar = ""
                    elif tty:
                        print(f"\r    {piece}".ljust(len(bar) + 5), end="", flush=True)
                        bar = piece
                    elif time.monotonic() - shown_bar_at > 10:
                        print(f"    {piece}", flush=True)
                        shown_bar_at = time.monotonic()
        if bar:
            print(flush=True)
        return "".join(chunks)


# ---------------------------------------------------------------------------------------- stages
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
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", str(max(10, s.supernet_updates // 8)), "--criterion", "label_smoothed_cross_entropy",
        "--label-smoothing", "0.1", "--max-tokens", str(s.max_tokens), "--max-update", str(s.supernet_updates),
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


def cost(demo: Demo, subnet_yml: Path, bits: int) -> dict:
    """``shiftadd-cost --json`` of a subnet: {"layers": [...], "total": {"params", "energy_mj", ...}}."""
    output = demo.run(["shiftadd-cost", shown(subnet_yml), "--json", "--bits", str(bits),
                       "--vocab-size", str(demo.vocab_size()), "--search-space", demo.space])
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def budgets(demo: Demo) -> dict[str, float]:
    """Half the baseline's energy and the baseline's predicted latency; kept in OUT/search/budgets.json."""
    from ..hardware.predictor import LatencyPredictor
    from ..space import SearchSpace

    space = SearchSpace.from_file(SPACE)
    baseline_energy = cost(demo, demo.baseline_yml, 32)["total"]["energy_mj"]
    latency = float(LatencyPredictor.from_checkpoint(demo.predictor, space=space).predict([space.largest()])[0])
    demo.note(f"baseline: {baseline_energy:.4f} mJ (32-bit), predicted {latency:.2f} ms -> budgets "
              f"{ENERGY_FRACTION:.0%} of its energy, at most its latency")
    return {"energy_mj": ENERGY_FRACTION * baseline_energy, "latency_ms": latency}


def stage_search(demo: Demo) -> None:
    """Evolutionary search under an energy and a predicted-latency budget (resumable by itself)."""
    from ..space import SearchSpace, write_subnet

    s = demo.settings
    demo.note(f"baseline = the space's largest subnet (all attention, mult FFN) -> {shown(demo.baseline_yml)}")
    write_subnet(SearchSpace.from_file(SPACE).largest(), demo.baseline_yml)
    limits = budgets(demo)
    demo.search.mkdir(parents=True, exist_ok=True)
    (demo.search / "budgets.json").write_text(json.dumps(limits))
    demo.run([
        "shiftadd-search", shown(demo.data), "--path", shown(demo.supernet), "--search-space", demo.space,
        "--energy-mj", f"{limits['energy_mj']:.6g}", "--latency-ms", f"{limits['latency_ms']:.4g}", "--latency-predictor", shown(demo.predictor),
        "--population", str(s.population), "--parents", str(s.parents), "--mutations", str(s.mutations),
        "--crossovers", str(s.crossovers), "--iterations", str(s.iterations), "--seed", str(demo.seed),
        "--out", shown(demo.search),
    ])
    for name in ("best.yml", "pareto.png", "evaluated.csv"):
        if not (demo.search / name).is_file():
            raise StageFailed(f"shiftadd-search finished without writing {shown(demo.search / name)}")


def stage_retrain(demo: Demo) -> None:
    """Both subnets from scratch with the same (scaled-down) recipe; each resumes on a re-run."""
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


def measured_latency_ms(demo: Demo, checkpoint: Path) -> float:
    """HAT-style CPU latency of a retrained checkpoint, measured as shiftadd-measure-latency does."""
    from fairseq import checkpoint_utils

    from ..hardware.latency import measure_latency

    models, _ = checkpoint_utils.load_model_ensemble([str(checkpoint)])
    runs = LATENCY_REPORT_RUNS
    demo.note(f"measure_latency(<{shown(checkpoint)}>, runs={runs}, device='cpu', threads={LATENCY_THREADS})"
              "  (fairseq_shiftadd.hardware.latency)")
    return measure_latency(models[0], runs=runs, device="cpu", threads=LATENCY_THREADS)["latency_ms"]


def last_metrics(demo: Demo, log_name: str, keys: Sequence[str]) -> dict[str, str]:
    """The last validation values of ``keys`` in a stage log (fairseq's 'valid on' lines)."""
    log = (demo.out / "logs" / f"{log_name}.log").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in log.splitlines() if "valid on 'valid'" in line]
    found = {}
    for key in keys:
        match = re.search(rf"\| {key} ([-\d.]+)", lines[-1]) if lines else None
        found[key] = match.group(1) if match else "n/a"
    return found


def describe(subnet) -> str:
    """One line: per-layer encoder and decoder block/FFN types and widths."""
    enc = ", ".join(f"{b}/{f}" for b, f in zip(subnet.encoder_block_types, subnet.encoder_ffn_types))
    dec = ", ".join(f"{b}/{f}" for b, f in zip(subnet.decoder_block_types, subnet.decoder_ffn_types))
    return f"d {subnet.encoder_embed_dim}/{subnet.decoder_embed_dim}; enc [{enc}]; dec [{dec}]"


def stage_report(demo: Demo) -> None:
    """Collect scores, costs and measured latencies into OUT/report.md."""
    from ..hardware.predictor import LatencyPredictor
    from ..space import SearchSpace

    space = SearchSpace.from_file(SPACE)
    predictor = LatencyPredictor.from_checkpoint(demo.predictor, space=space)
    limits = json.loads((demo.search / "budgets.json").read_text())
    rows = []
    for model, subnet_yml in demo.models.items():
        subnet = space.load_subnet(subnet_yml)
        score = json.loads(score_file(demo, model).read_text())
        costs = {bits: cost(demo, subnet_yml, bits)["total"] for bits in (32, 8)}
        rows.append({
            "model": model, "subnet": subnet, "score": score, "energy32": costs[32]["energy_mj"],
            "energy8": costs[8]["energy_mj"], "params": costs[32]["params"],
            "latency": measured_latency_ms(demo, demo.checkpoint(model)),
            "predicted": float(predictor.predict([subnet])[0]),
        })
    shutil.copy(demo.search / "pareto.png", demo.out / "pareto.png")
    (demo.out / "report.md").write_text(report_markdown(demo, rows, limits), encoding="utf-8")
    print(f"  report: {shown(demo.out / 'report.md')}", flush=True)


def report_markdown(demo: Demo, rows: list[dict], limits: dict[str, float]) -> str:
    s = demo.settings
    base = rows[-1]
    names = {"searched": "searched hybrid", "baseline": "all-multiplication baseline"}
    table = [
        "| model | sacreBLEU | BLEU (tok.) | energy 32-bit (mJ) | energy 8-bit (mJ) | energy vs baseline | "
        "CPU latency measured (ms) | latency predicted (ms) | params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        table.append(
            f"| {names[row['model']]} | {row['score']['sacrebleu']:.2f} | {row['score']['bleu_tok']:.2f} | "
            f"{row['energy32']:.4f} | {row['energy8']:.5f} | {row['energy32'] / base['energy32']:.0%} | "
            f"{row['latency']:.2f} | {row['predicted']:.2f} | {row['params'] / 1e3:.1f} K |"
        )
    predictor = last_metrics(demo, "predictor", ("rmse_ms", "mape", "kendall_tau"))
    supernet = last_metrics(demo, "supernet", ("loss_largest", "loss_smallest", "loss_hybrid"))
    best_yml = (demo.search / "best.yml").read_text()
    commands = "\n".join(demo_commands(demo))
    return f"""# ShiftAddNAS demo report

Generated by `scripts/demo.py --out {shown(demo.out)}` (seed {demo.seed}) on the generated English->German toy
corpus ({s.train} train / {s.valid} valid / {s.test} test pairs), search space `{demo.space}`.

## Searched hybrid vs all-multiplication baseline (test split, beam 4)

{chr(10).join(table)}

- Both models retrained from scratch with the same recipe and budget ({s.retrain_updates} updates), checkpoint
  selected on the validation loss; BLEU on the test split from `scripts/score.sh` (sacreBLEU
  `{rows[0]['score']['signature']}`).
- Energy: `shiftadd-cost` op-count model at 30 tokens (32-bit float and 8-bit fixed point).
- Latency: one translation (30-token source, 30 decoder steps, beam 4, batch 1) on this CPU with
  {LATENCY_THREADS} thread, measured on the retrained models; "predicted" is the latency predictor's estimate,
  trained on the stage-3 measurements. On a shared machine both depend on its load at the time they were taken.
- Search budgets: energy <= {limits['energy_mj']:.4f} mJ ({ENERGY_FRACTION:.0%} of the baseline's), predicted latency <=
  {limits['latency_ms']:.2f} ms (the baseline's). Population {s.population}, {s.iterations} iterations; fitness = validation loss
  with inherited supernet weights.

Searched: {describe(rows[0]['subnet'])}

Baseline: {describe(rows[1]['subnet'])}

## Pipeline diagnostics

- Supernet ({s.supernet_updates} sandwich updates), last validation loss: largest {supernet['loss_largest']},
  smallest {supernet['loss_smallest']}, fixed hybrid {supernet['loss_hybrid']}.
- Latency predictor on held-out subnets ({s.latency_subnets} measured): RMSE {predictor['rmse_ms']} ms,
  MAPE {predictor['mape']} %, Kendall tau {predictor['kendall_tau']}.

## Searched subnet (`{shown(demo.search / 'best.yml')}`)

```yaml
{best_yml.rstrip()}
```

## Pareto front

![validation loss vs cost of every evaluated subnet](pareto.png)

(`pareto.png`, copied from `{shown(demo.search / 'pareto.png')}`; all evaluated subnets: `{shown(demo.search / 'evaluated.csv')}`.)

## Commands

```sh
{commands}
```
"""


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Demo], None]


STAGES = [
    Stage("data", "toy corpus -> sentencepiece -> fairseq-preprocess", stage_data),
    Stage("supernet", "supernet training (fairseq-train, sandwich rule)", stage_supernet),
    Stage("latency", "latency dataset on this CPU (shiftadd-measure-latency)", stage_latency),
    Stage("predictor", "latency predictor (fairseq-train --task latency_prediction)", stage_predictor),
    Stage("search", "evolutionary search under energy and latency budgets (shiftadd-search)", stage_search),
    Stage("retrain", "retrain searched subnet and baseline (scripts/retrain.sh)", stage_retrain),
    Stage("score", "test BLEU (scripts/score.sh)", stage_score),
    Stage("report", "report.md", stage_report),
]


def stamp_path(demo: Demo, index: int, stage: Stage) -> Path:
    return demo.out / ".stages" / f"{index:02d}-{stage.name}"


def demo_commands(demo: Demo) -> list[str]:
    """The commands of every finished stage (from the stamps), then those of the running stage."""
    lines = []
    for index, stage in enumerate(STAGES, 1):
        stamp = stamp_path(demo, index, stage)
        if stamp.is_file():
            lines += [f"# stage {index}: {stage.name}", *stamp.read_text().splitlines()]
    return lines + [f"# stage {len(STAGES)}: report", *demo.commands]


def check_settings(demo: Demo) -> None:
    """An output folder holds one setting: refuse to mix --quick/--seed runs in it."""
    record = demo.out / ".stages" / "settings.json"
    current = json.dumps({"seed": demo.seed, **asdict(demo.settings)}, sort_keys=True)
    if record.is_file() and record.read_text() != current:
        raise StageFailed(f"{shown(demo.out)} holds a demo run with other settings (--quick or --seed): "
                          f"use another --out or remove it")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(current)


def run_stages(demo: Demo) -> None:
    check_settings(demo)
    (demo.out / "logs").mkdir(parents=True, exist_ok=True)
    for index, stage in enumerate(STAGES, 1):
        stamp = stamp_path(demo, index, stage)
        banner = f"[{index}/{len(STAGES)}] {stage.name}: {stage.title}"
        if stamp.is_file():
            print(f"{banner}: done, skipped ({shown(stamp)})", flush=True)
            continue
        print(f"\n{'=' * 8} {banner}", flush=True)
        demo.log, demo.commands = demo.out / "logs" / f"{stage.name}.log", []
        demo.log.write_text("")
        # in-process steps (fairseq model loading, predictor) log into the stage log, not the console
        logging.basicConfig(filename=demo.log, level=logging.INFO, force=True,
                            format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
        start = time.monotonic()
        try:
            stage.run(demo)
        except StageFailed as err:
            raise StageFailed(f"stage {index} ({stage.name}) failed: {err}; full log: {shown(demo.log)}") from None
        except Exception as err:  # an in-process step: keep its traceback in the log
            with open(demo.log, "a", encoding="utf-8") as log:
                traceback.print_exc(file=log)
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise StageFailed(f"stage {index} ({stage.name}) failed: {message}; full log: {shown(demo.log)}") from None
        stamp.write_text("".join(line + "\n" for line in demo.commands))
        print(f"  {stage.name} finished in {time.monotonic() - start:.0f} s", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="demo-out", help="output folder (finished stages are skipped on re-run)")
    parser.add_argument("--quick", action="store_true", help="a much smaller setting (2-3 minutes), for tests")
    parser.add_argument("--seed", type=int, default=1, help="seed of the corpus, training, sampling and search")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    demo = Demo(Path(args.out), QUICK if args.quick else FULL, args.seed)
    start = time.monotonic()
    try:
        run_stages(demo)
    except StageFailed as err:
        print(f"demo: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; run the same command again to continue", file=sys.stderr, flush=True)
        return 130
    print(f"\ndemo finished in {time.monotonic() - start:.0f} s: {shown(demo.out / 'report.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
