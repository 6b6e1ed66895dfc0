"""shiftadd-retrain: the fairseq-train command it builds, and bad input as one line with exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairseq_shiftadd.cli import retrain
from fairseq_shiftadd.space import SearchSpace, write_subnet


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[str, str]:
    subnet = tmp_path / "subnet.yml"
    write_subnet(SearchSpace.from_file("configs/spaces/tiny.yml").smallest(), subnet)
    (tmp_path / "data").mkdir()
    return str(subnet), str(tmp_path / "data")


def command(*argv: str) -> list[str]:
    args, extra = retrain.build_parser().parse_known_args(list(argv))
    return retrain.train_command(args, extra)


def value_of(cmd: list[str], flag: str) -> str:
    """The value fairseq-train sees: argparse keeps the last occurrence of a flag."""
    return cmd[len(cmd) - 1 - cmd[::-1].index(flag) + 1]


def test_teacher_switches_the_criterion_to_word_distillation_and_extra_options_still_win(inputs, tmp_path):
    subnet, data = inputs
    assert value_of(command(subnet, data, "out"), "--criterion") == "label_smoothed_cross_entropy"
    teacher = command(subnet, data, "out", "--teacher", "t.pt", "--distill-weight", "0.7")
    assert value_of(teacher, "--criterion") == "word_distillation"
    assert value_of(teacher, "--teacher") == "t.pt" and value_of(teacher, "--distill-weight") == "0.7"
    overridden = command(subnet, data, "out", "--teacher", "t.pt", "--criterion", "label_smoothed_cross_entropy")
    assert value_of(overridden, "--criterion") == "label_smoothed_cross_entropy"


def test_inherit_from_fine_tunes_the_export_kept_in_the_run_directory(inputs):
    subnet, data = inputs
    assert "--finetune-from-model" not in command(subnet, data, "out")
    inherited = command(subnet, data, "out", "--inherit-from", "supernet.pt")
    assert value_of(inherited, "--finetune-from-model") == str(Path("out") / "inherited.pt")


@pytest.mark.parametrize("flags, named", [(["--teacher", "missing.pt"], "--teacher"),
                                          (["--teacher", "TEACHER", "--distill-weight", "2"], "--distill-weight"),
                                          (["--inherit-from", "missing.pt"], "--inherit-from")])
def test_bad_teacher_or_supernet_settings_are_one_line_with_exit_2(inputs, tmp_path, capsys, flags, named):
    subnet, data = inputs
    (tmp_path / "TEACHER").write_bytes(b"")
    flags = [str(tmp_path / f) if f == "TEACHER" else f for f in flags]
    assert retrain.main([subnet, data, str(tmp_path / "out"), *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]
    assert not (tmp_path / "out").exists()


def search_state_beside(subnet: str, supernet: Path) -> None:
    """The part of a search's state.json that records its supernet, as shiftadd-search writes it."""
    from fairseq_shiftadd.cli import search
    args = search.build_parser().parse_args(["data", "--path", str(supernet), "--search-space", "s.yml", "--out", "o"])
    (Path(subnet).parent / "state.json").write_text(json.dumps({"signature": {"context": search.search_context(args)}}))


def test_a_searchs_best_yml_fine_tunes_from_the_supernet_it_was_scored_with(inputs, tmp_path):
    subnet, data = inputs
    supernet = tmp_path / "supernet.pt"
    supernet.write_bytes(b"")
    parse = lambda *flags: retrain.build_parser().parse_known_args([subnet, data, "out", *flags])[0]
    assert retrain.supernet_to_inherit(parse()) == ""  # no search wrote this file: from scratch
    search_state_beside(subnet, supernet)
    assert retrain.supernet_to_inherit(parse()) == str(supernet.resolve())
    assert retrain.supernet_to_inherit(parse("--from-scratch")) == ""
    assert retrain.supernet_to_inherit(parse("--inherit-from", "other.pt")) == "other.pt"


@pytest.mark.parametrize("state, named", [("gone", "supernet"), ("{not json", "state.json"), ('{"signature": {}}', "state.json")])
def test_a_search_state_without_a_usable_supernet_is_one_line_with_exit_2(inputs, tmp_path, capsys, state, named):
    subnet, data = inputs
    if state == "gone":
        search_state_beside(subnet, tmp_path / "deleted.pt")
    else:
        (Path(subnet).parent / "state.json").write_text(state)
    assert retrain.main([subnet, data, str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "--from-scratch" in lines[0]
    assert not (tmp_path / "out").exists()


def test_inherit_from_and_from_scratch_exclude_each_other(inputs, tmp_path, capsys):
    subnet, data = inputs
    (tmp_path / "s.pt").write_bytes(b"")
    assert retrain.main([subnet, data, str(tmp_path / "out"), "--inherit-from", str(tmp_path / "s.pt"), "--from-scratch"]) == 2
    assert "--from-scratch" in capsys.readouterr().err
