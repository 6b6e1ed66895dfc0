"""Hardening, in-process: weights-only loading on every path, atomic checkpoint writes and a resume past a
broken ``checkpoint_last.pt``, the space stored in checkpoints, bad latency/state files, the KL log."""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from fairseq import checkpoint_utils, metrics
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from omegaconf import OmegaConf

from fairseq_shiftadd.checkpoint_io import AtomicCopyPathManager, readable_fallback, resume_from_readable, save_checkpoint_atomically
from fairseq_shiftadd.checkpoint_compat import load_weights_only
from fairseq_shiftadd.cli import average, export_subnet
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.errors import InvalidInput
from fairseq_shiftadd.hardware.latency_dataset import LatencyDataError, LatencyRecord, append_latency_record, read_latency_records
from fairseq_shiftadd.hardware.predictor import LatencyPredictor
from fairseq_shiftadd.models.shiftadd_supernet import ShiftAddSupernet
from fairseq_shiftadd.search.evolution import Constraint, Evolution, EvolutionConfig, ResumeError
from fairseq_shiftadd.space import SearchSpace, SpaceError
from fairseq_shiftadd.tasks.shiftadd_supernet_translation import ShiftAddSupernetTranslationConfig, ShiftAddSupernetTranslationTask

TINY = "configs/spaces/tiny.yml"
SPACE = SearchSpace.from_file(TINY)


