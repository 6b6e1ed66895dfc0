"""shiftadd-average: which checkpoints it picks, and that their mean is the element-wise mean."""
from __future__ import annotations

import pytest
import torch

from fairseq_shiftadd.cli import average
from fairseq_shiftadd.errors import InvalidInput


def save(path, weight: float, step: int) -> None:
    torch.save({"model": {"w": torch.full((2, 3), weight), "step": torch.tensor(step)}, "last_optimizer_state": {"m": 1}}, path)


def test_interval_checkpoints_are_ordered_by_updates_not_by_name(tmp_path):
    for epoch, updates in ((7, 900), (8, 1000), (8, 1100)):  # "checkpoint_8_1000" sorts before "checkpoint_7_900" by name
        save(tmp_path / f"checkpoint_{epoch}_{updates}.pt", updates, 0)
    save(tmp_path / "checkpoint9.pt", 0, 0)
    save(tmp_path / "checkpoint_best.pt", 0, 0)
    assert [p.name for p in average.last_checkpoints(tmp_path, 2, "interval")] == ["checkpoint_8_1000.pt", "checkpoint_8_1100.pt"]
    assert [p.name for p in average.last_checkpoints(tmp_path, 1)] == ["checkpoint9.pt"]
    with pytest.raises(InvalidInput, match="has 3 interval checkpoints, fewer than the 4"):
        average.last_checkpoints(tmp_path, 4, "interval")


def test_the_command_writes_the_mean_of_the_newest_interval_checkpoints(tmp_path, capsys):
    for updates, weight in ((800, 100.0), (900, 1.0), (1000, 2.0), (1100, 6.0)):
        save(tmp_path / f"checkpoint_1_{updates}.pt", weight, 5)
    out = tmp_path / "avg.pt"
    assert average.main(["--dir", str(tmp_path), "--last", "3", "--kind", "interval", "--output", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    assert torch.equal(state["model"]["w"], torch.full((2, 3), 3.0))  # (1 + 2 + 6) / 3, the 800 one left out
    assert torch.equal(state["model"]["step"], torch.tensor(5))
    assert state["last_optimizer_state"] is None
    assert "checkpoint_1_900.pt, checkpoint_1_1000.pt, checkpoint_1_1100.pt" in capsys.readouterr().out
