"""How much of an add layer's output survives half precision, next to a multiplication layer's.

    python bench/precision.py [--tokens 256] [--out-features 1024] [--seed 0]

-sum_i |x_i - w_oi| is an offset of about fan_in * E|x - w|, common to a token's outputs, plus
differences of order one between the outputs; the LayerNorm that follows every add FFN layer
keeps only those differences. For each fan-in and half dtype this prints the error of those
differences (each token's outputs centred over the features, RMS of the error over RMS of the
float64 values), for AddLinear and nn.Linear side by side, in the two ways mixed precision runs:

* "half result": operands and result in the half dtype (a model cast to it, fairseq --fp16);
* "autocast": operands in the half dtype, result in float32 (torch.autocast; add_backend.precision).

Inputs ~ N(0, 1) (a LayerNorm's output); weights as each layer initialises them, AddLinear's
under both add weight scales of OperatorRecipe: ``input`` (ours: weight on the input's scale) and
``linear`` (the public code's: nn.Linear's scale). Arithmetic, not timing: the figures are the
same on any machine.
"""
from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn

from fairseq_shiftadd.modules import AddLinear
from fairseq_shiftadd.modules.operator_recipe import ADD_WEIGHT_SCALES, OperatorRecipe

FAN_INS = [64, 512, 1024, 4096]
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def centred_error(y: Tensor, reference: Tensor) -> float:
    """RMS error of y's per-token centred outputs over their RMS; y, reference: (tokens, out)."""
    centre = lambda t: t.double() - t.double().mean(-1, keepdim=True)  # noqa: E731
    return ((centre(y) - centre(reference)).pow(2).mean().sqrt() / centre(reference).pow(2).mean().sqrt()).item()


def errors(layer: nn.Module, x: Tensor, dtype: torch.dtype) -> tuple[float, float]:
    """(half result, autocast) centred errors of layer on x against float64."""
    with torch.no_grad():
        reference = layer.double()(x.double())
        layer.float()
        with torch.autocast("cpu", dtype=dtype):
            autocast = layer(x)
        half = layer.to(dtype)(x.to(dtype))
        layer.float()
    return centred_error(half, reference), centred_error(autocast, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--out-features", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}; {args.tokens} tokens, {args.out_features} outputs, seed {args.seed}")
    scales = " | ".join(f"AddLinear ({scale} scale) half result | autocast" for scale in ADD_WEIGHT_SCALES)
    print(f"| fan-in | dtype | {scales} | nn.Linear half result | autocast |")
    print("|---|---|" + "---|---|" * (len(ADD_WEIGHT_SCALES) + 1))
    for fan_in in FAN_INS:
        x = torch.randn(args.tokens, fan_in)
        layers = [
            AddLinear(fan_in, args.out_features, gain=OperatorRecipe(add_weight_scale=scale).add_gain(fan_in))
            for scale in ADD_WEIGHT_SCALES
        ]
        layers.append(nn.Linear(fan_in, args.out_features, bias=False))
        for name, dtype in DTYPES.items():
            cells = " | ".join(f"{half:.2%} | {auto:.2%}" for half, auto in (errors(layer, x, dtype) for layer in layers))
            print(f"| {fan_in} | {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