# ------------------------------------------------------------------ weights-only loading
class Payload:
    """Unpickling this runs ``os.system(command)``: what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def malicious(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A checkpoint whose unpickling would create ``marker``; torch's opt-out variable is set."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "cfg": None, "payload": Payload(f"touch {marker}")}, path)
    return path, marker


def load_paths(path: Path) -> dict:
    return {
        "load_weights_only": lambda: load_weights_only(path),
        "fairseq load_checkpoint_to_cpu (--path, --restore-file)": lambda: checkpoint_utils.load_checkpoint_to_cpu(str(path)),
        "fairseq load_model_ensemble": lambda: checkpoint_utils.load_model_ensemble([str(path)]),
        "LatencyPredictor.from_checkpoint": lambda: LatencyPredictor.from_checkpoint(path),
        "averaging": lambda: average.load_checkpoint(path),
    }


@pytest.mark.parametrize("name", list(load_paths(Path("x"))))
def test_no_load_path_runs_a_pickle_even_with_the_opt_out_variable(malicious, name) -> None:
    path, marker = malicious
    with pytest.raises(InvalidInput) as error:
        load_paths(path)[name]()
    message = str(error.value)
    assert message.splitlines() == [message] and str(path) in message and "posix.system" in message
    assert not marker.exists()


def test_export_subnet_refuses_in_one_line(malicious, tmp_path, capsys, monkeypatch) -> None:
    path, marker = malicious
    monkeypatch.setattr(sys, "argv", ["shiftadd-export-subnet"])
    assert export_subnet.main([str(path), "configs/subnets/multi30k-baseline.yml", str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused to unpickle posix.system" in err[0] and not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 half a zip"])
def test_an_empty_or_truncated_checkpoint_is_one_line(tmp_path, content) -> None:
    path = tmp_path / "checkpoint_last.pt"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=f"checkpoint {path} is empty or truncated"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))


# ------------------------------------------------------------------ atomic writes, resume
def test_fairseq_writes_and_copies_checkpoints_through_the_atomic_path() -> None:
    assert checkpoint_utils.PathManager is AtomicCopyPathManager
    assert checkpoint_utils.torch_persistent_save is save_checkpoint_atomically


def test_a_save_or_copy_killed_midway_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch) -> None:
    last, best = tmp_path / "checkpoint_last.pt", tmp_path / "checkpoint_best.pt"
    save_checkpoint_atomically({"step": 1}, str(last))
    save_checkpoint_atomically({"step": 2}, str(best))

    def copy_half_then_die(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise KeyboardInterrupt  # the kill arrives mid-copy

    monkeypatch.setattr(shutil, "copyfile", copy_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_utils.PathManager.copy(str(best), str(last), overwrite=True)
    assert load_weights_only(last) == {"step": 1}

    def save_half_then_die(obj, f):
        Path(f).write_bytes(b"PK\x03\x04")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_utils.torch_persistent_save({"step": 3}, str(last))
    assert load_weights_only(last) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_best.pt", "checkpoint_last.pt"]  # no temp left


def test_a_resume_past_a_broken_last_checkpoint_takes_the_newest_readable_one(tmp_path, caplog) -> None:
    for step, name in enumerate(["checkpoint1.pt", "checkpoint_best.pt", "checkpoint2.pt"]):
        save_checkpoint_atomically({"step": step}, str(tmp_path / name))
        os.utime(tmp_path / name, (1000 + step, 1000 + step))
    (tmp_path / "checkpoint2.pt").write_bytes(b"PK\x03\x04 truncated")  # newest, but broken
    os.utime(tmp_path / "checkpoint2.pt", (2000, 2000))
    (tmp_path / "checkpoint_last.pt").write_bytes(b"")
    assert readable_fallback(tmp_path, tmp_path / "checkpoint_last.pt") == tmp_path / "checkpoint_best.pt"

    restored = []
    load = resume_from_readable(lambda cfg, trainer: restored.append(cfg.restore_file))
    cfg = OmegaConf.create({"save_dir": str(tmp_path), "restore_file": "checkpoint_last.pt", "finetune_from_model": None})
    trainer = SimpleNamespace(checkpoint_suffix="", cfg=SimpleNamespace(task=SimpleNamespace()))  # a task without --init-from-supernet
    with caplog.at_level(logging.WARNING):
        load(cfg, trainer)
    assert restored == [str(tmp_path / "checkpoint_best.pt")] and cfg.restore_file == "checkpoint_last.pt"
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'checkpoint_last.pt'} is empty or truncated (a run killed while saving); resuming from checkpoint_best.pt instead"]

    for path in tmp_path.glob("checkpoint[0-9_b]*.pt"):
        path.write_bytes(b"")
    with pytest.raises(InvalidInput, match="holds no other readable checkpoint; delete it to train from scratch"):
        load(cfg, trainer)


# ------------------------------------------------------------------ the space stored in checkpoints
def model_config(**fields):
    """``cfg.model`` as fairseq-train passes it (a node of the run's config, which checkpoints save)."""
    return OmegaConf.create({"model": {"_name": "shiftadd_supernet", **fields}}).model


def supernet_task(search_space: str | None, sandwich: bool = False) -> ShiftAddSupernetTranslationTask:
    dictionary = dictionary_of_size(24)
    cfg = ShiftAddSupernetTranslationConfig(search_space=search_space, seed=1, sandwich=sandwich)
    return ShiftAddSupernetTranslationTask(cfg, dictionary, dictionary)


def test_the_checkpoint_keeps_the_space_not_its_path_and_a_given_space_must_match(tmp_path, monkeypatch) -> None:
    task = supernet_task(TINY)
    model_cfg = model_config(weight_sharing="heterogeneous")
    task.build_model(model_cfg)
    assert task.cfg.search_space is None and model_cfg.search_space_fingerprint == SPACE.fingerprint()
    monkeypatch.chdir(tmp_path)  # the space file is no longer reachable by its relative path
    assert supernet_task(None).build_model(model_cfg).search_space.fingerprint() == SPACE.fingerprint()
    monkeypatch.undo()
    other = "configs/spaces/multi30k.yml"
    with pytest.raises(SpaceError) as error:
        supernet_task(other).build_model(model_cfg)
    assert str(error.value).startswith(f"this checkpoint was trained on space tiny (fingerprint {SPACE.fingerprint()[:12]}), "
                                       f"not on --search-space {other}: space multi30k")


def test_an_altered_stored_space_is_refused() -> None:
    model_cfg = model_config()
    supernet_task(TINY).build_model(model_cfg)
    altered = SPACE.to_dict()
    altered["encoder"]["embed-dim"] = [64, 16]
    model_cfg.search_space_config = yaml.safe_dump(altered)
    with pytest.raises(InvalidInput, match="does not match its recorded fingerprint"):
        ShiftAddSupernet.space_of(model_cfg, None)


# ------------------------------------------------------------------ bad latency and search-state files
def test_latency_jsonl_with_bytes_that_are_not_utf8_is_one_line(tmp_path) -> None:
    path = tmp_path / "lat.jsonl"
    append_latency_record(path, LatencyRecord(SPACE.largest(), 10.0, "cpu", torch.__version__, 2))
    with open(path, "ab") as handle:
        handle.write(b'{"subnet": "\xff\xfe"}\n')
    with pytest.raises(LatencyDataError, match=r"lat.jsonl:2: not UTF-8 text \(byte 0xff at column 13\)$"):
        read_latency_records(path, SPACE)
    assert len(read_latency_records(path, SPACE, on_error="skip")) == 1


@pytest.mark.parametrize("content, reason", [
    (b"[1, 2]", "holds a JSON list, expected the search state object"),
    (b'{"version": 1}', "lacks the key 'signature'"),
    (b'{"version": 1, "signature": [], "iteration": 0, "population": [], "rng": [], "history": [], "evaluated": [], "cache": {}}',
     "has a 'signature' that is not an object"),
    (b"\xff{}", "is not valid JSON"),
])
def test_a_malformed_search_state_is_one_line(tmp_path, content, reason) -> None:
    engine = Evolution(SPACE, lambda subnets: [0.0] * len(subnets), [Constraint("params", 1e9, lambda subnet: 0.0)],
                       EvolutionConfig(iterations=1, population=4, parents=2, mutations=1, crossovers=1))
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(ResumeError, match=reason) as error:
        engine.load_state(tmp_path / "state.json")
    assert len(str(error.value).splitlines()) == 1


# ------------------------------------------------------------------ KL under --sandwich
def test_the_kl_term_is_logged_under_sandwich() -> None:
    torch.manual_seed(0)
    task = supernet_task(TINY, sandwich=True)
    model = task.build_model(model_config(weight_sharing="heterogeneous", dropout=0.0))
    update = next(u for u in range(200) if "add" in task.training_subnets(u, 1)["random"].encoder_ffn_types)
    assert task.space.largest().encoder_ffn_types == ("mult", "mult")  # the first subnet of a sandwich has no KL term
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randint(4, 24, (3, 9), generator=g), torch.randint(4, 24, (3, 7), generator=g)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.full((3,), 9), "prev_output_tokens": tgt},
              "target": tgt, "ntokens": tgt.numel(), "nsentences": 3}
    criterion = LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    _, _, log = task.train_step(sample, model, criterion, SimpleNamespace(backward=lambda loss: loss.backward()), update)
    assert log["kl"] > 0
    with metrics.aggregate() as aggregated:
        task.reduce_metrics([log], criterion)
    assert aggregated.get_smoothed_values()["kl"] == pytest.approx(log["kl"] / log["sample_size"], abs=1e-3)
