"""The accelerator model against the paper's figures and against a naive brute-force enumeration."""
from __future__ import annotations

import json
import math

import pytest

from fairseq_shiftadd.hardware import accelerator as acc
from fairseq_shiftadd.hardware.energy_table import UNIT_ENERGY_PJ, op_energy_pj
from fairseq_shiftadd.op_record import OpRecord
from fairseq_shiftadd.hardware.accelerator_reference import naive_charge, naive_cost, naive_tilings, transformer_base_ops
from fairseq_shiftadd.hardware.tiling import FACTORS, Shape, valid_tilings


def test_unit_energies_are_design_table():
    assert dict(UNIT_ENERGY_PJ[32]) == {"mult": 3.7, "add": 0.9, "shift": 0.13}
    assert dict(UNIT_ENERGY_PJ[8]) == {"mult": 0.2, "add": 0.03, "shift": 0.024}
    assert op_energy_pj(10, 20, 30, bits=32) == pytest.approx(10 * 3.7 + 20 * 0.9 + 30 * 0.13)
    with pytest.raises(ValueError, match="bits"):
        op_energy_pj(1, 1, 1, bits=16)


def test_transformer_base_matches_paper():
    report = acc.accelerator_cost(transformer_base_ops(30), bits=32)
    assert report.energy_mj == pytest.approx(69.41, rel=1e-3)
    assert report.latency_ms == pytest.approx(41.82, rel=1e-3)
    layers = report.by_layer()
    enc = acc.summarise("encoder", [x for x in layers if x.name.startswith("encoder")])
    dec = acc.summarise("decoder", [x for x in layers if x.name.startswith("decoder")])
    assert (enc.energy_mj, enc.latency_ms) == (pytest.approx(29.63, rel=1e-3), pytest.approx(17.87, rel=1e-3))
    assert (dec.energy_mj, dec.latency_ms) == (pytest.approx(39.79, rel=1e-3), pytest.approx(23.95, rel=1e-3))
    # op counts (docs/architecture.md, "Costing"): 95.29 M MACs per encoder layer, 127.67 M per decoder layer
    assert layers[0].mult == 95_293_440 and layers[-1].mult == 127_672_320
    assert sum(report.total.breakdown.values()) == pytest.approx(report.energy_mj, rel=1e-12)


SMALL_SHAPES = [
    Shape(n=6, c=12, m=16),  # linear; C0 = 12 sits on the C0*S < 12 boundary, M0 = 16 on M0 <= 16
    Shape(n=2, c=21, m=8),  # M1*C1 = 168 sits on the PE boundary
    Shape(n=12, c=4, m=6),  # Q K^T-like
    Shape(n=8, c=1, m=1, h=8, e=6, r=3),  # depthwise temporal conv, K = 3, padded
    Shape(n=2, c=4, m=8, h=9, w=9, r=3, s=3, e=4, f=4, stride=2),  # strided 2-D conv
    Shape(n=4, c=8, m=8, h=18, w=130, r=3, s=3, e=16, f=128),  # the buffer constraint binds
]
CHARGES = [(op, bits, conv) for op in ("mult", "shift", "add") for bits in (32, 8) for conv in ("ours", "public")]


@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=str)
def test_valid_tilings_equal_naive_enumeration(shape):
    assert sorted(map(tuple, valid_tilings(shape).tolist())) == sorted(naive_tilings(shape))


def test_constraint_boundaries_exclude_equality():
    tilings = set(naive_tilings(SMALL_SHAPES[1]))
    assert not any(t[3] * t[7] == 168 for t in tilings)  # M1*C1*E1*R == 168 is not valid
    assert not any(t[6] == 12 for t in naive_tilings(SMALL_SHAPES[0]))  # C0*S == 12 is not valid
    assert any(t[2] == 16 for t in naive_tilings(SMALL_SHAPES[0]))  # M0 == 16 is valid
    big = SMALL_SHAPES[5]
    assert len(naive_tilings(big)) < len(naive_tilings(big, buffer_words=10**9))  # the buffer really prunes
    # N0*C1*C0 + N0*M2*M1*M0 = 256*128 + 256*128 = 65536 words exactly: not valid
    full = Shape(n=256, c=128, m=128)
    on_boundary = (256, 1, 16, 8, 1, 1, 8, 16, 1, 1, 1, 1)
    assert on_boundary in naive_tilings(full, buffer_words=65537)
    assert on_boundary not in set(map(tuple, valid_tilings(full).tolist()))


