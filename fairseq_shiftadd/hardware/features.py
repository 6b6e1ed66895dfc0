"""What the latency predictor sees: subnet feature vectors, and the JSONL latency dataset it learns from.

Feature layout (HAT's scalars plus ShiftAddNAS's operator choices). There is one column group per
gene of :meth:`SearchSpace.genes`, in that order, so the layout is a pure function of the space:

- numeric genes (embed dims, layer nums, per-layer FFN dims, heads, encoder-decoder heads,
  arbitrary encoder-decoder attention): one column, ``value / max(|choices|)``; so the largest
  choice reads 1.0 and arbitrary-ende ``-1`` (last encoder layer only) reads a negative number;
- operator genes (per-layer block type and FFN type): ``len(choices)`` columns, one-hot over the
  space's candidate list.

Genes of layers beyond the subnet's active layer count are all zero. For ``configs/spaces/tiny.yml``
that gives 4 + 2x(1+1+7+3) + 2x(1+1+1+1+4+3) = 50 columns; :meth:`FeatureLayout.names` names them.

Dataset: one JSON object per line, ``{"subnet": <subnet YAML mapping>, "latency_ms": float,
"device": str, "torch": str, "threads": int}``, appended one fsync'ed line at a time by the
measurement script so a crash loses at most the line being written. Rows timed against a reference
subnet (paired timing, hardware/latency.py) add ``"reference": str`` (which subnet) and
``"reference_ms": float`` (the scale their ratio was multiplied by).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NoReturn, Sequence

import numpy as np

from fairseq_shiftadd.search.space import SearchSpace, SpaceError, Subnet

logger = logging.getLogger(__name__)

_ONE_HOT_SUFFIXES = ("block_types", "ffn_types")


@dataclass(frozen=True)
class _GeneColumns:
    """Where one gene's value lands: value -> (column, feature value)."""

    field: str
    layer: int | None
    table: dict[Any, tuple[int, float]]


