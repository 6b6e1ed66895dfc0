"""User errors: bad input the user can fix, reported as one line and exit status 2, never a traceback.

Every error the package raises about the user's input (a subnet outside its space, a malformed
latency file, a missing checkpoint, an impossible budget) derives from :class:`UserError`, and its
message is one line naming the field or file and what was expected. Anything else is a bug and
keeps its traceback. ``SHIFTADD_DEBUG=1`` shows the traceback of user errors too.

Two places turn a :class:`UserError` into one line: :func:`user_errors_to_exit` around each of our
commands' ``main``, and :func:`install_excepthook`, which covers fairseq's own commands
(``fairseq-train``, ``fairseq-generate``) while they run our plugin.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from types import TracebackType
from typing import Callable

DEBUG_ENV = "SHIFTADD_DEBUG"


class UserError(Exception):
    """Input the user can fix; the message is one line naming the field or file and what was expected."""


class InvalidInput(UserError, ValueError):
    """A value (option, file content, budget) that does not fit what is expected."""


class MissingInput(UserError, FileNotFoundError):
    """A named file or directory that does not exist."""


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """The first line of an error's message (its class name when it has none)."""
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def _program() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fairseq"


def user_errors_to_exit(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a command's ``main``: a :class:`UserError` prints ``PROG: error: ...`` and returns 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr)
        try:
            return main(*args, **kwargs) or 0
        except UserError as err:
            if _debugging():
                raise
            print(f"{_program()}: error: {one_line(err)}", file=sys.stderr)
            return 2

    return wrapper


def _excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None, fallback=sys.excepthook) -> None:
    if issubclass(kind, UserError) and not _debugging():
        # sys.__stderr__: torch.distributed wraps this hook with sys.stderr captured in a buffer
        # that sys.exit would discard.
        print(f"{_program()}: error: {one_line(error)}", file=sys.__stderr__, flush=True)
        distributed = sys.modules.get("torch.distributed")
        if distributed is not None and distributed.is_available() and distributed.is_initialized():
            # An interpreter shutdown with a live process group can abort in its C++ threads
            # ("terminate called without an active exception", exit -6): leave at once instead.
            sys.stdout.flush()
            os._exit(2)
        sys.exit(2)
    fallback(kind, error, tb)


def install_excepthook() -> None:
    """Report a :class:`UserError` escaping fairseq's commands as one line, exit 2 (idempotent)."""
    if getattr(sys.excepthook, "__name__", "") != "_excepthook":
        sys.excepthook = _excepthook