@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=str)
def test_chosen_tiling_is_valid_and_optimal(shape):
    tilings = naive_tilings(shape)
    for operator, bits, conventions in CHARGES:
        op = OpRecord("x", "l", operator, "conv", shape.n, shape.c, shape.m, shape.h, shape.w, shape.r, shape.s, shape.e, shape.f, shape.stride)
        chosen = acc.accelerator_cost([op], bits=bits, conventions=conventions).ops[0]
        charge = naive_charge(operator, bits, conventions)
        costs = [naive_cost(shape, t, charge) for t in tilings]
        energies, cycles = [e for e, _ in costs], [c for _, c in costs]
        lo_e, hi_e, lo_c, hi_c = min(energies), max(energies), min(cycles), max(cycles)
        score = [(e - lo_e) / hi_e + (c - lo_c) / hi_c for e, c in costs]
        picked = tuple(chosen.tiling[k] for k in FACTORS)
        assert picked in tilings
        energy, cyc = costs[tilings.index(picked)]
        assert chosen.energy_mj == pytest.approx(energy * 1e-9, rel=1e-12)
        assert chosen.latency_ms == pytest.approx(cyc / 250e3, rel=1e-12)
        assert (energy - lo_e) / hi_e + (cyc - lo_c) / hi_c <= min(score) + 1e-12, (operator, bits, conventions)


def test_public_add_has_no_traffic_beyond_the_array_and_tap_counts():
    conv = OpRecord("c", "l", "add", "conv", n=512, c=1, m=1, h=30 + 14, e=30, r=15)
    public = acc.accelerator_cost([conv], conventions="public").ops[0]
    ours = acc.accelerator_cost([conv], conventions="ours").ops[0]
    assert public.breakdown["dram"] == public.breakdown["buffer"] == public.breakdown["noc"] == 0.0
    assert ours.breakdown["dram"] > 0 and ours.energy_mj > public.energy_mj
    assert public.breakdown["compute"] == pytest.approx(512 * 30 * 15 * 0.9e-9)
    assert (ours.mult, ours.add, ours.shift) == (0, 2 * conv.taps, 0)
    shift = acc.accelerator_cost([OpRecord.linear("s", "l", "shift", 30, 512, 512, 0)]).ops[0]
    assert (shift.mult, shift.add, shift.shift) == (0, shift.shift, 30 * 512 * 512)


def test_shift_weights_move_cheaper_than_mult_weights():
    mult = acc.accelerator_cost(transformer_base_ops(30, "mult"))
    shift = acc.accelerator_cost(transformer_base_ops(30, "shift"))
    assert shift.energy_mj < mult.energy_mj
    assert shift.latency_ms == pytest.approx(mult.latency_ms)  # same clock in our conventions
    public_shift = acc.accelerator_cost(transformer_base_ops(30, "shift"), conventions="public")
    assert public_shift.latency_ms < mult.latency_ms  # twice the clock for the FFN


def test_report_json_and_cache_reuse():
    ops = transformer_base_ops(30)
    acc.clear_cache()
    first = acc.accelerator_cost(ops, bits=8)
    again = acc.accelerator_cost(ops, bits=8)
    assert again.to_json() == first.to_json()
    data = json.loads(json.dumps(first.to_json()))
    assert set(data) >= {"layers", "total"}
    assert len(data["layers"]) == 12 and len(data["ops"]) == len(ops)
    assert set(data["layers"][0]) == {"name", "mult", "add", "shift", "energy_mj", "latency_ms", "breakdown"}
    assert set(data["total"]["breakdown"]) == {"compute", "dram", "buffer", "noc", "rf"}
    assert math.isclose(data["total"]["energy_mj"], sum(x["energy_mj"] for x in data["layers"]), rel_tol=1e-12)


def test_bad_input_is_one_clear_error():
    op = OpRecord.linear("x", "l", "mult", 30, 8, 8, 64)
    with pytest.raises(ValueError, match="bits"):
        acc.accelerator_cost([op], bits=16)
    with pytest.raises(ValueError, match="conventions"):
        acc.accelerator_cost([op], conventions="paper")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        acc.accelerator_cost([OpRecord.linear("x", "l", "mult", 0, 8, 8, 64)])
