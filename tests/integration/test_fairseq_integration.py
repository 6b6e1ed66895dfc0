"""Integration: the plugin under real fairseq-train / fairseq-generate on a generated toy corpus."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import SPACE_FILE, TRAIN_FLAGS, run
from fairseq_shiftadd.space import SearchSpace, write_subnet


def hypotheses(output: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^H-(\d+)\t\S+\t(.*)$", output, re.M)}


def test_plain_fairseq_transformer_checkpoint_generates_under_weights_only_loading(toy_data: Path, tmp_path: Path) -> None:
    run(["fairseq-train", str(toy_data), "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
         "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
         "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
         "--save-dir", str(tmp_path), "--max-update", "5", *TRAIN_FLAGS])
    generate = ["fairseq-generate", str(toy_data), "--path", str(tmp_path / "checkpoint_last.pt"), "--beam", "2", "--batch-size", "32", "--required-batch-size-multiple", "1", "--cpu"]
    without_plugin = run(generate, check=False)
    assert without_plugin.returncode != 0 and "weights_only" in without_plugin.stderr  # what the plugin fixes
    out = run([*generate, "--user-dir", "fairseq_shiftadd"])
    assert len(hypotheses(out.stdout)) == 60


def test_supernet_trains_logs_subnet_losses_and_resumes(supernet_dir: Path) -> None:
    log = (supernet_dir / "train.log").read_text()
    assert "loss_random" in log and "loss_largest" in log and "loss_smallest" in log and "loss_hybrid" in log
    train = [float(x) for x in re.findall(r"train_inner \| .*? loss=([\d.]+)", log)]
    assert train[-1] < train[0] - 1.0, train
    resumed = (supernet_dir / "resume.log").read_text()
    assert "Loaded checkpoint" in resumed and "num_updates 45" in resumed.replace("=", " ")


def test_in_place_distillation_changes_the_sandwich_students_loss_not_the_largest(toy_data: Path, tmp_path: Path) -> None:
    """Update 1 of two sandwich runs from the same seed: the largest subnet's loss is the same with and without
    ``--teacher largest`` (it learns from the data alone), the smallest's is not (it learns from the largest)."""
    def first_update(name: str, *criterion: str) -> dict[str, float]:
        out = run(["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--task", "shiftadd_supernet_translation",
                   "--arch", "shiftadd_supernet_tiny", "--search-space", SPACE_FILE, "--sandwich", "--save-dir", str(tmp_path / name),
                   "--max-update", "1", *TRAIN_FLAGS, "--log-interval", "1", *criterion])
        line = next(line for line in (out.stdout + out.stderr).splitlines() if "train_inner" in line or "| train |" in line)
        return {key: float(re.search(rf"{key}[= ]([\d.]+)", line).group(1)) for key in ("loss_largest", "loss_smallest")}

    plain = first_update("plain")
    in_place = first_update("in-place", "--criterion", "word_distillation", "--teacher", "largest")
    assert in_place["loss_largest"] == plain["loss_largest"]
    assert in_place["loss_smallest"] != plain["loss_smallest"]


def test_word_distillation_from_a_trained_fairseq_transformer_teacher(toy_data: Path, tmp_path: Path) -> None:
    """``--teacher CKPT`` loads a checkpoint fairseq-train wrote (weights-only) and changes the student's first update."""
    run(["fairseq-train", str(toy_data), "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
         "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
         "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
         "--save-dir", str(tmp_path / "teacher"), "--max-update", "5", *TRAIN_FLAGS])
    subnet_file = tmp_path / "subnet.yml"
    write_subnet(SearchSpace.from_file(SPACE_FILE).representative_hybrid(), subnet_file)

    def first_update(name: str, *criterion: str) -> float:
        out = run(["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer",
                   "--subnet", str(subnet_file), "--save-dir", str(tmp_path / name), "--max-update", "1", *TRAIN_FLAGS,
                   "--log-interval", "1", *criterion])
        line = next(line for line in (out.stdout + out.stderr).splitlines() if "train_inner" in line or "| train |" in line)
        return float(re.search(r" loss[= ]([\d.]+)", line).group(1))

    distilled = first_update("distilled", "--criterion", "word_distillation", "--teacher", str(tmp_path / "teacher" / "checkpoint_last.pt"))
    assert distilled != first_update("plain")


