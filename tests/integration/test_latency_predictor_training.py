"""The latency predictor trained by a real fairseq-train run on a known latency function."""
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import kendalltau

from fairseq_shiftadd.hardware.latency_dataset import LatencyRecord, append_latency_record
from fairseq_shiftadd.hardware.predictor import LatencyPredictor
from fairseq_shiftadd.space import SearchSpace, SpaceError, Subnet

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "spaces" / "tiny.yml"


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_file(TINY)


_BLOCK_MS = {"attn": 1.0, "conv": 0.4, "add": 0.6, "shiftadd": 0.5, "attn+conv": 1.3, "attn+add": 1.5, "attn+shiftadd": 1.4}
_FFN_MS = {"mult": 0.8, "shift": 0.5, "add": 0.6}


def _synthetic_latency(subnet: Subnet) -> float:
    """A known cost model: per-layer block and FFN costs, decoder layers run 3x (incremental steps)."""
    total = 2.0 + subnet.encoder_embed_dim / 32 + subnet.decoder_embed_dim / 16
    for side, weight in (("encoder", 1.0), ("decoder", 3.0)):
        blocks = getattr(subnet, f"{side}_block_types")
        ffns = getattr(subnet, f"{side}_ffn_types")
        dims = getattr(subnet, f"{side}_ffn_embed_dim")
        total += weight * sum(_BLOCK_MS[b] + _FFN_MS[f] * d / 64 for b, f, d in zip(blocks, ffns, dims))
    return total


def test_fairseq_train_learns_a_known_latency_function(tmp_path, space):
    data = tmp_path / "LAT.jsonl"
    rng = random.Random(0)
    for _ in range(400):
        subnet = space.sample(rng)
        append_latency_record(data, LatencyRecord(subnet, _synthetic_latency(subnet), "cpu", torch.__version__, 1))
    save_dir = tmp_path / "ckpt"
    command = [
        str(Path(sys.executable).parent / "fairseq-train"), str(data),
        "--user-dir", str(ROOT / "fairseq_shiftadd"), "--task", "latency_prediction",
        "--search-space", str(TINY), "--arch", "latency_mlp", "--hidden-dims", "128,128",
        "--criterion", "latency_predictor", "--optimizer", "adam", "--lr", "3e-3",
        "--batch-size", "32", "--max-epoch", "25", "--save-dir", str(save_dir), "--cpu", "--seed", "1",
        "--no-epoch-checkpoints", "--no-save-optimizer-state", "--save-interval", "25", "--log-format", "simple",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    valid_lines = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "valid on 'valid'" in line]
    assert valid_lines and "kendall_tau" in valid_lines[-1]

    predictor = LatencyPredictor.from_checkpoint(save_dir / "checkpoint_last.pt")
    unseen = [space.sample(random.Random(f"unseen{i}")) for i in range(300)]
    truth = np.array([_synthetic_latency(s) for s in unseen])
    predicted = predictor.predict(unseen)
    mape = float(np.mean(np.abs(predicted - truth) / truth) * 100)
    assert predicted.shape == (300,) and mape < 3.0, mape
    many = [space.sample(rng) for _ in range(2000)]
    start = time.perf_counter()
    predictor.predict(many)
    assert time.perf_counter() - start < 2.0  # thousands of subnets per second (measured: ~35k/s)
    assert kendalltau(predicted, truth).statistic > 0.9

    assert LatencyPredictor.from_checkpoint(save_dir / "checkpoint_last.pt", space=space).predict(unseen[:3]) == pytest.approx(predicted[:3])
    raw = yaml.safe_load(TINY.read_text())
    raw["encoder"]["embed-dim"] = [64, 32, 16]
    with pytest.raises(SpaceError, match="trained for another search space"):
        LatencyPredictor.from_checkpoint(save_dir / "checkpoint_last.pt", space=SearchSpace.from_dict(raw, name_hint="wider"))
