"""What every console command shares: the plugin registered, the ``--user-dir`` to hand fairseq, ``-v``."""
from __future__ import annotations

import argparse
import os

import fairseq_shiftadd  # registers the plugin and the weights-only allow-list
from ..quiet import set_verbosity

USER_DIR = os.path.dirname(fairseq_shiftadd.__file__)  # what --user-dir is given


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show fairseq's log lines and the library warnings silenced by default")


def parse(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then the log level ``-v`` asks for."""
    args = parser.parse_args(argv)
    set_verbosity(args.verbose)
    return args
