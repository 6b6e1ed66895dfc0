"""Checkpoint writes that survive a kill at any instant, and a resume that skips a broken last checkpoint.

fairseq 0.12 writes a checkpoint once (``checkpoint_utils.torch_persistent_save``: a ``.tmp`` file
renamed, never flushed to disk) and then copies it to the other names it is saved as
(``checkpoint_best.pt`` -> ``checkpoint_last.pt``) with a plain, non-atomic file copy: a kill during
the copy leaves an empty or truncated ``checkpoint_last.pt`` that every later resume dies on.
:func:`make_checkpoint_writes_atomic` points ``checkpoint_utils`` at a write and a copy that go
through :func:`files.atomic_path` (temporary file, fsync, rename), and wraps its
``load_checkpoint`` so that a resume finding a broken ``checkpoint_last.pt`` continues from the
newest readable checkpoint of the save dir with a one-line warning.
"""
from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager
from omegaconf import open_dict

from .checkpoint_compat import load_weights_only
from .errors import InvalidInput, UserError
from .files import atomic_path
from .space import SearchSpace
from .warm_start import warm_start_fresh_training

logger = logging.getLogger(__name__)

DEFAULT_RESTORE_FILE = "checkpoint_last.pt"  # fairseq's default --restore-file
_FAIRSEQ_SAVE = checkpoint_utils.torch_persistent_save  # for remote paths and asynchronous writes


def _local(path: str) -> bool:
    return not PathManager.path_requires_pathmanager(path)


def save_checkpoint_atomically(obj: Any, filename: str, async_write: bool = False) -> None:
    """``torch.save`` to ``filename`` via a temporary file, fsync and rename (fairseq's signature)."""
    if async_write or not _local(filename):
        return _FAIRSEQ_SAVE(obj, filename, async_write)
    with atomic_path(filename) as tmp:
        torch.save(obj, tmp)


class AtomicCopyPathManager(PathManager):
    """fairseq's ``PathManager`` whose ``copy`` of a local file is atomic (the copy a kill used to truncate)."""

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not (_local(src_path) and _local(dst_path)):
            return PathManager.copy(src_path, dst_path, overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        with atomic_path(dst_path) as tmp:
            shutil.copyfile(src_path, tmp)
        return True


def is_readable_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a complete checkpoint: a zip archive whose members all pass their CRC (a
    file in torch's legacy format is loaded instead)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is None
        except (zipfile.BadZipFile, OSError, EOFError):
            return False
    try:
        load_weights_only(path)
    except UserError:
        return False
    return True


def readable_fallback(save_dir: str | os.PathLike, broken: str | os.PathLike, suffix: str = "") -> Path | None:
    """The newest (by modification time) readable ``checkpoint*{suffix}.pt`` of ``save_dir`` other than ``broken``."""
    candidates = [p for p in Path(save_dir).glob(f"checkpoint*{suffix}.pt") if p.resolve() != Path(broken).resolve()]
    for candidate in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        if is_readable_checkpoint(candidate):
            return candidate
    return None


def check_resumed_space(path: str, trainer) -> None:
    """A supernet resumed from ``path`` must be the one trained there: raise :class:`SpaceError` naming both
    spaces when the run's ``--search-space`` differs from the space ``path`` stores (fairseq would
    otherwise stop on a tensor-size mismatch)."""
    model = getattr(trainer.model, "module", trainer.model)
    space = getattr(model, "search_space", None)
    if space is None:
        return
    stored = ((load_weights_only(path).get("cfg") or {}).get("model") or {}).get("search_space_config")
    if stored:
        trained = SearchSpace.from_dict(yaml.safe_load(stored), name_hint="checkpoint")
        given = getattr(trainer.cfg.task, "search_space", None) or "the run's --search-space"
        space.check_trained_on(trained, f"--search-space {given}", checkpoint=path)


def resume_from_readable(load_checkpoint: Callable) -> Callable:
    """Wrap fairseq's ``checkpoint_utils.load_checkpoint(cfg, trainer, ...)``: when the default restore
    file ``checkpoint_last.pt`` exists but is broken, restore the newest readable checkpoint instead; a run
    that restores nothing starts from ``--init-from-supernet`` when given (:mod:`.warm_start`)."""

    def load_readable_checkpoint(cfg, trainer, **passthrough_args):
        suffix = trainer.checkpoint_suffix or ""
        last = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
        resumes_last = cfg.restore_file == DEFAULT_RESTORE_FILE and os.path.exists(last)
        given_starts = {"--restore-file": cfg.restore_file if cfg.restore_file != DEFAULT_RESTORE_FILE else None,
                        "--finetune-from-model": cfg.finetune_from_model}
        warm_start_fresh_training(trainer, resuming=resumes_last,
                                  other_starts={option: value for option, value in given_starts.items() if value})
        return load_resumable(cfg, trainer, suffix, last, resumes_last, **passthrough_args)

    def load_resumable(cfg, trainer, suffix: str, last: str, resumes_last: bool, **passthrough_args):
        if not resumes_last or is_readable_checkpoint(last):
            if resumes_last:
                check_resumed_space(last, trainer)
            return load_checkpoint(cfg, trainer, **passthrough_args)
        fallback = readable_fallback(cfg.save_dir, last, suffix)
        if fallback is None:
            raise InvalidInput(f"{last} is empty or truncated and {cfg.save_dir} holds no other readable checkpoint; "
                               "delete it to train from scratch")
        logger.warning(f"{last} is empty or truncated (a run killed while saving); resuming from {fallback.name} instead")
        with open_dict(cfg):
            cfg.restore_file = str(fallback)[: -len(f"{suffix}.pt")] + ".pt"  # fairseq appends the suffix again
        try:
            return load_checkpoint(cfg, trainer, **passthrough_args)
        finally:
            with open_dict(cfg):
                cfg.restore_file = DEFAULT_RESTORE_FILE

    load_readable_checkpoint.wrapped = load_checkpoint
    return load_readable_checkpoint


def make_checkpoint_writes_atomic() -> None:
    """Point fairseq's checkpoint writes at the atomic ones and its resume at :func:`resume_from_readable` (idempotent)."""
    checkpoint_utils.torch_persistent_save = save_checkpoint_atomically
    checkpoint_utils.PathManager = AtomicCopyPathManager
    if not hasattr(checkpoint_utils.load_checkpoint, "wrapped"):
        checkpoint_utils.load_checkpoint = resume_from_readable(checkpoint_utils.load_checkpoint)
