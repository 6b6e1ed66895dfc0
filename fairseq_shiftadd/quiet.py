"""Quiet output: the known-harmless messages of fairseq 0.12, hydra 1.3 and torch, silenced by their text.

Each entry below is one message these libraries print on every run that says nothing about the
user's job (a deprecated hydra API fairseq calls, an optional fairseq dependency for another task,
pinned memory without a GPU). Nothing else is filtered. ``SHIFTADD_VERBOSE=1`` (what ``-v`` sets)
keeps them all.
"""
from __future__ import annotations

import logging
import os
import warnings

# (category, start of the message): matched as warnings' message regex, so at the message's start.
HARMLESS_WARNINGS = [
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"In '\w+': Usage of deprecated keyword in package header"),
    (UserWarning, r"\s*'\w+' is validated against ConfigStore schema with the same name"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
    # fairseq's MultiheadAttention gives torch a bool padding mask and a float causal mask; torch converts both
    (UserWarning, r"Support for mismatched key_padding_mask and attn_mask is deprecated"),
    (DeprecationWarning, r"`torch\.jit\.script` is deprecated"),
    (FutureWarning, r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated"),
    (FutureWarning, r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated"),
]
# (logger, start of the message): fairseq logs these when it is imported.
HARMLESS_LOG_LINES = [
    ("fairseq.tasks.text_to_speech", "Please install tensorboardX"),
    ("hydra.core.utils", "Setting JobRuntime:name="),
]


def verbose() -> bool:
    return os.environ.get("SHIFTADD_VERBOSE", "") not in ("", "0")


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def silence_known_noise() -> None:
    """Install the filters (once; a no-op under ``SHIFTADD_VERBOSE=1``)."""
    if verbose():
        return
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, start in HARMLESS_LOG_LINES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.start == start for f in logger.filters):
            logger.addFilter(_DropMessage(start))


def set_verbosity(verbose_flag: bool) -> None:
    """A command's log level: warnings only, or (``-v``) fairseq's INFO lines and the silenced
    messages too. fairseq configures the root logger at INFO when it is imported."""
    if verbose_flag:
        os.environ["SHIFTADD_VERBOSE"] = "1"  # the commands it starts keep the detail too
        warnings.resetwarnings()
        for name, start in HARMLESS_LOG_LINES:
            logger = logging.getLogger(name)
            for log_filter in [f for f in logger.filters if isinstance(f, _DropMessage)]:
                logger.removeFilter(log_filter)
    logging.getLogger().setLevel(logging.INFO if verbose_flag or verbose() else logging.WARNING)
