"""The demo's stage runner: paths and settings of one run, commands echoed and logged, finished stages skipped.

Each stage prints its commands before running them, logs everything to ``OUT/logs/STAGE.log`` and
leaves ``OUT/.stages/NN-STAGE`` (its commands) once its outputs are complete, so a re-run skips it.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..data.sized_dictionary import data_vocab_size
from ..venv_commands import venv_env
from .log_stream import last_line, stream_output

REPO = Path(__file__).resolve().parents[2]
SPACE = REPO / "configs" / "spaces" / "tiny.yml"
ENERGY_FRACTION = 0.5  # energy budget of the search, as a fraction of the baseline's
# One CPU thread per process: on a shared 2-core machine, 2-thread torch under contention ran 4x slower
# than 1 thread (0.37 vs 1.4 supernet updates/s, measured here with other training jobs running).
THREADS = {"OMP_NUM_THREADS": "1"}
LATENCY_THREADS = 1  # latency is measured single-threaded too: steadier
LATENCY_REPORT_RUNS = 30  # timed translations per retrained model in the report


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
        return data_vocab_size(self.data)

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
        env = venv_env(PYTHONUNBUFFERED="1", **THREADS)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert self.log is not None
        output = stream_output(proc, self.log)
        if proc.wait():
            raise StageFailed(f"{command[0]} exited with {proc.returncode}: {last_line(output)}")
        return output


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Demo], None]



def stamp_path(demo: Demo, index: int, stage: Stage) -> Path:
    return demo.out / ".stages" / f"{index:02d}-{stage.name}"


def demo_commands(demo: Demo, stages: Sequence[Stage]) -> list[str]:
    """The commands of every finished stage (from the stamps), then those of the running stage."""
    lines = []
    for index, stage in enumerate(stages, 1):
        stamp = stamp_path(demo, index, stage)
        if stamp.is_file():
            lines += [f"# stage {index}: {stage.name}", *stamp.read_text().splitlines()]
    return lines + [f"# stage {len(stages)}: report", *demo.commands]


def check_settings(demo: Demo) -> None:
    """An output folder holds one setting: refuse to mix --quick/--seed runs in it."""
    record = demo.out / ".stages" / "settings.json"
    current = json.dumps({"seed": demo.seed, **asdict(demo.settings)}, sort_keys=True)
    if record.is_file() and record.read_text() != current:
        raise StageFailed(f"{shown(demo.out)} holds a demo run with other settings (--quick or --seed): "
                          f"use another --out or remove it")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(current)


def run_stages(demo: Demo, stages: Sequence[Stage]) -> None:
    check_settings(demo)
    (demo.out / "logs").mkdir(parents=True, exist_ok=True)
    for index, stage in enumerate(stages, 1):
        stamp = stamp_path(demo, index, stage)
        banner = f"[{index}/{len(stages)}] {stage.name}: {stage.title}"
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
