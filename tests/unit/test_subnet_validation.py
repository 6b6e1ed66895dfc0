"""One subnet validator for every entry point: the cases that used to crash, and a fuzz of subnet files.

Every mutated file must either be costed (op counts and accelerator) and build a model that runs a
forward pass, or be refused with exit status 2 and one line; all in-process, within seconds.
"""
from __future__ import annotations

import copy
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from fairseq_shiftadd.cli.cost import main as shiftadd_cost
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.errors import UserError
from fairseq_shiftadd.models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from fairseq_shiftadd.space import SIZE_LIMITS, SearchSpace, SpaceError, load_subnet_file

BASELINE = Path("configs/subnets/multi30k-baseline.yml")
FFN = "encoder-ffn-embed-dim-all-subtransformer"
HEADS = "encoder-self-attention-heads-all-subtransformer"
BLOCKS_ENC = "encoder-block-types-all-subtransformer"
BLOCKS_DEC = "decoder-block-types-all-subtransformer"
ENDE = "decoder-arbitrary-ende-attn-all-subtransformer"
DIM = "encoder-embed-dim-subtransformer"


def hybrid() -> dict:
    """A valid small hybrid subnet: every block and FFN operator kind appears."""
    raw = yaml.safe_load(BASELINE.read_text())
    raw.update({DIM: 64, "decoder-embed-dim-subtransformer": 64, FFN: [128, 96, 64], BLOCKS_ENC: ["attn+conv", "add", "shiftadd"],
                BLOCKS_DEC: ["attn+add", "attn", "attn+shiftadd"], "encoder-ffn-types-all-subtransformer": ["shift", "add", "mult"],
                ENDE: [-1, 1, 2]})
    return raw


