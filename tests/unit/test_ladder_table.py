"""bench/quality_ladder.py's table: a command that trains some rows of a table adds them to it; its options refused
before anything is written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from quality_ladder import markdown_table, merged_rows  # noqa: E402


def row(model: str, bleu: float, averaged: float | None = None, average_last: int = 0) -> dict:
    return {"model": model, "levers": "-", "energy_mj_32": 0.5617, "energy_mj_8": 0.0281, "accelerator_mj_32": 6.5268,
            "params_m": 6.0, "valid_loss": {500: 5.5, 1000: 4.6, 2000: 4.2}, "updates": 2000, "sacrebleu": bleu,
            "sacrebleu_averaged": averaged, "average_last": average_last, "signature": "nrefs:1"}


def test_a_later_invocation_keeps_the_other_rows_and_replaces_its_own(tmp_path: Path) -> None:
    table = tmp_path / "ladder+seed2.json"
    table.write_text(json.dumps([row("baseline+seed2", 36.17, 36.17, 5), row("hat+seed2", 31.0)], indent=1))
    rows = merged_rows(table, [row("hat+seed2", 32.02, 31.56, 5), row("new+seed2", 30.0)])
    assert [(r["model"], r["sacrebleu"]) for r in rows] == [("baseline+seed2", 36.17), ("hat+seed2", 32.02), ("new+seed2", 30.0)]
    assert rows[0]["valid_loss"] == {500: 5.5, 1000: 4.6, 2000: 4.2}  # updates back to ints after JSON
    assert merged_rows(tmp_path / "absent.json", rows[:1]) == rows[:1]


def test_the_average_column_appears_when_a_row_has_an_average() -> None:
    plain = markdown_table([row("baseline", 35.67)]).splitlines()
    assert plain[0].endswith("| sacreBLEU |") and plain[2].endswith("| 4.200 (2000) | 35.67 |")
    mixed = markdown_table([row("baseline", 35.67), row("hybrid", 34.95, 35.20, 5)]).splitlines()
    assert mixed[0].endswith("| sacreBLEU | sacreBLEU, average of last 5 |")
    assert mixed[2].endswith("| 35.67 | - |") and mixed[3].endswith("| 34.95 | 35.20 |")
    two_counts = markdown_table([row("a", 30.0, 30.5, 3), row("b", 31.0, 31.5, 5)]).splitlines()
    assert two_counts[2].endswith("| 30.50 (last 3) |") and two_counts[3].endswith("| 31.50 (last 5) |")
    assert two_counts[-1] == "sacreBLEU signature: nrefs:1"


def test_the_warm_lever_needs_the_mult_supernet_and_leaves_hat_its_own_lever(tmp_path: Path) -> None:
    def ladder(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(Path(__file__).parents[2] / "bench/quality_ladder.py"), "--work", str(tmp_path),
                               "--supernet-lever", "warm", *args], capture_output=True, text=True, timeout=120)

    missing = ladder("--rows", "hybrid-50")
    assert missing.returncode == 2 and "supernet-mult/checkpoint_best.pt does not exist" in missing.stderr
    with_hat = ladder("--rows", "hybrid-50", "hat-50")
    assert with_hat.returncode == 2 and "give hat-50 its equal as a longer supernet" in with_hat.stderr
    assert not (tmp_path / "logs").exists()  # refused before anything is written
