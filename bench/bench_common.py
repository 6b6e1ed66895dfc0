"""Helpers the benchmark scripts share: the machine and its load, running the venv's commands."""
from __future__ import annotations

import os
import re
import subprocess
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


def machine() -> str:
    """The CPU model and count, as ``lscpu`` names them, and torch's version."""
    import torch

    model = re.search(r"Model name:\s*(.+)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
    return f"{model.group(1).strip() if model else 'unknown CPU'}, {os.cpu_count()} CPUs, torch {torch.__version__}"