def cost_error(capsys, tmp_path: Path, raw, *flags: str) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of in-process ``shiftadd-cost FILE FLAGS`` on the subnet ``raw``."""
    path = tmp_path / "subnet.yml"
    path.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    status = shiftadd_cost([str(path), "--json", *flags])
    return status, capsys.readouterr().err.strip().splitlines()


def with_change(key: str, value) -> dict:
    raw = hybrid()
    raw[key] = value
    return raw


@pytest.mark.parametrize("raw, fragment", [
    (with_change(FFN, [128, "wide", 64]), f"{FFN}[1] = 'wide' must be an integer"),
    (with_change(FFN, [128, -5, 64]), f"{FFN}[1] = -5 must be an integer from 1"),
    (with_change(FFN, [128, 0, 64]), f"{FFN}[1] = 0"),
    (with_change(HEADS, [0, 4, 4]), f"{HEADS}[0] = 0"),
    (with_change(BLOCKS_ENC, ["attn", "mamba", "attn"]), f"{BLOCKS_ENC}[1] = 'mamba' is not a encoder choice"),
    (with_change(HEADS, [3, 4, 4]), f"{HEADS}[0] = 3 must divide the 32 channels attn+conv gives attention"),
    (with_change(BLOCKS_DEC, ["conv", "attn", "attn"]), f"{BLOCKS_DEC}[0] = 'conv' is not a decoder choice"),
    (with_change(ENDE, [-1, 7, 2]), f"{ENDE}[1] = 7 must be -1"),
    (with_change(DIM, 10**9), f"{DIM} = 1000000000 must be an integer from 1 to {SIZE_LIMITS['embed_dim']}"),
    (with_change(DIM, 500), "must divide"),
])
def test_subnets_the_model_cannot_run_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, raw, fragment) -> None:
    monkeypatch.setattr(sys, "argv", ["shiftadd-cost"])
    for flags in ((), ("--hardware", "accelerator")):
        status, err = cost_error(capsys, tmp_path, raw, *flags)
        assert status == 2 and len(err) == 1 and fragment in err[0], err


def test_heads_must_divide_the_model_width_with_seven_heads_on_512(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["shiftadd-cost"])
    raw = yaml.safe_load(Path("configs/subnets/transformer-base.yml").read_text())
    raw["decoder-ende-attention-heads-all-subtransformer"] = [7] * 6
    status, err = cost_error(capsys, tmp_path, raw)
    assert status == 2 and err == [
        "shiftadd-cost: error: "
        f"{tmp_path / 'subnet.yml'}: decoder-ende-attention-heads-all-subtransformer[0] = 7 must divide the decoder embed dim 512"]


@pytest.mark.parametrize("flag", [["--vocab-size", "-5"], ["--vocab-size", "1000000000"], ["--tokens", "1000000000"]])
def test_out_of_range_sizes_on_the_command_line_are_one_line(capsys, tmp_path, monkeypatch, flag) -> None:
    monkeypatch.setattr(sys, "argv", ["shiftadd-cost"])
    status, err = cost_error(capsys, tmp_path, hybrid(), *flag)
    assert status == 2 and len(err) == 1 and "must be from 1 to" in err[0]


def test_the_space_adds_its_value_sets_to_the_same_checks() -> None:
    space = SearchSpace.from_file("configs/spaces/tiny.yml")
    raw = yaml.safe_load(space.largest().to_yaml())
    raw["decoder-block-types-all-subtransformer"][0] = "conv"
    with pytest.raises(SpaceError, match="is not a decoder choice"):
        space.subnet_from_dict(raw)


def test_the_standalone_builder_checks_the_lightweight_filter_heads() -> None:
    raw = hybrid()
    raw.update({DIM: 12, "decoder-embed-dim-subtransformer": 12, HEADS: [2, 2, 2], "decoder-self-attention-heads-all-subtransformer": [2, 2, 2],
                "decoder-ende-attention-heads-all-subtransformer": [2, 2, 2]})
    with pytest.raises(SpaceError, match="not divisible by 4 filter heads"):
        build_and_run(raw)


# ---------------------------------------------------------------------------- fuzz
ODD_VALUES = ["x", 1.5, None, True, [], {}, -1, 0, 10**9, 2**63, 3, 7, 64, 100, "attn", "conv", "mult", [4]]


def mutate(raw: dict, rng: random.Random) -> dict:
    """One random damage: a wrong type, an out-of-range or huge number, a missing or extra key, a wrong list length."""
    raw = copy.deepcopy(raw)
    key = rng.choice(sorted(raw))
    kind = rng.randrange(6)
    if kind == 0:
        del raw[key]
    elif kind == 1:
        raw[rng.choice(["extra-key", key.upper(), "encoder-layers"])] = rng.choice(ODD_VALUES)
    elif kind == 2 or not isinstance(raw[key], list):
        raw[key] = rng.choice(ODD_VALUES + [rng.randint(-3, 600)])
    elif kind == 3:
        raw[key] = raw[key] + [raw[key][0]] * rng.randint(1, 3) if rng.random() < 0.5 else raw[key][: rng.randrange(len(raw[key]))]
    else:
        raw[key][rng.randrange(len(raw[key]))] = rng.choice(ODD_VALUES + [rng.randint(-3, 300), -1, 1, 2, "attn+add", "shiftadd", "add", "shift"])
    return raw


def build_and_run(raw: dict) -> None:
    """The standalone model builder on ``raw`` (a subnet mapping), then one forward pass of two sentences."""
    subnet = yaml.safe_dump(raw)
    dictionary = dictionary_of_size(40)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    with torch.device("meta"):
        meta = ShiftAddTransformer.build_model(ShiftAddTransformerConfig(subnet_config=subnet), task)
    if sum(p.numel() for p in meta.parameters()) > 3_000_000:
        return  # shapes checked on meta; a real forward pass only for small models
    model = ShiftAddTransformer.build_model(ShiftAddTransformerConfig(subnet_config=subnet), task).eval()
    tokens = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 1]])
    with torch.no_grad():
        logits, _ = model(tokens, torch.tensor([4, 3]), tokens)
    assert logits.shape == (2, 4, 40) and torch.isfinite(logits).all()


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_subnet_files_are_costed_and_built_or_refused_in_one_line(capsys, tmp_path, monkeypatch, seed) -> None:
    monkeypatch.setattr(sys, "argv", ["shiftadd-cost"])
    rng = random.Random(seed)
    outcomes = {0: 0, 2: 0}
    build_and_run(hybrid())  # the first add operator may build its C++ kernel: not part of any case's time
    for _ in range(100):
        raw = mutate(mutate(hybrid(), rng), rng) if rng.random() < 0.3 else mutate(hybrid(), rng)
        start = time.perf_counter()
        statuses = []
        for flags in ((), ("--hardware", "accelerator")):
            status, err = cost_error(capsys, tmp_path, raw, *flags)
            assert status in (0, 2), (raw, err)
            assert status == 0 or (len(err) == 1 and err[0].startswith("shiftadd-cost: error: ")), (raw, err)
            statuses.append(status)
        assert statuses[0] == statuses[1], raw
        try:
            build_and_run(load_subnet_file(tmp_path / "subnet.yml").to_yaml_dict())
            built = True
        except UserError:
            built = False
        assert built == (statuses[0] == 0), raw
        assert time.perf_counter() - start < 10, raw
        outcomes[statuses[0]] += 1
    assert outcomes[0] >= 5 and outcomes[2] >= 50, outcomes  # the fuzz reaches both sides
