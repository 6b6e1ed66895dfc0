"""fairseq task ``latency_prediction``: learn a subnet's measured latency from its features.

``fairseq-train LAT.jsonl --user-dir fairseq_shiftadd --task latency_prediction --search-space S.yml
--arch latency_mlp --criterion latency_predictor --batch-size 128 ...``

The whole JSONL dataset is read once when the task is set up (it is small: thousands of lines),
split into train/valid by a seeded hash of each subnet's key (so a subnet measured twice never
sits on both sides, and appending measurements never moves a subnet across), and normalised
with the train split's latency mean/std. The model keeps those stats and the space's fingerprint
as buffers, and the task state keeps the search space itself, so a checkpoint is self-contained.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task

from ..errors import InvalidInput
from ..hardware.features import feature_layout
from ..hardware.latency_dataset import LatencyDataError, LatencyRecord, read_latency_records
from ..space import SearchSpace, Subnet

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid")


@dataclass
class LatencyPredictionConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "JSONL latency dataset (fairseq-train's positional DATA)"})
    search_space: Optional[str] = field(
        default=None, metadata={"help": "search space YAML the measured subnets belong to (required)"}
    )
    valid_fraction: float = field(default=0.1, metadata={"help": "expected fraction of subnets held out for validation"})
    split_seed: int = field(default=1, metadata={"help": "seed of the subnet hash that splits train/valid"})
    on_bad_line: ChoiceEnum(["stop", "skip"]) = field(  # type: ignore[valid-type]
        default="stop", metadata={"help": "a malformed dataset line stops with its line number, or is skipped"}
    )


def split_of(subnet: Subnet, seed: int, valid_fraction: float) -> str:
    """'valid' or 'train': a pure function of the subnet, so no subnet is in both splits."""
    digest = hashlib.sha256(f"{seed}:{subnet.key()}".encode()).digest()
    return "valid" if int.from_bytes(digest[:8], "big") / 2**64 < valid_fraction else "train"


def split_records(
    records: Sequence[LatencyRecord], seed: int, valid_fraction: float
) -> dict[str, list[LatencyRecord]]:
    splits: dict[str, list[LatencyRecord]] = {name: [] for name in SPLITS}
    for record in records:
        splits[split_of(record.subnet, seed, valid_fraction)].append(record)
    return splits


class LatencyDataset(FairseqDataset):
    """(features, normalised latency) pairs; the train split reshuffles every epoch.

    Args:
        features: float32 [N, feature_dim].
        latency_ms: float32 [N], measured latency.
    """

    def __init__(self, features: torch.Tensor, latency_ms: torch.Tensor, mean: float, std: float, shuffle: bool, seed: int):
        super().__init__()
        self.features = features
        self.latency_ms = latency_ms
        self.target = (latency_ms - mean) / std
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"id": index, "features": self.features[index], "target": self.target[index], "latency_ms": self.latency_ms[index]}

    def __len__(self) -> int:
        return len(self.latency_ms)

    def collater(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Batch: net_input.features [B, F], target [B] (normalised), latency_ms [B]."""
        if not samples:
            return {}
        return {
            "id": torch.tensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": len(samples),
            "net_input": {"features": torch.stack([s["features"] for s in samples])},
            "target": torch.stack([s["target"] for s in samples]),
            "latency_ms": torch.stack([s["latency_ms"] for s in samples]),
        }

    def num_tokens(self, index: int) -> int:
        return 1

    def size(self, index: int) -> int:
        return 1

    @property
    def can_reuse_epoch_itr_across_epochs(self) -> bool:
        return not self.shuffle

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def ordered_indices(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self))
        with data_utils.numpy_seed(self.seed, self.epoch):
            return np.random.permutation(len(self))


@register_task("latency_prediction", dataclass=LatencyPredictionConfig)
class LatencyPredictionTask(FairseqTask):
    """Train splits come from one JSONL file; the model reads ``feature_dim``, ``latency_mean/std``, ``fingerprint``."""

    def __init__(self, cfg: LatencyPredictionConfig, space: SearchSpace, records: list[LatencyRecord]):
        super().__init__(cfg)
        self.space = space
        self.fingerprint = space.fingerprint()
        self.state.merge_state_dict({"search_space": space.to_dict()})
        self.feature_dim = feature_layout(space).dim
        self.records = split_records(records, cfg.split_seed, cfg.valid_fraction)
        for name in SPLITS:
            if not self.records[name]:
                raise LatencyDataError(
                    f"latency dataset {cfg.data}: the {name} split is empty ({len(records)} records, "
                    f"--valid-fraction {cfg.valid_fraction}); measure more subnets or change --valid-fraction"
                )
        train_ms = np.array([r.latency_ms for r in self.records["train"]])
        self.latency_mean = float(train_ms.mean())
        self.latency_std = float(train_ms.std()) or 1.0  # all-equal latencies: leave the scale in ms
        logger.info(
            "latency dataset %s: %d train / %d valid records, %d features, train latency %.3f +- %.3f ms",
            cfg.data, len(self.records["train"]), len(self.records["valid"]), self.feature_dim,
            self.latency_mean, self.latency_std,
        )

    @classmethod
    def add_args(cls, parser) -> None:
        super().add_args(parser)
        # DATA is one JSONL file, not a directory whose extra valid* shards fairseq should look for;
        # the dataset lives in memory, so loader worker processes would only add start-up time.
        parser.set_defaults(ignore_unused_valid_subsets=True, num_workers=0)

    @classmethod
    def setup_task(cls, cfg: LatencyPredictionConfig, **kwargs) -> "LatencyPredictionTask":
        if not cfg.search_space:
            raise InvalidInput("--search-space is required: the search space YAML the measured subnets belong to")
        if not 0.0 < cfg.valid_fraction < 1.0:
            raise InvalidInput(f"--valid-fraction must be between 0 and 1 (exclusive), got {cfg.valid_fraction}")
        space = SearchSpace.from_file(cfg.search_space)
        records = read_latency_records(cfg.data, space, on_error=cfg.on_bad_line)
        return cls(cfg, space, records)

    def load_dataset(self, split: str, combine: bool = False, epoch: int = 1, **kwargs) -> None:
        if split not in SPLITS:
            raise InvalidInput(f"split must be one of {', '.join(SPLITS)} for --task latency_prediction, got {split!r}")
        records = self.records[split]
        features = torch.from_numpy(feature_layout(self.space).encode([r.subnet for r in records]))
        latency_ms = torch.tensor([r.latency_ms for r in records], dtype=torch.float32)
        self.datasets[split] = LatencyDataset(
            features, latency_ms, self.latency_mean, self.latency_std, shuffle=split == "train", seed=self.cfg.split_seed
        )

    def max_positions(self) -> None:
        return None
