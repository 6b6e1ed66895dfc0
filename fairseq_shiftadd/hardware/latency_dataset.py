"""The measured latency dataset: a JSONL file of subnets and their latency on one device.

Dataset: one JSON object per line, ``{"subnet": <subnet YAML mapping>, "latency_ms": float,
"device": str, "torch": str, "threads": int}``, appended one fsync'ed line at a time by the
measurement script so a crash loses at most the line being written. Rows timed against a reference
subnet (paired timing, hardware/latency.py) add ``"reference": str`` (which subnet) and
``"reference_ms": float`` (the scale their ratio was multiplied by).

Which subnets a dataset holds is a pure function of the space and a seed (:func:`planned_subnets`),
so a measurement killed and restarted measures exactly the subnets it had not written yet.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import torch
from tqdm import tqdm

from ..data.sized_dictionary import dictionary_of_size
from ..errors import InvalidInput
from ..space import SearchSpace, SpaceError, Subnet
from .costing import random_weight_model
from .latency import describe_device, measure_latency, pinned_threads

logger = logging.getLogger(__name__)

# How many draws may repeat an earlier subnet before the space counts as too small for --num-subnets.
_MAX_DRAWS_PER_SUBNET = 100


class LatencyDataError(InvalidInput):
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
    with open(path, "rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            if not raw_line.strip():
                continue
            try:
                records.append(LatencyRecord.from_json(utf8_line(raw_line, f"{path}:{number}"), space, where=f"{path}:{number}"))
            except LatencyDataError as err:
                if on_error == "stop":
                    raise
                logger.warning("skipping malformed line: %s", err)
                skipped += 1
    if not records:
        detail = f" ({skipped} malformed lines skipped)" if skipped else ""
        raise LatencyDataError(f"latency dataset {path} has no records{detail}")
    return records


def utf8_line(raw_line: bytes, where: str) -> str:
    """One line of a JSONL file as text; bytes that are not UTF-8 are a :class:`LatencyDataError` naming the column."""
    try:
        return raw_line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LatencyDataError(f"{where}: not UTF-8 text (byte 0x{raw_line[err.start]:02x} at column {err.start + 1})") from None


def subnet_sequence(space: SearchSpace, seed: int, include_extremes: bool = False) -> Iterator[Subnet]:
    """Distinct subnets in a fixed order that depends only on (space, seed, include_extremes)."""
    seen: set[str] = set()
    rng = random.Random(f"shiftadd-latency:{seed}")
    extremes = [space.largest(), space.smallest()] if include_extremes else []
    repeats = 0
    while True:
        subnet = extremes.pop(0) if extremes else space.sample(rng)
        key = subnet.key()
        if key in seen:
            repeats += 1
            if repeats > _MAX_DRAWS_PER_SUBNET * (len(seen) + 1):
                raise InvalidInput(f"--num-subnets: the search space {space.name} has no more than {len(seen)} distinct subnets")
            continue
        seen.add(key)
        yield subnet


def planned_subnets(space: SearchSpace, count: int, seed: int, include_extremes: bool) -> list[Subnet]:
    sequence = subnet_sequence(space, seed, include_extremes)
    return [next(sequence) for _ in range(count)]


def existing_records(path: Path, space: SearchSpace, device: str, threads: int, reference: str | None, on_error: str) -> list[LatencyRecord]:
    """The rows ``path`` already holds; they must come from the same device, thread count and timing."""
    if not path.is_file():
        return []
    repair_partial_last_line(path)
    if not path.read_bytes().strip():
        return []
    records = read_latency_records(path, space, on_error=on_error)
    for record in records:
        if (record.device, record.threads) != (device, threads):
            raise InvalidInput(
                f"--out {path} holds measurements on {record.device} with {record.threads} threads; this run is on "
                f"{device} with {threads} threads (write them to another file)"
            )
        if (record.reference, record.reference_ms) != (records[0].reference, records[0].reference_ms) or record.reference != reference:
            raise InvalidInput(
                f"--out {path} holds rows timed with --reference {record.reference or 'none'} (reference_ms "
                f"{record.reference_ms}); this run uses --reference {reference or 'none'} (write them to another file)"
            )
    versions = sorted({record.torch for record in records} - {torch.__version__})
    if versions:
        logger.warning("%s also holds rows measured with torch %s (this run: %s)", path, ", ".join(versions), torch.__version__)
    return records


def repair_partial_last_line(path: Path) -> None:
    """Drop a last line cut off by a kill mid-write (no newline, not JSON), so the next append starts clean."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    head, _, tail = data.rpartition(b"\n")
    try:
        json.loads(tail)
    except ValueError:
        logger.warning("%s: dropping the unfinished last line (%d bytes) left by an interrupted run", path, len(tail))
        with open(path, "r+b") as handle:
            handle.truncate(len(head) + 1 if head else 0)
            handle.flush()
            os.fsync(handle.fileno())
        return
    with open(path, "ab") as handle:
        handle.write(b"\n")


def reference_scale(given: float | None, records: list[LatencyRecord], reference: torch.nn.Module, timing: dict, runs: int, out: Path) -> float:
    """The reference latency a file's ratios are scaled by: its rows', else ``--reference-ms``, else measured now."""
    if records:
        if given is not None and given != records[0].reference_ms:
            raise InvalidInput(f"--reference-ms {given} differs from the {records[0].reference_ms} of the rows already in {out}")
        return records[0].reference_ms
    if given is not None:
        return given
    # More runs than a subnet gets: this one number scales the whole file.
    return measure_latency(reference, runs=5 * runs, **timing)["latency_ms"]


def measure_subnets(
    out: Path, space: SearchSpace, num_subnets: int, *, seed: int, include_extremes: bool, vocab_size: int, runs: int,
    warmup: int, src_len: int, tgt_len: int, beam: int, device: str, threads: int | None, reference: str | None,
    reference_ms: float | None, on_error: str,
) -> int:
    """Measure the planned subnets ``out`` does not hold yet and append them; returns how many were measured.

    Args:
        reference: None for direct timing, else the subnet of the space (``smallest``/``largest``)
            every run is paired with; ``reference_ms`` then scales the ratios (None: measured once per file).
    """
    with pinned_threads(threads) as threads:
        records = existing_records(out, space, describe_device(device), threads, reference, on_error)
        done = {record.subnet.key() for record in records}
        todo = [s for s in planned_subnets(space, num_subnets, seed, include_extremes) if s.key() not in done]
        dictionary = dictionary_of_size(vocab_size)
        torch.manual_seed(seed)
        timing = dict(src_len=src_len, tgt_len=tgt_len, beam=beam, warmup=warmup, device=device, threads=threads)
        paired = {}
        if reference is not None and todo:
            paired["reference"] = random_weight_model(getattr(space, reference)(), dictionary)
            paired["reference_ms"] = reference_scale(reference_ms, records, paired["reference"], timing, runs, out)
        with tqdm(total=num_subnets, initial=num_subnets - len(todo), desc="subnets", unit="subnet") as bar:
            for subnet in todo:
                result = measure_latency(random_weight_model(subnet, dictionary), runs=runs, **timing, **paired)
                record = LatencyRecord(subnet, result["latency_ms"], result["device"], result["torch"], result["threads"],
                                       reference, result.get("reference_ms"))
                append_latency_record(out, record)
                bar.set_postfix(latency_ms=f"{result['latency_ms']:.1f}")
                bar.update()
    return len(todo)
