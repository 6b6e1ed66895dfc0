"""Integration: 8-bit fixed point under real fairseq-train / fairseq-generate / shiftadd-export-subnet / shiftadd-cost."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from conftest import SPACE_FILE, TRAIN_FLAGS, run
from fairseq_shiftadd.space import SearchSpace, write_subnet
from test_fairseq_integration import hypotheses

# Every operator of the paper's space in one small subnet: attention, shift, add, shiftadd, conv.
HYBRID = {
    "encoder_block_types": ["attn+add", "shiftadd"], "decoder_block_types": ["attn+shiftadd", "attn+conv"],
    "encoder_ffn_types": ["add", "shift"], "decoder_ffn_types": ["shift", "mult"],
}


def hybrid_subnet(path: Path) -> Path:
    subnet = SearchSpace.from_file(SPACE_FILE).representative_hybrid()
    write_subnet(dataclasses.replace(subnet, **{key: tuple(value) for key, value in HYBRID.items()}), path)
    return path


def generate(data: Path, checkpoint: Path, *extra: str) -> list[str]:
    out = run(["fairseq-generate", str(data), "--user-dir", "fairseq_shiftadd", "--path", str(checkpoint), "--beam", "2",
               "--batch-size", "32", "--required-batch-size-multiple", "1", "--cpu", "--gen-subset", "valid", *extra])
    return hypotheses(out.stdout)


def as_float_checkpoint(quantised: Path, out: Path) -> Path:
    """The same weights as a float model: quantisation off, running input ranges dropped."""
    state = torch.load(quantised, weights_only=False)
    state["cfg"]["model"]["quant_bits"] = None
    state["model"] = {k: v for k, v in state["model"].items() if not k.endswith("running_range")}
    torch.save(state, out)
    return out


def test_float_subnet_fine_tuned_to_8_bits_generates_what_the_integer_path_computes(toy_data: Path, tmp_path: Path) -> None:
    subnet = hybrid_subnet(tmp_path / "hybrid.yml")
    common = ["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer", "--subnet", str(subnet)]
    run([*common, "--save-dir", str(tmp_path / "float"), "--max-update", "12", *TRAIN_FLAGS])
    run([*common, "--save-dir", str(tmp_path / "q8"), "--max-update", "18", "--quant-bits", "8", "--reset-optimizer",
         "--restore-file", str(tmp_path / "float" / "checkpoint_last.pt"), *TRAIN_FLAGS])
    checkpoint = tmp_path / "q8" / "checkpoint_last.pt"
    assert torch.load(checkpoint, weights_only=False)["cfg"]["model"]["quant_bits"] == 8
    quantised = generate(toy_data, checkpoint)
    assert len(quantised) == 60
    assert generate(toy_data, checkpoint, "--model-overrides", "{'quant_integer': True}") == quantised
    float_eval = as_float_checkpoint(checkpoint, tmp_path / "float-eval.pt")
    assert generate(toy_data, float_eval) != quantised
    proc = run(["fairseq-generate", str(toy_data), "--user-dir", "fairseq_shiftadd", "--path", str(float_eval), "--cpu",
                "--model-overrides", "{'quant_integer': True}"], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "fairseq-generate: error: --quant-integer needs a model trained with --quant-bits N; this model is float"
    )
    cost = json.loads(run(["shiftadd-cost", str(checkpoint), "--json"]).stdout)
    assert cost["total"]["energy_mj"] == json.loads(run(["shiftadd-cost", str(subnet), "--bits", "8", "--json"]).stdout)["total"]["energy_mj"]

    # Calibration only (docs/quantization.md): --lr 0 moves no weight; the batches set the running input ranges that
    # fine-tuning sets (the quantisers of branches this subnet does not use stay 0 in both).
    run([*common, "--save-dir", str(tmp_path / "calibrated"), "--max-update", "3", "--quant-bits", "8", "--finetune-from-model",
         str(tmp_path / "float" / "checkpoint_last.pt"), *TRAIN_FLAGS, "--lr", "0", "--lr-scheduler", "fixed"])
    before = torch.load(tmp_path / "float" / "checkpoint_last.pt", weights_only=False)["model"]
    after = torch.load(tmp_path / "calibrated" / "checkpoint_last.pt", weights_only=False)["model"]
    ranges = {k: v for k, v in after.items() if k.endswith("running_range")}
    fine_tuned = torch.load(checkpoint, weights_only=False)["model"]
    assert any(float(v) > 0 for v in ranges.values())
    assert {k: float(v) > 0 for k, v in ranges.items()} == {k: float(fine_tuned[k]) > 0 for k in ranges}
    assert before.keys() == after.keys() - ranges.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_supernet_trains_in_8_bits_and_exports_an_8_bit_subnet(toy_data: Path, tmp_path: Path) -> None:
    run(["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--task", "shiftadd_supernet_translation",
         "--arch", "shiftadd_supernet_tiny", "--search-space", SPACE_FILE, "--save-dir", str(tmp_path), "--max-update", "8",
         "--quant-bits", "8", "--quant-grad-bits", "8", *TRAIN_FLAGS])
    state = torch.load(tmp_path / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["quant_bits"] == 8 and state["cfg"]["model"]["quant_grad_bits"] == 8
    assert any(k.endswith("running_range") and float(v) > 0 for k, v in state["model"].items())
    exported = tmp_path / "subnet.pt"
    run(["shiftadd-export-subnet", str(tmp_path / "checkpoint_last.pt"), str(hybrid_subnet(tmp_path / "hybrid.yml")), str(exported)])
    assert torch.load(exported, weights_only=False)["cfg"]["model"]["quant_bits"] == 8
    assert len(generate(toy_data, exported, "--model-overrides", "{'quant_integer': True}")) == 60


def test_bad_quantisation_values_are_one_clear_line(toy_data: Path, tmp_path: Path) -> None:
    proc = run(["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer",
                "--subnet", "configs/subnets/multi30k-baseline.yml", "--quant-bits", "33", "--save-dir", str(tmp_path), *TRAIN_FLAGS],
               check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "fairseq-train: error: --quant-bits must be an integer in [2, 32], got 33"
