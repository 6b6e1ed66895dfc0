"""``shiftadd-cost SUBNET.yml`` (or a standalone checkpoint): params, op counts and energy (or accelerator cost) of a subnet."""
from __future__ import annotations

import argparse
import json
import sys

from ..data.sized_dictionary import checkpoint_vocab_size, data_vocab_size
from ..hardware.costing import HARDWARE, SubnetCoster
from ..space import WEIGHT_SHARING_MODES, SearchSpace, load_subnet_file
from ..errors import InvalidInput, user_errors_to_exit
from .common import add_verbose, parse
from .score import checkpoint_bits, checkpoint_subnet

MAX_TOKENS = 100_000  # sentence length; the accelerator model's tiling search stays within seconds below it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftadd-cost", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("subnet", help="subnet YAML (HAT or ShiftAddNAS keys), or a standalone checkpoint (.pt)")
    parser.add_argument("--tokens", type=int, default=30, help="sentence length in tokens (source = target)")
    parser.add_argument("--bits", type=int, choices=(32, 8), help="32-bit float or 8-bit fixed point (default: a checkpoint's --quant-bits, else 32)")
    parser.add_argument("--hardware", choices=HARDWARE, default="opcount", help="op-count energy or the paper's accelerator model")
    parser.add_argument("--conventions", choices=("ours", "public"), default="ours", help="accelerator: how shift/add ops move data")
    parser.add_argument("--search-space", help="validate the subnet against this space")
    parser.add_argument("--include-embeddings", action="store_true", help="also charge the output projection")
    parser.add_argument("--memory", action="store_true", help="op-count: add a DRAM traffic term (weights + activations once)")
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument("--data", metavar="DIR", help="take the vocabulary size from this binarized data dir (its dict.*.txt)")
    vocab.add_argument("--checkpoint", metavar="CKPT", help="take the vocabulary size from this trained checkpoint")
    vocab.add_argument("--vocab-size", type=int, default=32000,
                       help="joined vocabulary size (params, output projection) when neither --data nor --checkpoint is given")
    parser.add_argument("--weight-sharing", choices=WEIGHT_SHARING_MODES, default="none",
                        help="the supernet's weight sharing (changes params, not ops)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_verbose(parser)
    return parser


@user_errors_to_exit
def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    if not 1 <= args.tokens <= MAX_TOKENS:
        raise InvalidInput(f"--tokens must be from 1 to {MAX_TOKENS}, got {args.tokens}")
    checkpoint = args.subnet.endswith(".pt")
    args.bits = args.bits or (checkpoint_bits(args.subnet) if checkpoint else 32)
    if args.search_space:
        space = SearchSpace.from_file(args.search_space)
        subnet = space.load_subnet(args.subnet)
    else:
        space, subnet = None, checkpoint_subnet(args.subnet) if checkpoint else load_subnet_file(args.subnet)
    coster = SubnetCoster(space, vocab_size=vocab_size(args), weight_sharing=args.weight_sharing)
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


def vocab_size(args: argparse.Namespace) -> int:
    """--data's, else --checkpoint's, else a checkpoint given as the subnet's, else --vocab-size."""
    if args.data:
        return data_vocab_size(args.data)
    if args.checkpoint or args.subnet.endswith(".pt"):
        return checkpoint_vocab_size(args.checkpoint or args.subnet)
    return args.vocab_size


def format_report(report: dict, args: argparse.Namespace) -> str:
    """The report as a table: op counts (M) and energy per layer; the accelerator's latency and
    energy breakdown (compute, DRAM, buffer, NoC, RF) when present, the DRAM term with ``--memory``."""
    total = report["total"]
    extra = [key for key in ("latency_ms", "memory_energy_mj") if key in total]
    parts = list(total.get("breakdown", {}))
    header = (f"{'layer':<22}{'mult (M)':>12}{'add (M)':>12}{'shift (M)':>12}{'energy (mJ)':>14}"
              + "".join(f"{e:>16}" for e in extra) + "".join(f"{p + ' (mJ)':>14}" for p in parts))
    lines = [f"{args.subnet}: {args.hardware}, {args.bits}-bit, {args.tokens} tokens", header]
    for row in report["layers"] + [dict(total, name="total")]:
        line = f"{row['name']:<22}{row['mult'] / 1e6:>12.2f}{row['add'] / 1e6:>12.2f}{row['shift'] / 1e6:>12.2f}{row['energy_mj']:>14.4f}"
        line += "".join(f"{row[e]:>16.4f}" for e in extra)
        lines.append(line + "".join(f"{row['breakdown'][p]:>14.4f}" for p in parts))
    lines.append(f"params: {total['params'] / 1e6:.2f} M")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
