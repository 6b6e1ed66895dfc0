"""bench/quality_ladder.py's table: a command that trains some rows of a table adds them to it; its options refused
before anything is written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from quality_ladder import SPACES, markdown_table, merged_rows, searched_subnet  # noqa: E402

from fairseq_shiftadd.search.evolution import Constraint, Evolution  # noqa: E402
from fairseq_shiftadd.space import SearchSpace  # noqa: E402


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


def test_the_warm_lever_needs_the_mult_supernet(tmp_path: Path) -> None:
    for rows in (["hybrid-50"], ["hybrid-50", "hat-50"]):  # the lever starts both supernets from WORK/supernet-mult
        missing = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "bench/quality_ladder.py"), "--work", str(tmp_path),
                                  "--supernet-lever", "warm", "--rows", *rows], capture_output=True, text=True, timeout=120)
        assert missing.returncode == 2 and "supernet-mult/checkpoint_best.pt does not exist" in missing.stderr
    assert not (tmp_path / "logs").exists()  # refused before anything is written


def test_a_searched_row_takes_the_best_subnet_of_its_own_budget(tmp_path: Path) -> None:
    def searched_alone(out: Path, budget: float) -> None:  # what shiftadd-search leaves for one budget
        out.mkdir(parents=True)
        engine = Evolution(SearchSpace.from_file(SPACES["hybrid"]), None, [Constraint("energy_mj", budget, len)])
        engine.save_state(out / "state.json")
        (out / "best.yml").write_text("{}")

    searched_alone(tmp_path / "search-hybrid", 0.280858)  # an earlier ladder's 50% search, kept in the folder itself
    assert searched_subnet(tmp_path / "search-hybrid", 0.280858) == tmp_path / "search-hybrid/best.yml"
    assert searched_subnet(tmp_path / "search-hybrid", 0.140429) == tmp_path / "search-hybrid/budget-0.140429/best.yml"
    assert searched_subnet(tmp_path / "absent", 0.421286) == tmp_path / "absent/budget-0.421286/best.yml"
