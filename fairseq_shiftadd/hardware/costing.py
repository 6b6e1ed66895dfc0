"""Cost any subnet of a space without training or allocating it.

The space's supernet is built once on PyTorch's ``meta`` device (shapes only, no memory) and the
subnet's ops come from its modules' ``cost_ops``, the same code the trained model runs. Params are
counted on the standalone subnet model, also built on ``meta``.
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import torch
from fairseq.data import Dictionary

from ..data.sized_dictionary import dictionary_of_size
from ..models.shiftadd_supernet import ShiftAddSupernet, ShiftAddSupernetConfig
from ..models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from ..space import SearchSpace, Subnet
from .accelerator import accelerator_cost
from .energy import opcount_report
from ..op_record import OpRecord

HARDWARE = ("opcount", "accelerator")


def random_weight_model(subnet: Subnet, dictionary: Dictionary) -> ShiftAddTransformer:
    """A standalone model of ``subnet`` with random weights: what latency is measured on (weights do not change the work)."""
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return ShiftAddTransformer.build_model(ShiftAddTransformerConfig(subnet_config=subnet.to_yaml()), task)


class SubnetCoster:
    """Energy, accelerator latency and params of subnets of one space.

    Args:
        space: the search space (None: any subnet, built standalone).
        vocab_size: joined vocabulary size, only used for params and ``include_embeddings``.
        weight_sharing: the models' ``--weight-sharing`` mode (changes params, not ops).
    """

    def __init__(self, space: SearchSpace | None, vocab_size: int = 32000, weight_sharing: str = "none"):
        self.space = space
        dictionary = dictionary_of_size(vocab_size)
        self._task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary, space=space)
        self.weight_sharing = weight_sharing
        self._supernet: ShiftAddSupernet | None = None
        self._params = lru_cache(maxsize=65536)(self._count_params)

    def _model_for(self, subnet: Subnet):
        if self.space is None:
            return self._standalone(subnet)
        if self._supernet is None:
            cfg = ShiftAddSupernetConfig(weight_sharing=self.weight_sharing)
            with torch.device("meta"):
                self._supernet = ShiftAddSupernet.build_model(cfg, self._task)
        self._supernet.set_subnet(subnet)
        return self._supernet

    def _standalone(self, subnet: Subnet) -> ShiftAddTransformer:
        cfg = ShiftAddTransformerConfig(weight_sharing=self.weight_sharing, subnet_config=subnet.to_yaml())
        with torch.device("meta"):
            return ShiftAddTransformer.build_model(cfg, self._task)

    def ops(self, subnet: Subnet, tokens: int = 30, include_embeddings: bool = False) -> list[OpRecord]:
        if self.space is not None:
            self.space.validate(subnet)
        return self._model_for(subnet).cost_ops(tokens, include_embeddings)

    def report(
        self, subnet: Subnet, bits: int = 32, tokens: int = 30, hardware: str = "opcount",
        include_embeddings: bool = False, memory: bool = False, conventions: str = "ours",
    ) -> dict[str, Any]:
        """The JSON report of ``shiftadd-cost``: per layer and total; ``total.params`` is the standalone model's."""
        if hardware not in HARDWARE:
            raise ValueError(f"hardware must be one of {HARDWARE}, got {hardware!r}")
        ops = self.ops(subnet, tokens, include_embeddings)
        if hardware == "opcount":
            report = opcount_report(ops, bits, memory)
        else:
            report = accelerator_cost(ops, bits, conventions).to_json()
            report.pop("ops", None)
        report["total"]["params"] = self.params(subnet)
        return report

    def energy_mj(self, subnet: Subnet, bits: int = 32, tokens: int = 30, hardware: str = "opcount") -> float:
        ops = self.ops(subnet, tokens)
        if hardware == "opcount":
            return opcount_report(ops, bits)["total"]["energy_mj"]
        return accelerator_cost(ops, bits).energy_mj

    def accel_latency_ms(self, subnet: Subnet, bits: int = 32, tokens: int = 30) -> float:
        return accelerator_cost(self.ops(subnet, tokens), bits).latency_ms

    def params(self, subnet: Subnet) -> int:
        """Parameters of the standalone subnet model (embeddings included)."""
        return self._params(subnet)

    def _count_params(self, subnet: Subnet) -> int:
        return sum(p.numel() for p in self._standalone(subnet).parameters())
