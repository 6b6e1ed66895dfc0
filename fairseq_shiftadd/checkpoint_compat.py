"""Make fairseq checkpoints load under torch's weights-only unpickler (torch >= 2.6).

fairseq 0.12 calls ``torch.load`` without ``weights_only``, which since torch 2.6 means
weights-only loading: only tensors, containers and allow-listed types may be unpickled. Plain
fairseq checkpoints hold one other type, ``argparse.Namespace`` (the legacy ``args``); the
best-checkpoint bookkeeping may hold numpy scalars. We allow-list exactly these data-only types
instead of switching the safe loader off: loading a checkpoint must never run arbitrary code.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def _numpy_scalar_types() -> list:
    """The globals a pickled numpy scalar references (numpy 1 and 2 spell the module differently)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return [scalar, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.int64))]


SAFE_CHECKPOINT_GLOBALS: list = [argparse.Namespace, *_numpy_scalar_types()]


def allow_fairseq_checkpoints() -> None:
    """Register the data-only types of fairseq checkpoints with torch's weights-only loader."""
    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
