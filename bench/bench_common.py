"""Helpers the benchmark scripts share: the machine's load and running the venv's commands."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load() -> str:
    """The load average, printed next to every timing taken on a shared machine."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def run(args: list[str], gpus: bool = False) -> str:
    """Run a venv command (on the CPU unless ``gpus``); its combined output (raises with the tail on failure)."""
    env = dict(os.environ) if gpus else dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr
