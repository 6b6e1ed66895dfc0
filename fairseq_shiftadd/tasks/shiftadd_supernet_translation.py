"""``shiftadd_supernet_translation``: fairseq's translation task, training a supernet one subnet per update.

Training samples one subnet per update uniformly over the space, as a pure function of
``(seed, update)`` so every data-parallel rank trains the same subnet; one tiny all-reduce per
update checks that the ranks agree (``--log-subnets`` logs each rank's subnets per update).
``--sandwich`` trains largest + smallest + a random subnet in the same update instead.
Validation scores the representative subnets and logs each one's loss. At generation,
``--subnet`` chooses the subnet that ``fairseq-generate`` decodes with.
"""
# No `from __future__ import annotations`: fairseq reads the config dataclasses' field types at run time.

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import metrics
from omegaconf import II
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..distributed import check_same_on_all_ranks, digest
from ..space import SearchSpace, Subnet

NAMED_SUBNETS = ("largest", "smallest", "random")
VALIDATION_SUBNETS = ("largest", "smallest", "hybrid")
subnet_logger = logging.getLogger("fairseq_shiftadd.subnets")


def is_supernet(model) -> bool:
    """Whether ``model`` holds the subnets of a search space (and runs the one set by ``set_subnet``)."""
    return getattr(model, "search_space", None) is not None and hasattr(model, "set_subnet")


@dataclass
class ShiftAddSupernetTranslationConfig(TranslationConfig):
    search_space: Optional[str] = field(
        default=None, metadata={"help": "search space YAML (configs/spaces/*.yml); read from the checkpoint if omitted"}
    )
    subnet: str = field(
        default="largest",
        metadata={"help": "subnet to run outside training: a subnet YAML file, or largest, smallest, random"},
    )
    seed: int = II("common.seed")
    sandwich: bool = field(
        default=False, metadata={"help": "train largest + smallest + one random subnet in every update (sandwich rule)"}
    )
    init_from_supernet: Optional[str] = field(
        default=None,
        metadata={"help": "start a fresh training from the weights this supernet checkpoint shares with the one trained "
                          "(same names and shapes, e.g. a multiplication-only supernet); ignored when the run resumes"},
    )
    log_subnets: bool = field(
        default=False, metadata={"help": "log every update's subnets on every data-parallel rank (fingerprints of their YAML)"}
    )


