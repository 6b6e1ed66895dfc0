"""One line, not a traceback, when fairseq-train/-generate stop on a user mistake the plugin detected.

fairseq's command-line tools let exceptions escape with a traceback. When the plugin is loaded,
a ValueError or FileNotFoundError raised by the plugin's own code (a subnet outside the space, a
malformed latency file, a missing search space) is a mistake in the user's input whose message
already says what is wrong: print ``error: <message>`` and exit with status 2. Every other
exception keeps Python's full traceback.
"""
from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def raised_by_plugin(tb: TracebackType | None) -> bool:
    frames = traceback.extract_tb(tb)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIR)


def _excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None, fallback=sys.excepthook) -> None:
    if issubclass(kind, (ValueError, FileNotFoundError)) and raised_by_plugin(tb):
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fairseq"
        print(f"{program}: error: {str(error).splitlines()[0] if str(error) else kind.__name__}", file=sys.stderr)
        sys.exit(2)
    fallback(kind, error, tb)


def install() -> None:
    """Route the plugin's user errors through :func:`_excepthook` (idempotent)."""
    if getattr(sys.excepthook, "__name__", "") != "_excepthook":
        sys.excepthook = _excepthook
