"""The hardening, under the real commands: fairseq-generate given another space, fairseq-train resuming past an
empty ``checkpoint_last.pt`` (what fairseq's non-atomic copy left after a kill), shiftadd-search from another folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import REPO, SPACE_FILE, TRAIN_FLAGS, run


def test_generate_with_another_space_names_the_trained_one(supernet_dir: Path, toy_data: Path) -> None:
    proc = run(["fairseq-generate", str(toy_data), "--user-dir", "fairseq_shiftadd", "--path", str(supernet_dir / "checkpoint_best.pt"),
                "--task", "shiftadd_supernet_translation", "--search-space", "configs/spaces/multi30k.yml", "--cpu",
                "--batch-size", "8", "--max-sentences", "8"], check=False)
    err = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(err) == 1 and "was trained on space tiny" in err[0] and "space multi30k" in err[0], proc.stderr[-2000:]


def test_train_resumes_past_an_empty_last_checkpoint(supernet_dir: Path, toy_data: Path, tmp_path: Path) -> None:
    save = tmp_path / "save"
    shutil.copytree(supernet_dir, save)
    (save / "checkpoint_last.pt").write_bytes(b"")
    proc = run(["fairseq-train", str(toy_data), "--user-dir", str(REPO / "fairseq_shiftadd"), "--task", "shiftadd_supernet_translation",
                "--arch", "shiftadd_supernet_tiny", "--search-space", str(REPO / SPACE_FILE), "--save-dir", str(save), *TRAIN_FLAGS,
                "--max-update", "50"], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert "checkpoint_last.pt is empty or truncated (a run killed while saving); resuming from checkpoint_best.pt instead" in log
    assert "Traceback" not in log and "Loaded checkpoint" in log
    assert (save / "checkpoint_last.pt").stat().st_size > 0


def test_train_resumed_with_another_space_names_the_trained_one(supernet_dir: Path, toy_data: Path, tmp_path: Path) -> None:
    save = tmp_path / "save"
    shutil.copytree(supernet_dir, save)
    proc = run(["fairseq-train", str(toy_data), "--user-dir", str(REPO / "fairseq_shiftadd"), "--task", "shiftadd_supernet_translation",
                "--arch", "shiftadd_supernet_tiny", "--search-space", str(REPO / "configs/spaces/multi30k.yml"), "--save-dir", str(save),
                *TRAIN_FLAGS, "--max-update", "50"], cwd=tmp_path, check=False)
    err = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert "was trained on space tiny" in err[0] and "space multi30k" in err[0] and "Traceback" not in proc.stderr
