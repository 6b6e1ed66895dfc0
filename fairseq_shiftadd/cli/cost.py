"""``shiftadd-cost SUBNET.yml`` (or a standalone checkpoint): params, op counts and energy (or accelerator cost) of a subnet."""
from __future__ import annotations

import argparse
import json
import sys

from ..hardware.costing import HARDWARE, SubnetCoster
from ..space import WEIGHT_SHARING_MODES, SearchSpace, load_subnet_file
from ..errors import InvalidInput, user_errors_to_exit
from .score import checkpoint_bits, checkpoint_subnet

MAX_TOKENS = 100_000  # sentence length; the accelerator model's tiling search stays within seconds below it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftadd-cost", description=__doc__)
    parser.add_argument("subnet", help="subnet YAML (HAT or ShiftAddNAS keys), or a standalone checkpoint (.pt)")
    parser.add_argument("--tokens", type=int, default=30, help="sentence length in tokens (source = target)")
    parser.add_argument("--bits", type=int, choices=(32, 8), help="32-bit float or 8-bit fixed point (default: a checkpoint's --quant-bits, else 32)")
    parser.add_argument("--hardware", choices=HARDWARE, default="opcount", help="op-count energy or the paper's accelerator model")
    parser.add_argument("--conventions", choices=("ours", "public"), default="ours", help="accelerator: how shift/add ops move data")
    parser.add_argument("--search-space", help="validate the subnet against this space")
    parser.add_argument("--include-embeddings", action="store_true", help="also charge the output projection")
    parser.add_argument("--memory", action="store_true", help="op-count: add a DRAM traffic term (weights + activations once)")
    parser.add_argument("--vocab-size", type=int, default=32000, help="joined vocabulary size (params, output projection)")
    parser.add_argument("--weight-sharing", choices=WEIGHT_SHARING_MODES, default="none")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


@user_errors_to_exit
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.tokens <= MAX_TOKENS:
        raise InvalidInput(f"--tokens must be from 1 to {MAX_TOKENS}, got {args.tokens}")
    checkpoint = args.subnet.endswith(".pt")
    args.bits = args.bits or (checkpoint_bits(args.subnet) if checkpoint else 32)
    if args.search_space:
        space = SearchSpace.from_file(args.search_space)
        subnet = space.load_subnet(args.subnet)
    else:
        space, subnet = None, checkpoint_subnet(args.subnet) if checkpoint else load_subnet_file(args.subnet)
    coster = SubnetCoster(space, vocab_size=args.vocab_size, weight_sharing=args.weight_sharing)
    report = coster.report(
        subnet, bits=args.bits, tokens=args.tokens, hardware=args.hardware,
        include_embeddings=args.include_embeddings, memory=args.memory, conventions=args.conventions,
    )
    if args.json:
        json.dump(report, sys.stdout)
        print()
    else:
        print(format_report(report, args))
    return 0


def format_report(report: dict, args: argparse.Namespace) -> str:
    extra = ["latency_ms"] if "latency_ms" in report["total"] else []
    extra += ["memory_energy_mj"] if "memory_energy_mj" in report["total"] else []
    header = f"{'layer':<22}{'mult (M)':>12}{'add (M)':>12}{'shift (M)':>12}{'energy (mJ)':>14}" + "".join(f"{e:>16}" for e in extra)
    lines = [f"{args.subnet}: {args.hardware}, {args.bits}-bit, {args.tokens} tokens", header]
    for row in report["layers"] + [dict(report["total"], name="total")]:
        line = f"{row['name']:<22}{row['mult'] / 1e6:>12.2f}{row['add'] / 1e6:>12.2f}{row['shift'] / 1e6:>12.2f}{row['energy_mj']:>14.4f}"
        lines.append(line + "".join(f"{row[e]:>16.4f}" for e in extra))
    lines.append(f"params: {report['total']['params'] / 1e6:.2f} M")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
