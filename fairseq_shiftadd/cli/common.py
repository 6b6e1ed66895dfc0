"""What every console command shares: user errors as one line on stderr, never a traceback."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Callable

import fairseq_shiftadd  # registers the plugin and the weights-only allow-list

USER_DIR = os.path.dirname(fairseq_shiftadd.__file__)  # what --user-dir is given

USER_ERRORS = (ValueError, FileNotFoundError, KeyError)


def user_errors_to_exit(main: Callable[..., int | None]) -> Callable[..., int]:
    """Run ``main``; a user mistake (ValueError & co.) prints ``error: ...`` and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr)
        try:
            return main(*args, **kwargs) or 0
        except USER_ERRORS as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"{sys.argv[0].rsplit('/', 1)[-1]}: error: {message}", file=sys.stderr)
            return 2

    return wrapper
