"""Running this venv's commands (fairseq-train, shiftadd-search, ...) from Python: tests, benches, the demo."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

VENV_BIN = Path(sys.executable).parent  # where the venv's console scripts live


def venv_env(cpu_only: bool = False, **extra: str) -> dict[str, str]:
    """The environment with this venv's commands first on PATH; ``cpu_only`` hides every GPU."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_venv_command(
    args: Sequence[str | os.PathLike], cwd: str | os.PathLike, cpu_only: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run one command of this venv to completion; its stdout and stderr come back as text."""
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=venv_env(cpu_only), capture_output=True, text=True, timeout=timeout
    )
