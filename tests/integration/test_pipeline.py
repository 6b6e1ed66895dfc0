"""The ShiftAddNAS pipeline with the installed commands: supernet -> search -> cost check -> retrain -> score."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from conftest import SPACE_FILE, run
from fairseq_shiftadd.space import SearchSpace, write_subnet

SEARCH_FLAGS = ["--population", "6", "--parents", "2", "--mutations", "2", "--crossovers", "2", "--iterations", "2",
                "--mutation-prob", "0.3", "--seed", "1", "--no-progress"]


def energy(subnet_file: Path) -> float:
    report = json.loads(run(["shiftadd-cost", str(subnet_file), "--search-space", SPACE_FILE, "--json"]).stdout)
    return report["total"]["energy_mj"]


def test_search_under_an_energy_budget_then_retrain_and_score(supernet_dir: Path, toy_data: Path, tmp_path: Path) -> None:
    space = SearchSpace.from_file(SPACE_FILE)
    write_subnet(space.largest(), tmp_path / "largest.yml")
    budget = 0.5 * energy(tmp_path / "largest.yml")
    out = tmp_path / "search"
    run(["shiftadd-search", str(toy_data), "--path", str(supernet_dir / "checkpoint_best.pt"), "--search-space", SPACE_FILE,
         "--energy-mj", str(budget), "--out", str(out), *SEARCH_FLAGS])
    assert {"best.yml", "evaluated.csv", "pareto.png", "state.json"} <= {p.name for p in out.iterdir()}
    assert energy(out / "best.yml") <= budget  # checked independently by shiftadd-cost
    with open(out / "evaluated.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 6 and all(float(row["energy_mj"]) <= budget for row in rows)
    assert all(0 < float(row["loss"]) < 20 for row in rows)  # validation losses in bits per token

    retrained = tmp_path / "retrain"  # a search's best.yml fine-tunes from the supernet the search used
    retrain = ["bash", "scripts/retrain.sh", str(out / "best.yml"), str(toy_data), str(retrained),
               "--warmup-updates", "2", "--max-tokens", "1500", "--cpu", "--num-workers", "0"]
    first = run([*retrain, "--max-update", "12"])
    supernet = (supernet_dir / "checkpoint_best.pt").resolve()
    assert f"inherited weights: {retrained / 'inherited.pt'} (the subnet of {supernet};" in first.stdout
    assert re.search(r"loading pretrained model from \S+inherited\.pt", first.stdout + first.stderr)
    scored = run(["bash", "scripts/score.sh", str(retrained / "checkpoint_best.pt"), str(toy_data), "valid"])
    summary = json.loads(scored.stdout.strip().splitlines()[-1])
    assert {"bleu_tok", "sacrebleu", "signature", "energy_mj", "params", "subset"} <= set(summary)
    assert abs(summary["energy_mj"] - energy(out / "best.yml")) < 1e-12
    assert "60 sentences" in scored.stdout  # every validation sentence is scored
    resumed = run([*retrain, "--max-update", "13"])  # a rerun extends its own run
    assert "inherited weights" not in resumed.stdout
    assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ 12 updates\)", resumed.stdout + resumed.stderr)

    scratch = tmp_path / "from-scratch"  # the paper's plain recipe, one flag away
    plain = run(["bash", "scripts/retrain.sh", str(out / "best.yml"), str(toy_data), str(scratch), "--from-scratch",
                 "--max-update", "2", "--warmup-updates", "1", "--max-tokens", "1500", "--cpu", "--num-workers", "0"])
    assert "loading pretrained model" not in plain.stdout + plain.stderr and not (scratch / "inherited.pt").exists()
    assert (scratch / "checkpoint_best.pt").is_file()


def test_search_budgets_nothing_satisfies_or_everything_satisfies(supernet_dir: Path, toy_data: Path, tmp_path: Path) -> None:
    base = ["shiftadd-search", str(toy_data), "--path", str(supernet_dir / "checkpoint_best.pt"), "--search-space", SPACE_FILE]
    impossible = run([*base, "--energy-mj", "1e-9", "--out", str(tmp_path / "none"), *SEARCH_FLAGS], check=False)
    assert impossible.returncode != 0
    assert impossible.stderr.strip().splitlines()[-1].startswith("shiftadd-search: error:")
    assert "1e-09" in impossible.stderr or "budget" in impossible.stderr
    run([*base, "--energy-mj", "1e9", "--out", str(tmp_path / "all"), *SEARCH_FLAGS])
    SearchSpace.from_file(SPACE_FILE).load_subnet(tmp_path / "all" / "best.yml")


def test_retrain_refuses_to_select_on_test(toy_data: Path, tmp_path: Path) -> None:
    write_subnet(SearchSpace.from_file(SPACE_FILE).smallest(), tmp_path / "s.yml")
    proc = run(["bash", "scripts/retrain.sh", str(tmp_path / "s.yml"), str(toy_data), str(tmp_path / "out"),
                "--valid-subset", "valid,test"], check=False)
    assert proc.returncode != 0 and "test" in proc.stderr.strip().splitlines()[-1]
