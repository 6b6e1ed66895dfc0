"""``fairseq-train --init-from-supernet``: a hybrid supernet starts from the weights a multiplication-only supernet
shares with it (issue 20's warm-start lever), ignores the option once it resumes, and a start that does not fit is
one line and exit status 2."""
from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml

from tests.conftest import REPO, SPACE_FILE, TRAIN_FLAGS, run


def mult_only_space(path: Path) -> Path:
    """configs/spaces/tiny.yml restricted to attention blocks and multiplication FFNs (HAT's operators)."""
    space = yaml.safe_load((REPO / SPACE_FILE).read_text())
    space["name"] = "tiny-mult"
    for side in ("encoder", "decoder"):
        space[side]["block-types"] = ["attn"]
        space[side]["ffn-types"] = ["mult"]
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def supernet_training(toy_data: Path, space: Path | str, save: Path, *options: str) -> list[str]:
    return ["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--task", "shiftadd_supernet_translation",
            "--arch", "shiftadd_supernet_tiny", "--search-space", str(space), "--weight-sharing", "heterogeneous",
            "--save-dir", str(save), *TRAIN_FLAGS, *options]


def one_error_line(proc) -> str:
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return errors[0]


def test_a_hybrid_supernet_starts_from_a_mult_supernet_and_resumes_from_itself(toy_data: Path, tmp_path: Path) -> None:
    mult_space = mult_only_space(tmp_path / "tiny-mult.yml")
    run(supernet_training(toy_data, mult_space, tmp_path / "mult", "--max-update", "3"))
    source = tmp_path / "mult" / "checkpoint_last.pt"
    hybrid = supernet_training(toy_data, SPACE_FILE, tmp_path / "hybrid", "--init-from-supernet", str(source),
                               "--lr", "0", "--lr-scheduler", "fixed")
    started = run([*hybrid, "--max-update", "2"])
    shared = torch.load(source, weights_only=False)["model"]
    trained = torch.load(tmp_path / "hybrid" / "checkpoint_last.pt", weights_only=False)["model"]
    assert set(shared) < set(trained)
    assert all(torch.equal(trained[name], shared[name]) for name in shared)  # lr 0: the weights it started from
    copied = re.search(r"warm start from \S+: (\d+) of (\d+) tensors", started.stdout + started.stderr)
    assert copied and (int(copied[1]), int(copied[2])) == (len(shared), len(trained))

    source.rename(tmp_path / "moved.pt")  # a resumed run never reads it again
    resumed = run([*hybrid, "--max-update", "3"])
    log = resumed.stdout + resumed.stderr
    assert "--init-from-supernet" in log and "ignored: the run resumes from its own checkpoint" in log
    assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ 2 updates\)", log)

    larger_into_smaller = run(supernet_training(toy_data, mult_space, tmp_path / "other", "--max-update", "1",
                                                "--init-from-supernet", str(tmp_path / "hybrid" / "checkpoint_last.pt")), check=False)
    assert "which the supernet being trained lacks" in one_error_line(larger_into_smaller)
    assert not (tmp_path / "other" / "checkpoint_last.pt").exists()
    two_starts = run(supernet_training(toy_data, SPACE_FILE, tmp_path / "both", "--max-update", "1", "--init-from-supernet",
                                       str(tmp_path / "moved.pt"), "--finetune-from-model", str(tmp_path / "moved.pt")), check=False)
    assert "--init-from-supernet and --finetune-from-model" in one_error_line(two_starts)
