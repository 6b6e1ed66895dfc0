"""A naive pure-Python accelerator model: the independent reference for :mod:`.accelerator`.

Nested loops over every divisor of every loop bound and the data-movement formulas written out one
by one (docs/architecture.md, "Accelerator model"), with nothing vectorised or cached: the tests
check the real model's tilings and costs against it, and ``bench/accelerator.py`` times both.
"""
from __future__ import annotations

import itertools

from ..op_record import OpRecord
from .tiling import Shape


def transformer_base_ops(tokens: int = 30, operator_ffn: str = "mult") -> list[OpRecord]:
    """The op list of Transformer-base (6+6 layers, d 512, FFN 2048, 8 heads, qkv 512) written by hand."""
    d, ffn, heads, qkv = 512, 2048, 8, 512
    ops: list[OpRecord] = []

    def attention(prefix: str, layer: str, t_k: int) -> None:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            ops.append(OpRecord.linear(f"{prefix}.{proj}", layer, "mult", tokens, d, d, d * d))
        ops.append(OpRecord(f"{prefix}.qk", layer, "mult", "qk", n=tokens * heads, c=qkv // heads, m=t_k))
        ops.append(OpRecord(f"{prefix}.av", layer, "mult", "av", n=tokens * heads, c=t_k, m=qkv // heads))

    def ffn_layers(layer: str) -> None:
        ops.append(OpRecord.linear(f"{layer}.fc1", layer, operator_ffn, tokens, d, ffn, d * ffn))
        ops.append(OpRecord.linear(f"{layer}.fc2", layer, operator_ffn, tokens, ffn, d, d * ffn))

    for i in range(6):
        layer = f"encoder.layers.{i}"
        attention(f"{layer}.self_attn", layer, tokens)
        ffn_layers(layer)
    for i in range(6):
        layer = f"decoder.layers.{i}"
        attention(f"{layer}.self_attn", layer, tokens)
        attention(f"{layer}.encoder_attn", layer, tokens)  # one attended encoder layer: T_k = T
        ffn_layers(layer)
    return ops


def _ordered(n: int, parts: int):
    if parts == 1:
        yield (n,)
        return
    for d in range(1, n + 1):
        if n % d == 0:
            for rest in _ordered(n // d, parts - 1):
                yield (d,) + rest


def naive_tilings(sh: Shape, buffer_words: int = 65536) -> list[tuple[int, ...]]:
    out = []
    for (n0, n3), (m0, m1, m2, m3), (c0, c1, c2, c3), (e1, e3) in itertools.product(
        _ordered(sh.n, 2), _ordered(sh.m, 4), _ordered(sh.c, 4), _ordered(sh.e, 2)
    ):
        if not (m0 <= 16 and c3 == 1 and m1 * c1 * e1 * sh.r < 168 and c0 * sh.s < 12 and m0 * c0 * sh.s < 960):
            continue
        buffer = n0 * c1 * c0 * ((e1 - 1) * sh.stride + sh.r) * ((sh.f - 1) * sh.stride + sh.s) + n0 * m2 * m1 * m0 * e1 * sh.f
        if buffer < buffer_words:
            out.append((n0, n3, m0, m1, m2, m3, c0, c1, c2, c3, e1, e3))
    return out


# (pJ per tap, ifmap / weight / ofmap bits, traffic beyond the PE array, clock ratio), per the docstring
def naive_charge(operator: str, bits: int, conventions: str):
    tap = {32: {"mult": 3.7, "shift": 0.13, "add": 0.9}, 8: {"mult": 0.2, "shift": 0.024, "add": 0.03}}[bits][operator]
    if operator == "shift" and conventions == "ours":
        return tap, bits, 5, bits, True, 1
    if operator == "shift":
        return tap, 10, 10, 10, True, 2
    return tap, bits, bits, bits, not (operator == "add" and conventions == "public"), 1


def naive_cost(sh: Shape, tiling, charge) -> tuple[float, float]:
    tap, bi, bw, bo, off_array, clock = charge
    n0, n3, m0, m1, m2, m3, c0, c1, c2, c3, e1, e3 = tiling
    N, C, M, H, W, R, S, E, F = sh.n, sh.c, sh.m, sh.h, sh.w, sh.r, sh.s, sh.e, sh.f
    ifmap, weight, ofmap, macs = N * H * W * C, R * S * C * M, N * E * F * M, N * E * F * M * R * S * C
    dram = m3 * ifmap * bi / 16 + n3 * e3 * weight * bw / 16 + max(2 * c3 - 1, 1) * ofmap * bo / 16
    gb = m3 * m2 * ifmap * bi / 16 + max(2 * c3 * (c2 - 1), 1) * ofmap * bo / 16
    noc = m3 * m2 * m1 * R * (E / H) * ifmap * bi / 16 + n3 * e3 * e1 * weight * bw / 16
    noc_psum = max(c3 * c2 * (c1 * R - 1), 1) * ofmap * bo / 16
    rf = m3 * m2 * m1 * R * (E / H) * m0 * S * (F / W) * ifmap * bi / 16 + max(c3 * c2 * c1 * R * (c0 * S - 1) * 2, 1) * ofmap * bo / 16
    rf_weight = n3 * e3 * e1 * F * n0 * weight * bw / 16
    if not off_array:
        dram = gb = noc = noc_psum = 0.0
    energy = macs * tap + dram * 200 + gb * 6 * 3.7 + noc * 2 * 3.7 + noc_psum * 3.7 + rf * 3.7 + rf_weight * 2 * 3.7
    cycles = n3 * n0 * m3 * m2 * m0 * c3 * c2 * c0 * e3 * F * S / clock
    return energy, cycles
