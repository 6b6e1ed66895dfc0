"""Shared fixtures: a generated toy corpus, binarized once per test session, a command runner, kernels.

``tests/unit`` runs in-process in seconds; ``tests/integration`` runs the real commands (fairseq-train,
fairseq-generate, the data recipes, the demo) on tiny synthetic data.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_shiftadd.recipes import translation_recipe
from fairseq_shiftadd.venv_commands import run_venv_command

# Triton's interpreter runs the Triton kernels on CPU tensors (tests/unit/test_triton_add.py). triton
# reads this variable when it is first imported, so it is set before anything imports triton.
os.environ["TRITON_INTERPRET"] = "1"

REPO = Path(__file__).resolve().parents[1]
KERNEL_USERS = ("fairseq_shiftadd.modules.add_linear", "fairseq_shiftadd.modules.add_conv")


def run(args: list[str], cwd: Path = REPO, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run an installed command (fairseq-train, shiftadd-cost, ...) of this venv, CPU only."""
    proc = run_venv_command(args, cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    """The toy En->De corpus (600/60/60 pairs), binarized with a joined dictionary."""
    from fairseq_shiftadd.data.toy_corpus import binarized_toy_corpus

    return binarized_toy_corpus(tmp_path_factory.mktemp("toy"), train=600, valid=60, test=60)


TRAIN_FLAGS = [
    *translation_recipe("3e-3", 10), "--max-tokens", "1500", "--no-progress-bar", "--log-interval", "5", "--seed", "1", "--num-workers", "0", "--cpu",
    "--no-epoch-checkpoints",
]
SPACE_FILE = "configs/spaces/tiny.yml"


@pytest.fixture(scope="session")
def supernet_dir(toy_data: Path, tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("supernet")
    args = ["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--task", "shiftadd_supernet_translation",
            "--arch", "shiftadd_supernet_tiny", "--search-space", SPACE_FILE, "--save-dir", str(save), *TRAIN_FLAGS]
    first = run([*args, "--max-update", "30"])
    second = run([*args, "--max-update", "45"])  # resumes from checkpoint_last.pt
    (save / "train.log").write_text(first.stdout + first.stderr)
    (save / "resume.log").write_text(second.stdout + second.stderr)
    return save


@pytest.fixture
def kernels() -> None:
    """Skip the test when the C++ kernels cannot be built (they are built here, never at collection)."""
    from fairseq_shiftadd.modules import kernels_available

    if not kernels_available():
        pytest.skip("C++ kernels could not be built")


@pytest.fixture(params=["kernel", "fallback"])
def backend(request, monkeypatch) -> str:
    """Run a test on the C++ kernels and again on the pure-torch fallback."""
    if request.param == "kernel":
        request.getfixturevalue("kernels")
    if request.param == "fallback":
        for module in KERNEL_USERS:
            monkeypatch.setattr(sys.modules[module], "select_backend", lambda *tensors: "torch")
    return request.param