@register_task("shiftadd_supernet_translation", dataclass=ShiftAddSupernetTranslationConfig)
class ShiftAddSupernetTranslationTask(TranslationTask):
    cfg: ShiftAddSupernetTranslationConfig

    def __init__(self, cfg: ShiftAddSupernetTranslationConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.space: Optional[SearchSpace] = SearchSpace.from_file(cfg.search_space) if cfg.search_space else None
        self.checked_update: Optional[int] = None
        if cfg.log_subnets:  # fairseq logs warnings only on ranks > 0
            subnet_logger.setLevel(logging.INFO)

    def build_model(self, cfg, from_checkpoint: bool = False):
        model = super().build_model(cfg, from_checkpoint)
        if is_supernet(model):
            if self.space is not None:
                self.space.check_trained_on(model.search_space, f"--search-space {self.cfg.search_space}")
            self.space = model.search_space
            self.cfg.search_space = None  # checkpoints keep the space itself (cfg.model), never a path
            model.set_subnet(self.chosen_subnet())
        return model

    def get_batch_iterator(self, dataset, **kwargs):
        """fairseq's iterator; outside training every sentence is batched (``required_batch_size_multiple``
        1), since fairseq leaves out the remainder that does not fill a multiple of it."""
        if dataset is not self.datasets.get(self.cfg.train_subset):
            kwargs["required_batch_size_multiple"] = 1
        return super().get_batch_iterator(dataset, **kwargs)

    def chosen_subnet(self) -> Subnet:
        """The subnet named by ``--subnet`` (validated against the space)."""
        choice = self.cfg.subnet
        if choice == "largest":
            return self.space.largest()
        if choice == "smallest":
            return self.space.smallest()
        if choice == "random":
            return self.space.sample(random.Random(self.cfg.seed))
        return self.space.load_subnet(choice)

    def representative_subnets(self) -> dict[str, Subnet]:
        return {"largest": self.space.largest(), "smallest": self.space.smallest(), "hybrid": self.space.representative_hybrid()}

    def training_subnets(self, update_num: int, seed: int) -> dict[str, Subnet]:
        """The subnets one update trains: a pure function of (seed, update)."""
        sampled = self.space.sample_for_update(seed, update_num)
        if self.cfg.sandwich:
            return {"largest": self.space.largest(), "smallest": self.space.smallest(), "random": sampled}
        return {"random": sampled}

    def check_ranks_agree(self, update_num: int, subnets: dict[str, Subnet], device: torch.device) -> None:
        """Once per update: all data-parallel ranks train the same subnets (else InvalidInput), logged with --log-subnets."""
        if self.checked_update == update_num:
            return
        self.checked_update = update_num
        text = "\n".join(f"{name}: {subnet.key()}" for name, subnet in subnets.items())
        check_same_on_all_ranks(text, device, f"the subnets of update {update_num}")
        if self.cfg.log_subnets:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            names = " ".join(f"{name}={digest(subnet.key())}" for name, subnet in subnets.items())
            subnet_logger.info("update %d rank %d subnets %s", update_num, rank, names)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if not is_supernet(model):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        model.train()
        model.set_num_updates(update_num)
        subnets = self.training_subnets(update_num, self.cfg.seed)
        self.check_ranks_agree(update_num, subnets, next(model.parameters()).device)
        total_loss, logs = 0.0, {}
        for name, subnet in subnets.items():
            model.set_subnet(subnet)
            loss, sample_size, logging_output = criterion(model, sample)
            regularizer = model.regularization_loss()
            if regularizer is not None:
                loss = loss + model.kl_weight * regularizer * sample_size
                logging_output["kl"] = float(regularizer.detach()) * sample_size
            if ignore_grad:
                loss = loss * 0
            optimizer.backward(loss)
            total_loss += float(loss.detach())
            logs[name] = logging_output
        return total_loss, sample_size, _merge_subnet_logs(logs)

    def valid_step(self, sample, model, criterion):
        if not is_supernet(model):
            return super().valid_step(sample, model, criterion)
        model.eval()
        active = model.subnet
        result = None
        with torch.no_grad():
            for name, subnet in self.representative_subnets().items():
                model.set_subnet(subnet)
                loss, sample_size, logging_output = criterion(model, sample)
                if result is None:  # the largest subnet's loss selects checkpoints
                    result = (loss, sample_size, dict(logging_output))
                result[2][f"loss_{name}"] = logging_output["loss"]
        model.set_subnet(active)
        return result

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        if not sample_size:
            return
        for key in sorted({k for log in logging_outputs for k in log if k.startswith("loss_") or k == "kl"}):
            total = sum(float(log.get(key, 0)) for log in logging_outputs)
            scale = math.log(2) if key.startswith("loss_") else 1.0
            metrics.log_scalar(key, total / sample_size / scale, sample_size, round=3)


def _merge_subnet_logs(logs: dict[str, dict]) -> dict:
    """One logging output for an update: losses averaged over its subnets, each also logged by name.

    A key any subnet reports is averaged over all of them: under ``--sandwich`` the largest subnet
    (all mult operators) has no KL term, the random one may.
    """
    merged = dict(next(iter(logs.values())))
    for key in ("loss", "nll_loss", "kl"):
        if any(key in log for log in logs.values()):
            merged[key] = sum(float(log.get(key, 0)) for log in logs.values()) / len(logs)
    for name, log in logs.items():
        merged[f"loss_{name}"] = log["loss"]
    return merged
