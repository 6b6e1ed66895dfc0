"""Helpers the benchmark scripts share: the machine's load and running the venv's commands."""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package of this checkout

from fairseq_shiftadd.venv_commands import VENV_BIN as BIN, run_venv_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The load average, printed next to every timing taken on a shared machine."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def run(args: list[str], gpus: bool = False) -> str:
    """Run a venv command (on the CPU unless ``gpus``); its combined output (raises with the tail on failure)."""
    proc = run_venv_command([BIN / args[0], *args[1:]], cwd=ROOT, cpu_only=not gpus)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr
