"""A search killed with SIGKILL mid-run resumes to exactly the result of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
sys.path.insert(0, str(UNIT))

from test_evolution import CountingFitness, search  # noqa: E402  (the unit tests' synthetic search)

from fairseq_shiftadd.search.evolution import EvolutionConfig  # noqa: E402


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    out = tmp_path / "killed"
    code = f"import sys; sys.path.insert(0, {str(UNIT)!r}); import test_evolution as t; t.run_for_resume_test({str(out)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    state = out / "state.json"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["iteration"] >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["iteration"]
    assert 3 <= killed_at < 12
    assert not (out / "best.yml").exists()

    config = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, iterations=12, seed=3)
    fitness = CountingFitness()
    _, resumed = search(out, config=config, fitness=fitness)
    _, straight = search(tmp_path / "straight", config=config)
    assert resumed.best == straight.best
    assert resumed.evaluated == straight.evaluated
    assert (out / "evaluated.csv").read_text() == (tmp_path / "straight/evaluated.csv").read_text()
    assert len(fitness.seen) < len(straight.evaluated)
