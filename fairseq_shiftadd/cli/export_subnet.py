"""``shiftadd-export-subnet SUPERNET.pt SUBNET.yml OUT.pt``: a subnet of a supernet as a standalone model.

The output is a regular fairseq checkpoint of ``--arch shiftadd_transformer`` (only the chosen
operators and sizes), usable with ``fairseq-generate --path OUT.pt`` or to initialise retraining:
``fairseq-train --arch shiftadd_transformer --subnet SUBNET.yml --finetune-from-model OUT.pt`` (or
``shiftadd-retrain SUBNET.yml DATA SAVE --inherit-from SUPERNET.pt``, which exports and fine-tunes in one step). The weights of a supernet trained with plain
or heterogeneous sharing are converted to one weight per operator (``--weight-sharing none``, the
standalone default); ``--keep-weight-sharing`` keeps its one shared tensor per position, and
fine-tuning then needs the supernet's ``--weight-sharing``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..checkpoint_compat import load_weights_only
from ..files import atomic_path
from ..models.export import export_subnet, supernet_space
from ..errors import MissingInput, user_errors_to_exit


def write_export(supernet: str | Path, subnet_file: str | Path, out: str | Path, keep_weight_sharing: bool = False) -> dict:
    """Export ``subnet_file``'s subnet of the ``supernet`` checkpoint to ``out`` (written atomically); the exported
    checkpoint."""
    if not Path(supernet).is_file():
        raise MissingInput(f"supernet checkpoint {supernet} does not exist")
    state = load_weights_only(supernet)
    subnet = supernet_space(state).load_subnet(subnet_file)
    exported = export_subnet(state, subnet, keep_weight_sharing=keep_weight_sharing)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(out)) as tmp:
        torch.save(exported, tmp)
    return exported


@user_errors_to_exit
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shiftadd-export-subnet", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("supernet", help="supernet checkpoint (fairseq-train --arch shiftadd_supernet_*)")
    parser.add_argument("subnet", help="subnet YAML")
    parser.add_argument("out", help="output checkpoint")
    parser.add_argument("--keep-weight-sharing", action="store_true",
                        help="keep the supernet's weight layout (one shared tensor per position) instead of converting "
                             "it to --weight-sharing none; fine-tune it with the supernet's --weight-sharing")
    args = parser.parse_args(argv)
    exported = write_export(args.supernet, args.subnet, args.out, keep_weight_sharing=args.keep_weight_sharing)
    params = sum(t.numel() for t in exported["model"].values() if t.is_floating_point())
    sharing = exported["cfg"]["model"].get("weight_sharing", "none")
    sharing_option = f" --weight-sharing {sharing}" if sharing != "none" else ""
    print(f"wrote {args.out}: {params / 1e6:.2f} M weights ({len(exported['model'])} tensors); to fine-tune it: fairseq-train "
          f"--arch shiftadd_transformer --subnet {args.subnet}{sharing_option} --finetune-from-model {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
