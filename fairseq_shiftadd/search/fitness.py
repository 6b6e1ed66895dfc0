"""Fitness of the evolutionary search: a subnet's validation loss with inherited supernet weights.

The validation batches are collated once and reused for every subnet, so candidates are compared
on exactly the same sentences; the loss is the token-level cross-entropy in bits (no label
smoothing), the quantity fairseq reports as ``nll_loss``. Test data is never read.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from fairseq import checkpoint_utils, tasks, utils
from fairseq.data import data_utils
from omegaconf import open_dict

from ..errors import InvalidInput, MissingInput
from ..space import SearchSpace, Subnet


class SupernetFitness:
    """Validation loss (bits per token) of subnets of a trained supernet.

    Args:
        data: the binarized data directory (fairseq-preprocess output).
        checkpoint: supernet checkpoint.
        space: the search space; its genes must match the supernet's.
        valid_subset: split to score (never ``test``).
        max_sentences: use at most this many validation sentences (the first ones, a fixed subset).
        max_tokens: batch size in tokens.
    """

    def __init__(
        self, data: str, checkpoint: str, space: SearchSpace, valid_subset: str = "valid",
        max_sentences: Optional[int] = None, max_tokens: Optional[int] = 4096, cpu: bool = True,
    ):
        if "test" in valid_subset:
            raise InvalidInput(f"--valid-subset {valid_subset}: the search must not select on test data")
        if not Path(checkpoint).is_file():
            raise MissingInput(f"supernet checkpoint {checkpoint} does not exist")
        state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
        cfg = state["cfg"]
        if not cfg.model.get("search_space_config"):
            raise InvalidInput(f"{checkpoint} is a {cfg.model._name} checkpoint, expected a shiftadd_supernet_* one")
        with open_dict(cfg):
            cfg.task.data = data
            cfg.task.search_space = None  # the space is the one stored in cfg.model (older checkpoints also kept a path)
        self.task = tasks.setup_task(cfg.task)
        self.model = self.task.build_model(cfg.model)
        space.check_trained_on(self.model.search_space, f"--search-space {space.path or space.name}", f"supernet {checkpoint}")
        self.model.load_state_dict(state["model"])
        self.model.eval()
        self.device = torch.device("cpu" if cpu or not torch.cuda.is_available() else "cuda")
        self.model.to(self.device)
        self.space = space
        self.batches = self._fixed_batches(valid_subset, max_sentences, max_tokens)

    def _fixed_batches(self, subset: str, max_sentences: Optional[int], max_tokens: Optional[int]) -> list[dict]:
        self.task.load_dataset(subset)
        dataset = self.task.dataset(subset)
        indices = np.arange(min(max_sentences or len(dataset), len(dataset)), dtype=np.int64)
        indices = indices[np.argsort([dataset.num_tokens(i) for i in indices], kind="stable")]
        batches = data_utils.batch_by_size(indices, dataset.num_tokens, max_tokens=max_tokens or 4096)
        collated = [dataset.collater([dataset[i] for i in batch]) for batch in batches]
        return [utils.move_to_cuda(sample, self.device) for sample in collated] if self.device.type == "cuda" else collated

    @torch.no_grad()
    def loss(self, subnet: Subnet) -> float:
        self.space.validate(subnet)
        self.model.set_subnet(self.space.complete(subnet))
        total, tokens = 0.0, 0
        pad = self.task.target_dictionary.pad()
        for sample in self.batches:
            net_output = self.model(**sample["net_input"])
            lprobs = self.model.get_normalized_probs(net_output, log_probs=True)
            target = sample["target"]
            nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            mask = target.ne(pad)
            total += float(nll[mask].sum())
            tokens += int(mask.sum())
        return total / max(tokens, 1) / math.log(2)

    def losses(self, subnets: list[Subnet]) -> list[float]:
        return [self.loss(subnet) for subnet in subnets]
