"""bench/supernet_ranking.py names each supernet's column by as much of its folder as tells it apart, and reads
and ranks the retrainings of several seeds."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from supernet_ranking import column_names, retrained_by_seed, seed_taus  # noqa: E402


def test_folders_of_one_name_get_their_parent_folder() -> None:
    paths = ["/w/m30k-v2/supernet-hybrid/checkpoint_best.pt", "/w/m30k-long/supernet-hybrid/checkpoint_best.pt"]
    assert column_names(paths) == {paths[0]: "m30k-v2/supernet-hybrid", paths[1]: "m30k-long/supernet-hybrid"}


def test_distinct_folders_keep_their_own_name() -> None:
    paths = ["/w/a/supernet-hybrid/checkpoint_best.pt", "/w/a/supernet-hybrid+inplace/checkpoint_best.pt"]
    assert list(column_names(paths).values()) == ["supernet-hybrid", "supernet-hybrid+inplace"]


def test_two_checkpoints_of_one_folder_add_their_file_names() -> None:
    paths = ["/w/a/supernet-hybrid/checkpoint_best.pt", "/w/a/supernet-hybrid/checkpoint_last.pt", "/w/b/supernet-mult/checkpoint_best.pt"]
    assert list(column_names(paths).values()) == [
        "supernet-hybrid/checkpoint_best.pt", "supernet-hybrid/checkpoint_last.pt", "supernet-mult"]


def test_no_supernet_names_no_column() -> None:  # --retrain-seeds without --path
    assert column_names([]) == {}


def test_retrainings_at_several_seeds_are_read_from_their_own_logs_and_ranked_against_each_other(tmp_path) -> None:
    def log(run: str, nll: float) -> None:  # the line fairseq writes for a validation at 600 updates
        (tmp_path / f"{run}.log").write_text(
            f"2026-12-06 | INFO | valid | epoch 003 | valid on 'valid' subset | loss 5.5 | nll_loss {nll} | ppl 20 | num_updates 600\n")
    for run, nll in {"subnet-0": 4.7, "subnet-1": 4.5, "subnet-2": 4.1,
                     "subnet-0+seed2": 4.6, "subnet-1+seed2": 4.65, "subnet-2+seed2": 4.2}.items():
        log(run, nll)
    by_seed = retrained_by_seed(tmp_path, ["subnet-0", "subnet-1", "subnet-2"], [1, 2], 600)
    assert by_seed == {1: [4.7, 4.5, 4.1], 2: [4.6, 4.65, 4.2]}
    # pairs (0,1) discordant, (0,2) and (1,2) concordant: tau = (2 - 1) / 3
    assert seed_taus(by_seed) == {"1-2": pytest.approx(1 / 3)}
