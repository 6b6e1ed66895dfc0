"""Where the C++ kernels are built: one cache folder per checkout, and a builder killed mid-build
(its torch lock file left behind) does not hang the processes that come after it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils import cpp_extension

from fairseq_shiftadd.modules.kernels import extension_name

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "fairseq_shiftadd" / "modules" / "csrc"


def test_each_checkout_and_torch_version_builds_into_its_own_folder(tmp_path):
    name = extension_name(SOURCES, "2.13.0")
    assert name == extension_name(Path(os.path.relpath(SOURCES)), "2.13.0")  # the same folder however it is named
    assert name != extension_name(tmp_path, "2.13.0")  # another checkout
    assert name != extension_name(SOURCES, "2.14.0")


def test_a_lock_file_left_by_a_killed_builder_does_not_hang_the_next_process(kernels, tmp_path):
    """torch alone waits for its lock file to go away, forever when its builder was killed; ours takes the build
    over. A copy of this checkout's build with torch's lock file in it loads in a fresh process, without a rebuild."""
    name = extension_name(SOURCES, torch.__version__)
    built = Path(cpp_extension._get_build_directory(name, verbose=False))
    root = tmp_path / "extensions"
    shutil.copytree(built, root / name, ignore=shutil.ignore_patterns("lock", "builder.flock"))
    (root / name / "lock").touch()
    probe = "from fairseq_shiftadd.modules.kernels import kernels_available; print(kernels_available())"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TORCH_EXTENSIONS_DIR": str(root), "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
    assert "compiling" not in proc.stderr
    assert not (root / name / "lock").exists()