class FeatureLayout:
    """The feature columns of one search space; build once, then encode many subnets."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self._genes: list[_GeneColumns] = []
        names: list[str] = []
        for gene in space.genes():
            if gene.field.endswith(_ONE_HOT_SUFFIXES):
                table = {choice: (len(names) + i, 1.0) for i, choice in enumerate(gene.choices)}
                names.extend(f"{gene.name}={choice}" for choice in gene.choices)
            else:
                scale = max(abs(choice) for choice in gene.choices)
                table = {choice: (len(names), choice / scale) for choice in gene.choices}
                names.append(gene.name)
            self._genes.append(_GeneColumns(gene.field, gene.layer, table))
        self.names: tuple[str, ...] = tuple(names)

    @property
    def dim(self) -> int:
        return len(self.names)

    def encode(self, subnets: Sequence[Subnet]) -> np.ndarray:
        """Features of many subnets: float32 [len(subnets), dim]; SpaceError for a subnet outside the space."""
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for index, subnet in enumerate(subnets):
            for gene in self._genes:
                value = getattr(subnet, gene.field)
                if gene.layer is not None:
                    if gene.layer >= len(value):
                        continue
                    value = value[gene.layer]
                try:
                    column, feature = gene.table[value]
                except (KeyError, TypeError):
                    self._raise_outside(subnet, index)
                rows.append(index)
                cols.append(column)
                values.append(feature)
            self._check_layer_counts(subnet, index)
        matrix = np.zeros((len(subnets), self.dim), dtype=np.float32)
        matrix[rows, cols] = values
        return matrix

    def _raise_outside(self, subnet: Subnet, index: int) -> NoReturn:
        self.space.validate(subnet, where=f"subnets[{index}]")
        raise SpaceError(f"subnets[{index}]: not a subnet of the search space {self.space.name}")

    @staticmethod
    def _check_layer_counts(subnet: Subnet, index: int) -> None:
        """Per-layer tuples must have one value per active layer (Subnet itself does not enforce it)."""
        for side in ("encoder", "decoder"):
            layers = getattr(subnet, f"{side}_layer_num")
            for field in ("ffn_embed_dim", "self_attention_heads", "block_types", "ffn_types"):
                count = len(getattr(subnet, f"{side}_{field}"))
                if count != layers:
                    raise SpaceError(f"subnets[{index}]: {side}_{field} has {count} values for {layers} {side} layers")


@lru_cache(maxsize=16)
def feature_layout(space: SearchSpace) -> FeatureLayout:
    return FeatureLayout(space)


def subnet_feature_matrix(space: SearchSpace, subnets: Sequence[Subnet]) -> np.ndarray:
    """Features of many subnets, float32 [N, feature_dim]; see the module docstring for the layout."""
    return feature_layout(space).encode(subnets)


def subnet_features(space: SearchSpace, subnet: Subnet) -> list[float]:
    """Features of one subnet (one row of :func:`subnet_feature_matrix`)."""
    return subnet_feature_matrix(space, [subnet])[0].tolist()


def space_fingerprint(space: SearchSpace) -> str:
    """SHA-256 hex of what defines the features and the latency: every gene's choices, and kernel sizes.

    The space's name and file path are left out, so a renamed copy of a space keeps its predictor.
    """
    identity = {
        "genes": [[gene.name, list(gene.choices)] for gene in space.genes()],
        "kernel_sizes": [list(space.encoder.kernel_sizes), list(space.decoder.kernel_sizes)],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------- the JSONL dataset
class LatencyDataError(ValueError):
    """A latency dataset that cannot be used; the message is one line naming the file (and line)."""


@dataclass(frozen=True)
class LatencyRecord:
    """One measurement: a subnet and its latency on one device."""

    subnet: Subnet
    latency_ms: float
    device: str
    torch: str
    threads: int
    reference: str | None = None
    reference_ms: float | None = None

    def to_json(self) -> str:
        row = {
            "subnet": self.subnet.to_yaml_dict(),
            "latency_ms": self.latency_ms,
            "device": self.device,
            "torch": self.torch,
            "threads": self.threads,
        }
        if self.reference is not None:
            row.update(reference=self.reference, reference_ms=self.reference_ms)
        return json.dumps(row)

    @classmethod
    def from_json(cls, line: str, space: SearchSpace, where: str) -> "LatencyRecord":
        """Parse one dataset line; raises LatencyDataError with a one-line reason prefixed by ``where``."""
        try:
            raw = json.loads(line.strip())
        except json.JSONDecodeError as err:
            raise LatencyDataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(raw, dict):
            raise LatencyDataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        missing = [key for key in ("subnet", "latency_ms", "device", "torch", "threads") if key not in raw]
        if missing:
            raise LatencyDataError(f"{where}: missing key '{missing[0]}'")
        for key in ("latency_ms", "reference_ms"):
            value = raw.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise LatencyDataError(f"{where}: {key} = {value!r} must be a positive number")
        if ("reference" in raw) != ("reference_ms" in raw) or not isinstance(raw.get("reference", ""), str):
            raise LatencyDataError(f"{where}: 'reference' (a subnet name) and 'reference_ms' come together")
        threads = raw["threads"]
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise LatencyDataError(f"{where}: threads = {threads!r} must be a positive integer")
        try:
            subnet = space.subnet_from_dict(raw["subnet"], where=f"{where}: subnet")
        except SpaceError as err:
            raise LatencyDataError(str(err)) from None
        reference_ms = float(raw["reference_ms"]) if "reference_ms" in raw else None
        return cls(subnet, float(raw["latency_ms"]), str(raw["device"]), str(raw["torch"]), threads, raw.get("reference"), reference_ms)


def append_latency_record(path: str | os.PathLike, record: LatencyRecord) -> None:
    """Append one record as one line, flushed and fsync'ed, so a crash loses at most the line being written.

    If an earlier crash left a last line without its newline, the new record starts a line of its
    own: the torn line stays one malformed line (reported by number), never glued to a good one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.to_json() + "\n").encode()
    with open(path, "a+b") as handle:
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = b"\n" + line
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_latency_records(
    path: str | os.PathLike,
    space: SearchSpace,
    on_error: Literal["stop", "skip"] = "stop",
) -> list[LatencyRecord]:
    """Read a JSONL latency dataset; blank lines are ignored.

    Args:
        on_error: ``stop`` raises LatencyDataError at the first malformed line (naming file and
            line number); ``skip`` logs a warning with the same message and goes on.
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise LatencyDataError(f"latency dataset {path} does not exist")
    records = []
    skipped = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(LatencyRecord.from_json(line, space, where=f"{path}:{number}"))
            except LatencyDataError as err:
                if on_error == "stop":
                    raise
                logger.warning("skipping malformed line: %s", err)
                skipped += 1
    if not records:
        detail = f" ({skipped} malformed lines skipped)" if skipped else ""
        raise LatencyDataError(f"latency dataset {path} has no records{detail}")
    return records
