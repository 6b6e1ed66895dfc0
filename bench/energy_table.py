"""Energy of Transformer-base/-big and their shift/add variants, both cost models, side by side.

    .venv/bin/python bench/energy_table.py
"""
from __future__ import annotations

import dataclasses

from fairseq_shiftadd.hardware.costing import SubnetCoster
from fairseq_shiftadd.space import SearchSpace, load_subnet_file

PUBLIC_MJ = {"Transformer-base": 69.41, "Transformer-big": 214.34}  # the paper's accelerator figures, 32-bit


def variants(space: SearchSpace):
    for name, path in (("Transformer-base", "configs/subnets/transformer-base.yml"), ("Transformer-big", "configs/subnets/transformer-big.yml")):
        base = space.complete(load_subnet_file(path))
        layers = base.encoder_layer_num
        yield name, "attn, mult FFN", base
        yield name, "attn, shift FFN", dataclasses.replace(base, encoder_ffn_types=("shift",) * layers, decoder_ffn_types=("shift",) * layers)
        yield name, "attn, add FFN", dataclasses.replace(base, encoder_ffn_types=("add",) * layers, decoder_ffn_types=("add",) * layers)
        yield name, "enc shiftadd blocks, shift FFN", dataclasses.replace(
            base, encoder_block_types=("shiftadd",) * layers, encoder_ffn_types=("shift",) * layers, decoder_ffn_types=("shift",) * layers
        )


def main() -> None:
    space = SearchSpace.from_file("configs/spaces/wmt14.en-de.yml")
    coster = SubnetCoster(space)
    print("| model | operators | op-count mJ 32-bit | op-count mJ 8-bit | accelerator mJ 32-bit | accelerator ms | accelerator mJ 8-bit | public figure mJ |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label, subnet in variants(space):
        accel = coster.report(subnet, bits=32, hardware="accelerator")["total"]
        public = PUBLIC_MJ[name] if label == "attn, mult FFN" else None
        print(
            f"| {name} | {label} | {coster.energy_mj(subnet, 32):.2f} | {coster.energy_mj(subnet, 8):.2f} | "
            f"{accel['energy_mj']:.2f} | {accel['latency_ms']:.2f} | {coster.energy_mj(subnet, 8, hardware='accelerator'):.2f} | "
            f"{public if public else '-'} |"
        )


if __name__ == "__main__":
    main()
