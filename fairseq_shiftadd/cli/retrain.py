"""``shiftadd-retrain``: retrain a searched subnet with the paper's recipe, from its supernet weights or from scratch.

``retrain SUBNET.yml DATA OUT [fairseq-train args]`` runs ``fairseq-train --arch
shiftadd_transformer --subnet SUBNET.yml`` with HAT's subnet recipe: Adam (0.9, 0.98), lr 1e-3,
4k warmup then cosine to 1e-7 over 40k updates, label smoothing 0.1, dropout 0.3. For small data,
scale it down with ``--max-update`` and ``--warmup-updates``; any other fairseq-train option given
after the positionals is passed on and overrides the recipe.

Checkpoints are selected on the validation loss only: the test split may not be a validation
subset (the public code picked its best epoch by test BLEU). ``--average-last N`` averages the
last N epoch checkpoints into ``OUT/checkpoint_avg_lastN.pt`` after training.

``--teacher CKPT`` retrains with word-level knowledge distillation from a trained model with the same
dictionary (``--criterion word_distillation``, README); its effect on Multi30k is
measured in BENCHMARKS.md (issue 20).

A search's ``best.yml`` starts from the subnet's weights in the supernet the search scored it with
(recorded in the ``state.json`` beside it) instead of a random initialisation; ``--inherit-from
SUPERNET.pt`` names the supernet for any other subnet file, ``--from-scratch`` gives the paper's plain
recipe. On Multi30k this fine-tuning is worth 4.3 BLEU to the searched hybrid at equal retraining
updates (BENCHMARKS.md, issue 20). The subnet is exported once to
``OUT/inherited.pt`` (``shiftadd-export-subnet``) and fairseq-train fine-tunes it with the same recipe
(``--finetune-from-model``: fresh optimizer and schedule); a rerun resumes from
``OUT/checkpoint_last.pt`` as usual.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from ..recipes import retrain_recipe
from ..space import load_subnet_file
from .average import average_checkpoints, last_checkpoints, write_checkpoint
from .export_subnet import write_export
from .search import searched_with
from ..errors import InvalidInput, MissingInput, user_errors_to_exit
from .common import USER_DIR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftadd-retrain", description=__doc__.split("\n\n")[0],
        epilog="Other options go to fairseq-train unchanged.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("subnet", help="subnet YAML (e.g. the search's best.yml)")
    parser.add_argument("data", help="binarized data directory")
    parser.add_argument("out", help="save dir for checkpoints")
    parser.add_argument("--max-update", type=int, default=40000, help="training updates (cosine period ends here)")
    parser.add_argument("--warmup-updates", type=int, default=4000, help="linear warmup updates")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch")
    parser.add_argument("--valid-subset", default="valid", help="validation subset(s) for checkpoint selection")
    parser.add_argument("--average-last", type=int, default=0, help="average the last N epoch checkpoints (0: off)")
    parser.add_argument("--teacher", default="", help="distil from this trained checkpoint (same dictionary); "
                                                      "empty: the paper's plain label-smoothed recipe")
    parser.add_argument("--distill-weight", type=float, default=0.5, help="with --teacher: weight of the teacher's "
                                                                          "distribution in the training loss")
    parser.add_argument("--inherit-from", default="", metavar="SUPERNET.pt",
                        help="fine-tune from the subnet's weights in this trained supernet (exported to OUT/inherited.pt); "
                             "empty: the supernet a search's best.yml was scored with (its state.json), "
                             "else from scratch")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train from a random initialisation (the paper's plain recipe), even for a search's best.yml")
    return parser


def supernet_to_inherit(args: argparse.Namespace) -> str:
    """The supernet checkpoint to fine-tune from: ``--inherit-from``, else the one the subnet's search
    used; empty for ``--from-scratch`` and for subnet files that no search wrote."""
    if args.from_scratch:
        return ""
    if args.inherit_from:
        return args.inherit_from
    supernet = searched_with(args.subnet)
    if supernet is not None and not supernet.is_file():
        raise MissingInput(f"{args.subnet} was searched on the supernet {supernet}, which does not exist; "
                           "give --inherit-from SUPERNET.pt or --from-scratch")
    return "" if supernet is None else str(supernet)


def inherited_weights(args: argparse.Namespace) -> Path:
    """Where the subnet's exported supernet weights are kept: the run's own directory."""
    return Path(args.out) / "inherited.pt"


def train_command(args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    """The fairseq-train command line: the recipe first, so that ``extra`` options override it."""
    keep = ["--keep-last-epochs", str(args.average_last)] if args.average_last else ["--no-epoch-checkpoints"]
    distil = (["--criterion", "word_distillation", "--teacher", args.teacher, "--distill-weight", str(args.distill_weight)]
              if args.teacher else [])
    inherit = ["--finetune-from-model", str(inherited_weights(args))] if args.inherit_from else []
    return [
        sys.executable, "-m", "fairseq_cli.train", args.data,
        "--user-dir", USER_DIR, "--task", "translation",
        "--arch", "shiftadd_transformer", "--subnet", args.subnet, "--weight-sharing", "none",
        *retrain_recipe(str(args.lr), args.warmup_updates, args.max_update),
        "--max-tokens", str(args.max_tokens),
        "--valid-subset", args.valid_subset, "--best-checkpoint-metric", "loss",
        "--save-dir", args.out, *keep, *distil, *inherit,
        *extra,
    ]


def check(args: argparse.Namespace) -> None:
    """Refuse test-set selection and obviously wrong inputs before a long run starts."""
    if "test" in args.valid_subset.split(","):
        raise InvalidInput("--valid-subset must not include test: checkpoints are selected on validation data only")
    if not Path(args.data).is_dir():
        raise MissingInput(f"data directory {args.data} does not exist")
    load_subnet_file(args.subnet)
    if args.max_update < 1 or args.warmup_updates < 0 or args.warmup_updates >= args.max_update:
        raise InvalidInput(
            f"--warmup-updates ({args.warmup_updates}) must be >= 0 and below --max-update ({args.max_update})"
        )
    if args.teacher and not Path(args.teacher).is_file():
        raise MissingInput(f"--teacher {args.teacher} does not exist")
    if not 0.0 <= args.distill_weight <= 1.0:
        raise InvalidInput(f"--distill-weight must be in [0, 1], got {args.distill_weight}")
    if args.average_last < 0:
        raise InvalidInput(f"--average-last must be >= 0, got {args.average_last}")
    if args.inherit_from and args.from_scratch:
        raise InvalidInput("--inherit-from and --from-scratch exclude each other")
    if args.inherit_from and not Path(args.inherit_from).is_file():
        raise MissingInput(f"--inherit-from: supernet checkpoint {args.inherit_from} does not exist")


@user_errors_to_exit
def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    check(args)
    args.inherit_from = supernet_to_inherit(args)
    inherited = inherited_weights(args)
    resumed = (Path(args.out) / "checkpoint_last.pt").is_file()  # fairseq resumes it and ignores the export
    if args.inherit_from and not inherited.is_file() and not resumed:
        write_export(args.inherit_from, args.subnet, inherited)
        print(f"inherited weights: {inherited} (the subnet of {args.inherit_from}; "
              "--from-scratch for the paper's plain recipe)", flush=True)
    command = train_command(args, extra)
    print("+ " + shlex.join(command), flush=True)
    code = subprocess.call(command)
    if code:
        return code
    final = Path(args.out) / "checkpoint_best.pt"
    if args.average_last:
        final = Path(args.out) / f"checkpoint_avg_last{args.average_last}.pt"
        write_checkpoint(average_checkpoints(last_checkpoints(args.out, args.average_last)), final)
    print(f"retrained checkpoint: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
