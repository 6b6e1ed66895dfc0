"""Weights-only checkpoint loading, for fairseq's loaders and ours (torch >= 2.6).

Loading a checkpoint must never run code. Every load passes ``weights_only=True`` explicitly, so
no environment variable (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) can switch the safe unpickler off;
fairseq 0.12 calls ``torch.load`` without the argument, so :func:`allow_fairseq_checkpoints`
points its ``checkpoint_utils`` at a ``torch`` whose ``load`` is :func:`load_weights_only`.

Plain fairseq checkpoints hold one type besides tensors and containers, ``argparse.Namespace``
(the legacy ``args``); the best-checkpoint bookkeeping may hold numpy scalars. We allow-list
exactly these data-only types. A checkpoint holding anything else is refused with one line
naming the file and the refused type; an empty or truncated file gets one line too.

Every loaded checkpoint also passes through the upgrades registered with
:func:`register_checkpoint_upgrade` (the models register theirs: models/config.py), so fairseq's
loaders see an old checkpoint as it must be read today.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import types
from typing import IO, Any, Callable

import numpy as np
import torch

from .errors import InvalidInput


def _numpy_scalar_types() -> list:
    """The globals a pickled numpy scalar references (numpy 1 and 2 spell the module differently)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return [scalar, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.int64))]


SAFE_CHECKPOINT_GLOBALS: list = [argparse.Namespace, *_numpy_scalar_types()]


_CHECKPOINT_UPGRADES: list[Callable[[dict], None]] = []


def register_checkpoint_upgrade(upgrade: Callable[[dict], None]) -> Callable[[dict], None]:
    """Decorator: ``upgrade(state)`` edits every loaded checkpoint dict in place (it must ignore the ones not its own)."""
    _CHECKPOINT_UPGRADES.append(upgrade)
    return upgrade


def _file_name(source: str | os.PathLike | IO[bytes]) -> str:
    """The path of a checkpoint given as a path or as an open file."""
    return str(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", "<checkpoint stream>"))


def _refused_type(message: str) -> str:
    """The type torch's weights-only unpickler refused, from its message (e.g. ``posix.system``)."""
    found = re.search(r"GLOBAL (\S+)", message) or re.search(r"(?:for|type|global) <?([\w.]+)", message)
    return found.group(1) if found else message.split(".")[0].strip()


def load_weights_only(source: str | os.PathLike | IO[bytes], map_location: Any = "cpu", **kwargs: Any) -> Any:
    """``torch.load(source, weights_only=True)``; a refused or unreadable checkpoint is one line.

    Raises:
        InvalidInput: the file holds a type outside the allow-list, or is empty, truncated or no checkpoint.
    """
    kwargs.pop("weights_only", None)  # never anything but True
    name = _file_name(source)
    try:
        state = torch.load(source, map_location=map_location, weights_only=True, **kwargs)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text:
            detail = text.split("Weights only load failed.", 1)[1]
            raise InvalidInput(
                f"checkpoint {name}: refused to unpickle {_refused_type(detail)} (weights-only loading allows tensors, "
                "containers and fairseq's data types; loading a checkpoint never runs its code)"
            ) from None
        raise InvalidInput(f"checkpoint {name} is not a PyTorch checkpoint ({text.splitlines()[0]})") from None
    except (EOFError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "PytorchStreamReader" not in str(err) and "zip" not in str(err):
            raise
        raise InvalidInput(f"checkpoint {name} is empty or truncated (was its writer killed?)") from None
    if isinstance(state, dict):
        for upgrade in _CHECKPOINT_UPGRADES:
            upgrade(state)
    return state


class _WeightsOnlyTorch(types.ModuleType):
    """``torch`` as fairseq's ``checkpoint_utils`` sees it: everything torch's, but ``load`` is weights-only."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    load = staticmethod(load_weights_only)


def allow_fairseq_checkpoints() -> None:
    """Allow-list fairseq's data-only checkpoint types and make fairseq's loaders weights-only (idempotent)."""
    from fairseq import checkpoint_utils

    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
    if not isinstance(checkpoint_utils.torch, _WeightsOnlyTorch):
        checkpoint_utils.torch = _WeightsOnlyTorch()
