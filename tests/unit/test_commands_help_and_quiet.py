"""What a newcomer meets first: every option's help and default, shiftadd-cost's vocabulary and accelerator
table, the silenced library messages, every sentence batched at generation, the Pareto plot's labels."""
from __future__ import annotations

import argparse
import logging
import warnings
from types import SimpleNamespace

import pytest
import torch

from fairseq_shiftadd.cli import average, cost, demo, export_subnet, measure_latency, retrain, score, search
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.errors import InvalidInput
from fairseq_shiftadd.models.shiftadd_supernet import ShiftAddSupernet, ShiftAddSupernetConfig
from fairseq_shiftadd.quiet import HARMLESS_WARNINGS, silence_known_noise

BASE = "configs/subnets/transformer-base.yml"


def parsers() -> dict[str, argparse.ArgumentParser]:
    built = {name: module.build_parser() for name, module in
             (("cost", cost), ("demo", demo), ("measure", measure_latency), ("retrain", retrain), ("score", score), ("search", search))}
    for name, module in (("average", average), ("export", export_subnet)):  # their parsers live in main
        captured = {}
        original = argparse.ArgumentParser.parse_args

        def grab(self, *args, **kwargs):
            captured["parser"] = self
            raise SystemExit(0)
        argparse.ArgumentParser.parse_args = grab
        try:
            with pytest.raises(SystemExit):
                module.main([])
        finally:
            argparse.ArgumentParser.parse_args = original
        built[name] = captured["parser"]
    return built


def test_every_option_of_every_command_has_help_and_shows_its_default():
    for name, parser in parsers().items():
        assert parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter, name
        for action in parser._actions:
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        assert " ".join(parser.format_help().split()).count("(default: ") >= len(options), name


def test_cost_takes_the_vocabulary_from_the_data_dir(tmp_path, capsys):
    (tmp_path / "dict.en.txt").write_text("".join(f"w{i} 1\n" for i in range(96)))  # + 4 specials = 100
    assert cost.main([BASE, "--json", "--data", str(tmp_path)]) == 0
    from_data = cost.json.loads(capsys.readouterr().out)["total"]["params"]
    assert cost.main([BASE, "--json", "--vocab-size", "100"]) == 0
    assert from_data == cost.json.loads(capsys.readouterr().out)["total"]["params"]


def test_cost_takes_the_vocabulary_from_a_checkpoint(tmp_path, capsys):
    torch.save({"model": {"encoder.embed_tokens.weight": torch.zeros(77, 4)}}, tmp_path / "c.pt")
    assert cost.main([BASE, "--json", "--checkpoint", str(tmp_path / "c.pt")]) == 0
    from_checkpoint = cost.json.loads(capsys.readouterr().out)["total"]["params"]
    assert cost.main([BASE, "--json", "--vocab-size", "77"]) == 0
    assert from_checkpoint == cost.json.loads(capsys.readouterr().out)["total"]["params"]


def test_cost_table_shows_the_accelerator_breakdown(capsys):
    assert cost.main([BASE, "--hardware", "accelerator", "--json"]) == 0
    total = cost.json.loads(capsys.readouterr().out)["total"]
    assert cost.main([BASE, "--hardware", "accelerator"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, last = lines[1], next(line for line in lines if line.startswith("total"))
    for part in ("compute", "dram", "buffer", "noc", "rf"):
        assert f"{part} (mJ)" in header
    assert last.split()[-5:] == [f"{total['breakdown'][p]:.4f}" for p in ("compute", "dram", "buffer", "noc", "rf")]


def test_known_harmless_warnings_are_silenced_and_others_kept():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        warnings.warn("hydra.experimental.compose() is no longer experimental. Use hydra.compose()", UserWarning)
        warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then ...", UserWarning)
        warnings.warn("something the user must see", UserWarning)
    assert [str(w.message) for w in caught] == ["something the user must see"]
    assert len(HARMLESS_WARNINGS) >= 5


def test_the_tensorboardx_line_is_dropped_other_lines_kept(caplog):
    silence_known_noise()
    logger = logging.getLogger("fairseq.tasks.text_to_speech")
    with caplog.at_level(logging.INFO):
        logger.info("Please install tensorboardX: pip install tensorboardX")
        logger.info("another line")
    assert [r.getMessage() for r in caplog.records] == ["another line"]


def test_a_supernet_under_a_plain_fairseq_task_says_which_task_to_add():
    dictionary = dictionary_of_size(24)
    plain = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary, cfg=SimpleNamespace(_name="translation"))
    with pytest.raises(InvalidInput, match="needs --task shiftadd_supernet_translation, not --task translation"):
        ShiftAddSupernet.build_model(ShiftAddSupernetConfig(), plain)


def test_our_task_batches_every_sentence_outside_training(monkeypatch):
    from fairseq.tasks.translation import TranslationTask

    from fairseq_shiftadd.tasks.shiftadd_supernet_translation import ShiftAddSupernetTranslationTask

    seen = []
    monkeypatch.setattr(TranslationTask, "get_batch_iterator", lambda self, dataset, **kw: seen.append(kw["required_batch_size_multiple"]))
    task = object.__new__(ShiftAddSupernetTranslationTask)  # only what get_batch_iterator reads
    task.datasets, task.cfg = {"train": "TRAIN", "test": "TEST"}, SimpleNamespace(train_subset="train")
    task.get_batch_iterator("TRAIN", required_batch_size_multiple=8)
    task.get_batch_iterator("TEST", required_batch_size_multiple=8)
    assert seen == [8, 1]


def test_pareto_plot_names_units_and_budgets(tmp_path, monkeypatch):
    import matplotlib.axes

    from fairseq_shiftadd.search.evolution import Constraint, plot_pareto
    from fairseq_shiftadd.space import SearchSpace

    space = SearchSpace.from_file("configs/spaces/tiny.yml")
    subnets = [space.largest(), space.smallest()]
    rows = [{"subnet": s, "loss": loss, "energy_mj": e, "latency_ms": t} for s, loss, e, t in zip(subnets, (3.0, 4.0), (2.0, 1.0), (5.0, 3.0))]
    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel", lambda self, text, *a, **k: labels.append(text))
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", lambda self, text, *a, **k: labels.append(text))
    legends = []
    original = matplotlib.axes.Axes.legend
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda self, *a, **k: legends.append(self.get_legend_handles_labels()[1]) or original(self, *a, **k))
    constraints = [Constraint("energy_mj", 1.5, len), Constraint("latency_ms", 4.0, len)]
    plot_pareto(tmp_path / "p.png", rows, constraints, subnets[1], limits={"energy_mj": [1.5, 1.8]})
    assert labels == ["energy (mJ, computed)", "validation loss (bits/token, inherited weights)",
                      "latency (ms, predicted by the latency MLP)", "validation loss (bits/token, inherited weights)"]
    assert "budgets 1.5, 1.8" in legends[0] and "budget 4" in legends[1]
    assert (tmp_path / "p.png").stat().st_size > 1000