def test_generate_with_a_subnet_and_with_its_exported_standalone_model(supernet_dir: Path, toy_data: Path, tmp_path: Path) -> None:
    space = SearchSpace.from_file(SPACE_FILE)
    subnet_file = tmp_path / "hybrid.yml"
    write_subnet(space.representative_hybrid(), subnet_file)
    common = ["--beam", "4", "--batch-size", "32", "--required-batch-size-multiple", "1", "--cpu", "--gen-subset", "valid"]
    supernet_out = run(["fairseq-generate", str(toy_data), "--user-dir", "fairseq_shiftadd", "--path",
                        str(supernet_dir / "checkpoint_best.pt"), "--task", "shiftadd_supernet_translation",
                        "--subnet", str(subnet_file), "--scoring", "sacrebleu", *common])
    assert "BLEU" in supernet_out.stdout
    exported = tmp_path / "subnet.pt"
    run(["shiftadd-export-subnet", str(supernet_dir / "checkpoint_best.pt"), str(subnet_file), str(exported)])
    standalone_out = run(["fairseq-generate", str(toy_data), "--user-dir", "fairseq_shiftadd", "--path", str(exported), *common])
    assert hypotheses(standalone_out.stdout) == hypotheses(supernet_out.stdout)
    assert exported.stat().st_size < (supernet_dir / "checkpoint_best.pt").stat().st_size


def test_fine_tune_a_subnet_from_its_inherited_weights(toy_data: Path, tmp_path: Path) -> None:
    """shiftadd-export-subnet from a heterogeneous supernet (the paper's sharing), then fairseq-train
    --finetune-from-model with the standalone model's default options (issue 20's fine-tuning lever): the export
    converts the shared weights to one weight per operator, the standalone model starts from exactly them (lr 0: the
    saved weights equal the exported ones, tensor by tensor), and a rerun resumes from its own checkpoint_last.pt,
    not from the inherited weights again. --keep-weight-sharing keeps the supernet's layout and says how to train it."""
    import torch

    supernet = tmp_path / "supernet" / "checkpoint_last.pt"
    run(["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--task", "shiftadd_supernet_translation",
         "--arch", "shiftadd_supernet_tiny", "--search-space", SPACE_FILE, "--weight-sharing", "heterogeneous",
         "--save-dir", str(supernet.parent), "--max-update", "3", *TRAIN_FLAGS])
    subnet_file = tmp_path / "hybrid.yml"
    write_subnet(SearchSpace.from_file(SPACE_FILE).representative_hybrid(), subnet_file)
    kept = run(["shiftadd-export-subnet", str(supernet), str(subnet_file), str(tmp_path / "kept.pt"), "--keep-weight-sharing"])
    assert "--weight-sharing heterogeneous --finetune-from-model" in kept.stdout  # the hint for the fine-tuning command
    exported = tmp_path / "inherited.pt"
    out = run(["shiftadd-export-subnet", str(supernet), str(subnet_file), str(exported)])
    assert "--weight-sharing" not in out.stdout
    train = ["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer", "--subnet",
             str(subnet_file), "--save-dir", str(tmp_path / "tuned"), *TRAIN_FLAGS, "--finetune-from-model", str(exported),
             "--lr", "0", "--lr-scheduler", "fixed"]
    run([*train, "--max-update", "2"])
    inherited = torch.load(exported, weights_only=False)["model"]
    tuned = torch.load(tmp_path / "tuned" / "checkpoint_last.pt", weights_only=False)["model"]
    assert tuned.keys() == inherited.keys()
    assert all(torch.equal(tuned[name], inherited[name]) for name in inherited)
    resumed = run([*train, "--max-update", "3"])
    assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ 2 updates\)", resumed.stdout + resumed.stderr)


def test_retrain_a_subnet_from_scratch_and_generate(toy_data: Path, tmp_path: Path) -> None:
    subnet_file = tmp_path / "subnet.yml"
    write_subnet(SearchSpace.from_file(SPACE_FILE).representative_hybrid(), subnet_file)
    run(["fairseq-train", str(toy_data), "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer",
         "--subnet", str(subnet_file), "--save-dir", str(tmp_path), "--max-update", "15", *TRAIN_FLAGS])
    out = run(["fairseq-generate", str(toy_data), "--user-dir", "fairseq_shiftadd", "--path", str(tmp_path / "checkpoint_best.pt"),
               "--beam", "4", "--batch-size", "32", "--required-batch-size-multiple", "1", "--cpu"])
    assert len(hypotheses(out.stdout)) == 60


def test_bad_subnet_at_generation_is_one_clear_line(supernet_dir: Path, toy_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    text = SearchSpace.from_file(SPACE_FILE).largest().to_yaml().replace("encoder-embed-dim-subtransformer: 64", "encoder-embed-dim-subtransformer: 48")
    bad.write_text(text)
    proc = run(["fairseq-generate", str(toy_data), "--user-dir", "fairseq_shiftadd", "--path", str(supernet_dir / "checkpoint_best.pt"),
                "--task", "shiftadd_supernet_translation", "--subnet", str(bad), "--cpu"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"fairseq-generate: error: {bad}: encoder-embed-dim-subtransformer = 48 is not in the search space tiny (allowed: 64, 32)"
    )
