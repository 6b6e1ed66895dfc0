"""Costs counted from the model's own modules: op counts, energy, the accelerator model, the CLI (in-process)."""
from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from fairseq_shiftadd.cli.cost import main
from fairseq_shiftadd.hardware.costing import SubnetCoster
from fairseq_shiftadd.hardware.energy_table import UNIT_ENERGY_PJ
from fairseq_shiftadd.space import SearchSpace, load_subnet_file

BASE = "configs/subnets/transformer-base.yml"
WMT = SearchSpace.from_file("configs/spaces/wmt14.en-de.yml")


@pytest.fixture
def cost_json(capsys, monkeypatch):
    """``shiftadd-cost ARGS --json``, run in-process: its JSON report."""
    monkeypatch.setattr(sys, "argv", ["shiftadd-cost"])

    def cost(*args: str) -> dict:
        assert main([*args, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    return cost


def shiftadd_cost_error(capsys, args: list[str]) -> str:
    """The last stderr line of a ``shiftadd-cost`` run that must fail with exit status 2."""
    assert main(args) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_transformer_base_macs_per_layer_match_the_hand_count(cost_json) -> None:
    report = cost_json(BASE)
    layers = {layer["name"]: layer for layer in report["layers"]}
    # 4 x 30 x 512 x 512 (projections) + 2 x 30 x 8 x 64 x 30 (QK^T, AV) + 2 x 30 x 512 x 2048 (FFN)
    encoder = 4 * 30 * 512 * 512 + 2 * 30 * 8 * 64 * 30 + 2 * 30 * 512 * 2048
    decoder = encoder + 4 * 30 * 512 * 512 + 2 * 30 * 8 * 64 * 30
    assert round(encoder / 1e6, 2) == 95.29 and round(decoder / 1e6, 2) == 127.67
    assert all(layers[f"encoder.layers.{i}"]["mult"] == encoder for i in range(6))
    assert all(layers[f"decoder.layers.{i}"]["mult"] == decoder for i in range(6))
    total = report["total"]
    assert total["mult"] == total["add"] == 6 * (encoder + decoder) and total["shift"] == 0
    assert total["energy_mj"] == pytest.approx(6 * (encoder + decoder) * (3.7 + 0.9) * 1e-9)
    assert set(report["layers"][0]) == {"name", "mult", "add", "shift", "energy_mj"}
    assert {"params", "mult", "add", "shift", "energy_mj"} <= set(total)


def test_shift_and_add_taps_are_priced_by_their_own_operators() -> None:
    base = load_subnet_file(BASE)
    coster = SubnetCoster(WMT)
    mult = coster.report(WMT.complete(base))["total"]
    shift = coster.report(WMT.complete(dataclasses.replace(base, encoder_ffn_types=("shift",) * 6, decoder_ffn_types=("shift",) * 6)))["total"]
    add = coster.report(WMT.complete(dataclasses.replace(base, encoder_ffn_types=("add",) * 6, decoder_ffn_types=("add",) * 6)))["total"]
    ffn_taps = 12 * 2 * 30 * 512 * 2048
    assert shift["shift"] == ffn_taps and shift["mult"] == mult["mult"] - ffn_taps and shift["add"] == mult["add"]
    assert add["mult"] == mult["mult"] - ffn_taps and add["add"] == mult["add"] + ffn_taps  # two adds per add tap
    for bits in (32, 8):
        unit = UNIT_ENERGY_PJ[bits]
        delta = SubnetCoster(WMT).energy_mj(WMT.complete(base), bits=bits) - coster.report(
            WMT.complete(dataclasses.replace(base, encoder_ffn_types=("shift",) * 6, decoder_ffn_types=("shift",) * 6)), bits=bits
        )["total"]["energy_mj"]
        assert delta == pytest.approx(ffn_taps * (unit["mult"] - unit["shift"]) * 1e-9)


def test_the_accelerator_model_on_the_model_s_own_ops_reproduces_the_paper(cost_json) -> None:
    report = cost_json(BASE, "--hardware", "accelerator")
    total = report["total"]
    assert total["energy_mj"] == pytest.approx(69.41, rel=1e-3) and total["latency_ms"] == pytest.approx(41.82, rel=1e-3)
    encoder = sum(layer["energy_mj"] for layer in report["layers"] if layer["name"].startswith("encoder"))
    decoder_ms = sum(layer["latency_ms"] for layer in report["layers"] if layer["name"].startswith("decoder"))
    assert encoder == pytest.approx(29.63, rel=1e-3) and decoder_ms == pytest.approx(23.95, rel=1e-3)
    assert set(total["breakdown"]) == {"compute", "dram", "buffer", "noc", "rf"}


def test_params_are_the_standalone_model_s() -> None:
    coster = SubnetCoster(None, vocab_size=32000)
    base = load_subnet_file(BASE)
    d, ffn, vocab = 512, 2048, 32000
    attention = 4 * (d * d + d)
    encoder_layer = attention + (d * ffn + ffn) + (ffn * d + d) + 2 * 2 * d  # + two LayerNorms
    decoder_layer = encoder_layer + attention + 2 * d
    assert coster.params(base) == 6 * encoder_layer + 6 * decoder_layer + vocab * d  # one shared embedding


def test_bad_subnet_gives_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["shiftadd-cost"])
    bad = tmp_path / "bad.yml"
    bad.write_text(open(BASE).read().replace("[8, 8, 8, 8, 8, 8]\ndecoder-self", "[8, 8, 8]\ndecoder-self"))
    assert shiftadd_cost_error(capsys, [str(bad)]) == (
        f"shiftadd-cost: error: {bad}: encoder-self-attention-heads-all-subtransformer has 3 values, expected 6 (one per encoder layer)"
    )
    outside = tmp_path / "outside.yml"
    outside.write_text(open(BASE).read().replace("encoder-embed-dim-subtransformer: 512", "encoder-embed-dim-subtransformer: 640"))
    error = shiftadd_cost_error(capsys, [str(outside), "--search-space", "configs/spaces/wmt14.en-de.yml"])
    assert "encoder-embed-dim-subtransformer = 640 is not in the search space wmt14.en-de (allowed: 1024, 768, 512)" in error


@pytest.mark.parametrize("name, budget, recorded", [
    ("multi30k-hybrid-50", 0.5, (0.2654, 0.0132, 3.6495, 5.38)),
    ("multi30k-hat-50", 0.5, (0.2558, 0.0128, 3.0497, 3.31)),
    ("multi30k-budget-25", 0.25, (0.1279, 0.0063, 1.9401, 3.44)),
    ("multi30k-budget-50", 0.5, (0.2265, 0.0110, 3.3169, 5.19)),
    ("multi30k-budget-75", 0.75, (0.2933, 0.0142, 4.3727, 5.64)),
])
def test_the_kept_multi30k_subnets_cost_what_their_search_recorded(name, budget, recorded) -> None:
    """configs/subnets/multi30k-{hybrid,hat}-50.yml were rebuilt from BENCHMARKS.md ("The claim at 1000
    updates", rows hybrid-50 and hat-50), multi30k-budget-*.yml are a search's own files: each must cost
    what BENCHMARKS.md records, at the recipe's 8000-word vocabulary, and stay under its budget, a
    fraction of the baseline's 32-bit energy."""
    coster = SubnetCoster(None, vocab_size=8000)
    kept, baseline = load_subnet_file(f"configs/subnets/{name}.yml"), load_subnet_file("configs/subnets/multi30k-baseline.yml")
    costs = (coster.energy_mj(kept, bits=32), coster.energy_mj(kept, bits=8),
             coster.energy_mj(kept, bits=32, hardware="accelerator"), coster.params(kept) / 1e6)
    assert tuple(round(value, digits) for value, digits in zip(costs, (4, 4, 4, 2))) == recorded
    assert coster.energy_mj(kept, bits=32) <= budget * coster.energy_mj(baseline, bits=32)
