"""Every command line of the README's ``bash`` blocks, run as printed in a fresh shell after the documented
set-up (``source .venv/bin/activate``); the long ones are listed with the reason they are not run here."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

VENV = Path(sys.executable).parent.parent  # the venv `make` creates as .venv/ (here: the one running the tests)

# start of a command line -> why it is not run by the default suite
NOT_RUN = {
    "make demo": "10 minutes; bench/demo_determinism.py and the slow demo test run the demo",
    "make test": "the test suite itself",
    "bash data-prep/prepare-wmt14en2de.sh --out": "downloads WMT'14 (GBs)",
    "DATA=": "WMT'14 workflow: needs the prepared data and GPUs",
    "fairseq-train $DATA": "WMT'14 workflow: needs the prepared data and GPUs",
    "torchrun --standalone --nproc_per_node 8 $(which fairseq-train) $DATA":
        "WMT'14 workflow: needs the prepared data and 8 GPUs (test_distributed_training.py runs it on 2 CPU processes)",
    "shiftadd-measure-latency --search-space configs/spaces/wmt14.en-de.yml": "WMT'14 workflow: 2000 subnets on a GPU",
    "fairseq-train lat.jsonl": "WMT'14 workflow: needs its latency dataset",
    "shiftadd-search $DATA": "WMT'14 workflow: needs the trained supernet",
    "shiftadd-retrain search/40mJ/best.yml": "WMT'14 workflow: needs the search's output",
    "shiftadd-score checkpoints/retrain-40mJ": "WMT'14 workflow: needs the retrained model",
    "source .venv/bin/activate": "the set-up every command runs after",
}


def readme_command_lines() -> list[str]:
    """The README's bash command lines: continuations joined, comments and blank lines dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def not_run_reason(line: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if line.startswith(start)), None)


def test_the_readme_says_to_activate_the_venv_right_after_the_setup_commands():
    text = (REPO / "README.md").read_text()
    assert text.index("make test") < text.index("source .venv/bin/activate") < text.index("shiftadd-cost ")


CHEAP = [line for line in readme_command_lines() if not_run_reason(line) is None]


def test_every_readme_command_is_run_or_says_why_not():
    lines = readme_command_lines()
    assert len(CHEAP) >= 3 and len(lines) > len(CHEAP)


@pytest.mark.parametrize("line", CHEAP)
def test_readme_command_runs_as_printed_in_a_fresh_shell(line, tmp_path):
    # a fresh shell whose PATH lacks the venv: only the documented `source` puts it there
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p).resolve() != (VENV / "bin").resolve())
    env = {"PATH": path, "HOME": os.environ.get("HOME", str(tmp_path)), "PYTHONPATH": str(REPO),
           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))}
    script = f"source {VENV}/bin/activate && {line}"
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr and "tensorboardX" not in proc.stderr
