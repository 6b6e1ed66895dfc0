"""Average the weights of several fairseq checkpoints (the last N epochs, as HAT and Vaswani do).

fairseq's ``scripts/average_checkpoints.py`` is not installed with the wheel, so this is ours. It
loads checkpoints with torch's weights-only unpickler (never running code from a file) and keeps
everything but the model weights from the newest checkpoint; the optimizer state is dropped
because an averaged model is for decoding, not for resuming.

Usage::

    shiftadd-average --dir OUT --last 10 --output OUT/checkpoint_avg10.pt
    shiftadd-average --dir OUT --last 5 --kind interval --output OUT/checkpoint_avg5.pt
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..checkpoint_compat import load_weights_only
from ..files import atomic_path
from ..errors import InvalidInput, MissingInput, user_errors_to_exit

EPOCH_CHECKPOINT = re.compile(r"checkpoint(\d+)\.pt")
# fairseq's --save-interval-updates files: checkpoint_EPOCH_UPDATES.pt
INTERVAL_CHECKPOINT = re.compile(r"checkpoint_\d+_(\d+)\.pt")


def last_checkpoints(directory: str | Path, count: int, kind: str = "epoch") -> list[Path]:
    """The ``count`` newest checkpoints of a save dir, oldest first: ``checkpointN.pt`` files (``kind``
    "epoch") or ``checkpoint_E_U.pt`` files of ``--save-interval-updates`` ("interval", ordered by U)."""
    if count < 1:
        raise InvalidInput(f"count must be >= 1, got {count}")
    directory = Path(directory)
    pattern = {"epoch": EPOCH_CHECKPOINT, "interval": INTERVAL_CHECKPOINT}[kind]
    found = sorted(
        (int(match.group(1)), path)
        for path in directory.glob("checkpoint*.pt")
        if (match := pattern.fullmatch(path.name))
    )
    if len(found) < count:
        raise InvalidInput(f"{directory} has {len(found)} {kind} checkpoints, fewer than the {count} to average")
    return [path for _, path in found[-count:]]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"checkpoint {path} does not exist")
    return load_weights_only(path)


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The newest checkpoint's state with ``model`` replaced by the mean of all ``model``s.

    Floating tensors are averaged in float64 and cast back; other tensors (step counters,
    integer buffers) must agree across checkpoints and are kept.
    """
    if not paths:
        raise InvalidInput("paths: at least one checkpoint is required")
    sums: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    for path in paths:
        state = load_checkpoint(path)
        model = state["model"]
        if sums and model.keys() != sums.keys():
            raise InvalidInput(f"{path} has other parameters than {paths[0]}; only checkpoints of one model can be averaged")
        for name, tensor in model.items():
            if tensor.is_floating_point():
                sums[name] = sums[name] + tensor.double() if name in sums else tensor.double()
            elif name in sums and not torch.equal(sums[name], tensor):
                raise InvalidInput(f"{path}: non-float tensor {name} differs from {paths[0]}; cannot average it")
            else:
                sums[name] = tensor
    newest = state["model"]
    state["model"] = {
        name: (total / len(paths)).to(newest[name].dtype) if newest[name].is_floating_point() else total
        for name, total in sums.items()
    }
    state["last_optimizer_state"] = None
    return state


def write_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Save atomically: an interrupted save never leaves a truncated checkpoint behind."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


@user_errors_to_exit
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shiftadd-average", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", nargs="+", help="checkpoints to average")
    source.add_argument("--dir", help="a fairseq save dir; with --last N, average its N newest checkpoints of --kind")
    parser.add_argument("--last", type=int, default=10, help="how many checkpoints to average with --dir")
    parser.add_argument("--kind", choices=("epoch", "interval"), default="epoch",
                        help="with --dir: epoch checkpoints (checkpointN.pt) or those of --save-interval-updates "
                             "(checkpoint_E_U.pt, newest by U)")
    parser.add_argument("--output", required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    paths = args.inputs or last_checkpoints(args.dir, args.last, args.kind)
    write_checkpoint(average_checkpoints(paths), args.output)
    print(f"averaged {len(paths)} checkpoints ({', '.join(Path(p).name for p in paths)}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
