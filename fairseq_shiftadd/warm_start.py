"""Warm-starting a supernet: a fresh training begins from the weights another supernet shares with it.

A supernet of a sub-space holds a subset of a larger space's tensors under the same names and shapes
when both share weights the same way: the multiplication-only supernet (HAT's space) of
``configs/spaces/multi30k-mult.yml`` holds 128 of the 230 tensors of the hybrid one of
``configs/spaces/multi30k.yml`` under ``--weight-sharing heterogeneous`` (9.63 M of 10.83 M
parameters), since shift and add FFNs reuse the multiplication's shared weights (paper, Sec. 3.2).
``--init-from-supernet CKPT`` (``shiftadd_supernet_translation``) copies them into a supernet whose
training starts from scratch, leaves the rest as initialised, and is ignored once the run resumes
from a checkpoint of its own (BENCHMARKS.md, "A hybrid supernet warm-started").
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from .checkpoint_compat import load_weights_only
from .errors import InvalidInput, MissingInput

logger = logging.getLogger(__name__)
OPTION = "--init-from-supernet"


@dataclass(frozen=True)
class CopiedWeights:
    tensors: int
    of_tensors: int
    parameters: int
    of_parameters: int

    def __str__(self) -> str:
        return (f"{self.tensors} of {self.of_tensors} tensors, {self.parameters / 1e6:.2f} M of "
                f"{self.of_parameters / 1e6:.2f} M parameters")


def copy_shared_weights(model: torch.nn.Module, source: str | os.PathLike) -> CopiedWeights:
    """Copy every tensor of the checkpoint ``source`` into ``model`` (same name, same shape).

    Raises:
        MissingInput: ``source`` does not exist.
        InvalidInput: it holds no model weights, or a tensor ``model`` lacks or holds in another shape.
    """
    if not os.path.isfile(source):
        raise MissingInput(f"{OPTION}: checkpoint {source} does not exist")
    state = load_weights_only(source)
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise InvalidInput(f"{OPTION}: {source} holds no model weights (expected a checkpoint written by fairseq-train)")
    target = model.state_dict()
    for name, tensor in weights.items():
        if name not in target:
            raise InvalidInput(f"{OPTION}: {source} holds {name}, which the supernet being trained lacks (expected "
                               "a supernet of a sub-space trained with the same --weight-sharing)")
        if target[name].shape != tensor.shape:
            raise InvalidInput(f"{OPTION}: {source} holds {name} of shape {tuple(tensor.shape)}, the supernet being "
                               f"trained {tuple(target[name].shape)} (expected the same dictionaries, dimensions and "
                               "--weight-sharing)")
    with torch.no_grad():
        for name, tensor in weights.items():
            target[name].copy_(tensor)
    return CopiedWeights(
        len(weights), len(target), sum(t.numel() for t in weights.values()), sum(t.numel() for t in target.values()),
    )


def warm_start_fresh_training(trainer, resuming: bool, other_starts: dict[str, str]) -> None:
    """Before fairseq's checkpoint load (and before the optimizer copies the weights, as ``--fp16`` does): a run
    starting from scratch begins from its task's ``--init-from-supernet``; a resumed run ignores it.

    Raises:
        InvalidInput: ``--init-from-supernet`` given with ``other_starts`` ({option: value}, e.g. ``--finetune-from-model``).
    """
    source = getattr(trainer.cfg.task, "init_from_supernet", None)
    if not source:
        return
    if resuming:
        logger.info(f"{OPTION} {source} ignored: the run resumes from its own checkpoint")
        return
    if other_starts:
        option, value = next(iter(other_starts.items()))
        raise InvalidInput(f"{OPTION} and {option} {value} both give the starting weights: give one of them")
    copied = copy_shared_weights(getattr(trainer.model, "module", trainer.model), source)
    logger.info(f"warm start from {source}: {copied}")
