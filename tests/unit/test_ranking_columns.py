"""bench/supernet_ranking.py names each supernet's column by as much of its folder as tells it apart."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from supernet_ranking import column_names  # noqa: E402


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
