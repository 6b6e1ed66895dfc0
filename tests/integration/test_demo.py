"""`make demo` (shiftadd-demo): stage bookkeeping, failure reporting, and the whole pipeline end to end."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run
from fairseq_shiftadd.cli import demo as demo_cli
from fairseq_shiftadd.cli.demo import main
from fairseq_shiftadd.demo.report import table_rows as _table_rows
from fairseq_shiftadd.demo.runner import QUICK, Demo, Stage, StageFailed
from fairseq_shiftadd.demo.stages import stage_supernet


def _stages(monkeypatch, *stages: Stage) -> None:
    monkeypatch.setattr(demo_cli, "STAGES", list(stages))


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_failing_command_is_one_line_naming_stage_and_log_and_leaves_no_stamp(tmp_path, monkeypatch, capsys):
    def ok(demo: Demo) -> None:
        demo.run(_python("print('fine')"))

    def boom(demo: Demo) -> None:
        demo.run(_python("import sys; print('details only in the log'); print('bad thing happened'); sys.exit(3)"))

    _stages(monkeypatch, Stage("first", "works", ok), Stage("second", "fails", boom))
    assert main(["--out", str(tmp_path), "--quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("demo: stage 2 (second) failed: ")
    assert "exited with 3: bad thing happened" in err[0] and err[0].endswith(f"full log: {tmp_path / 'logs' / 'second.log'}")
    log = (tmp_path / "logs" / "second.log").read_text()
    assert "details only in the log" in log and log.startswith("$ ")  # the command heads its log
    assert (tmp_path / ".stages" / "01-first").is_file() and not (tmp_path / ".stages" / "02-second").exists()


def test_an_exception_inside_a_stage_keeps_its_traceback_in_the_log(tmp_path, monkeypatch, capsys):
    def broken(demo: Demo) -> None:
        raise ValueError("corpus size must be positive\nsecond line")

    _stages(monkeypatch, Stage("data", "broken", broken))
    assert main(["--out", str(tmp_path), "--quick"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"demo: stage 1 (data) failed: corpus size must be positive; full log: {tmp_path / 'logs' / 'data.log'}"
    )
    assert "Traceback" in (tmp_path / "logs" / "data.log").read_text()


def test_finished_stages_are_skipped_and_their_commands_kept(tmp_path, monkeypatch, capsys):
    calls: list[str] = []

    def stage(name: str):
        def body(demo: Demo) -> None:
            calls.append(name)
            demo.run(_python(f"print('{name} 50%|#####')"))
        return Stage(name, name, body)

    _stages(monkeypatch, stage("a"), stage("b"))
    assert main(["--out", str(tmp_path), "--quick"]) == 0
    first = capsys.readouterr().out
    assert calls == ["a", "b"]
    assert "a 50%|#####" in first  # progress lines are echoed
    assert main(["--out", str(tmp_path), "--quick"]) == 0
    second = capsys.readouterr().out
    assert calls == ["a", "b"]  # nothing ran again
    assert second.count("done, skipped") == 2
    stamp = (tmp_path / ".stages" / "01-a").read_text()  # the stamp lists the stage's commands, shell-quoted
    assert shlex.split(stamp) == ["OMP_NUM_THREADS=1", *_python("print('a 50%|#####')")]


def test_console_shows_progress_lines_and_the_log_keeps_everything(tmp_path):
    demo = Demo(tmp_path, QUICK, seed=1)
    demo.log = tmp_path / "x.log"
    lines = [
        "2026-01-01 10:00:00 | INFO | fairseq_cli.train | {'config': 'a very long dump'}",
        "2026-01-01 10:00:01 | INFO | train_inner | epoch 001:     10 / 17 loss=7.4",
        "2026-01-01 10:00:02 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 5.9",
        "model summary line",
    ]
    code = "import sys; sys.stdout.write(" + repr("\n".join(lines) + "\n") + ")"
    output = demo.run(_python(code))
    assert output.splitlines() == lines
    assert demo.log.read_text().splitlines()[1:] == lines


def test_console_echo_filters_to_progress(tmp_path, capsys):
    demo = Demo(tmp_path, QUICK, seed=1)
    demo.log = tmp_path / "x.log"
    text = "noise\n2026-01-01 10:00:01 | INFO | train_inner | epoch 001: loss=7.4\nsearch: 100%|##| 2/2\rmore noise\n"
    demo.run(_python(f"import sys; sys.stdout.write({text!r})"))
    shown = [line.strip() for line in capsys.readouterr().out.splitlines() if not line.startswith("  $ ")]
    assert shown == ["epoch 001: loss=7.4", "search: 100%|##| 2/2"]


def test_an_output_folder_of_other_settings_is_refused(tmp_path, monkeypatch, capsys):
    _stages(monkeypatch)
    assert main(["--out", str(tmp_path), "--quick", "--seed", "1"]) == 0
    assert main(["--out", str(tmp_path), "--quick", "--seed", "2"]) == 1
    assert "holds a demo run with other settings" in capsys.readouterr().err


def test_stage_failed_is_raised_for_a_missing_output(tmp_path):
    demo = Demo(tmp_path, QUICK, seed=1)
    demo.log = tmp_path / "supernet.log"
    demo.supernet.parent.mkdir(parents=True)
    commands: list[list[str]] = []
    demo.run = commands.append  # fairseq-train "succeeds" without writing a checkpoint
    with pytest.raises(StageFailed, match="without writing"):
        stage_supernet(demo)
    assert commands[0][:2] == ["fairseq-train", str(demo.data)] and "--sandwich" in commands[0]


# ------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_demo_end_to_end_then_a_rerun_skips_every_stage(tmp_path):
    out = tmp_path / "demo-out"
    command = [sys.executable, "-m", "fairseq_shiftadd.cli.demo", "--quick", "--out", str(out)]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for index, name in enumerate(["data", "supernet", "latency", "predictor", "search", "retrain", "score", "report"], 1):
        assert f"[{index}/8] {name}" in first.stdout
        assert (out / ".stages" / f"{index:02d}-{name}").is_file() and (out / "logs" / f"{name}.log").is_file()
    assert "$ OMP_NUM_THREADS=1 fairseq-train " in first.stdout and "=1 shiftadd-search " in first.stdout  # real commands

    report = (out / "report.md").read_text()
    rows = _table_rows(report)
    assert set(rows) == {"searched hybrid", "all-multiplication baseline"}
    for model, cells in rows.items():
        bleu, _, energy32, energy8, _, accel_latency, params, latency, ratio, predicted = cells
        assert 0 <= float(bleu) <= 100 and float(latency) > 0 and float(predicted) > 0 and params.endswith(" K")
        assert float(accel_latency) > 0 and ratio.endswith("x")
        assert float(energy8) < float(energy32)  # 8-bit fixed point ops cost less than 32-bit float
    # the searched subnet meets the energy budget: half the baseline's energy, counted independently
    cost = [json.loads(run(["shiftadd-cost", str(path), "--json"]).stdout)["total"]["energy_mj"]
            for path in (out / "search" / "best.yml", out / "baseline.yml")]
    assert cost[0] <= 0.5 * cost[1] + 1e-9
    assert float(rows["searched hybrid"][2]) == pytest.approx(cost[0], abs=1e-4)
    assert (out / "search" / "best.yml").read_text().strip() in report
    assert "![" in report and "(pareto.png)" in report and (out / "pareto.png").stat().st_size > 1000
    scores = json.loads((out / "scores" / "searched.json").read_text())
    assert re.search(rf"\| searched hybrid \| {scores['sacrebleu']:.2f} \|", report)

    start = time.monotonic()
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("done, skipped") == 8
    assert time.monotonic() - start < 30
