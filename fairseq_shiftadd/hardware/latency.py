"""Measured latency of a translation model, the way HAT defines it, timing what inference runs.

One *run* translates a batch-1 source of ``src_len`` tokens: the encoder once, its output expanded
to ``beam`` hypotheses with the encoder's own ``reorder_encoder_out``, then ``tgt_len`` incremental
decoder steps on ``(beam, t)`` tokens (logits over the vocabulary included). After warm-up runs,
``runs`` runs are timed and the mean of the middle 80% (HAT's 10-90% range) is reported.

*Paired timing* (``reference=``) follows every run of the model with one run of a fixed reference
model and reports ``reference_ms`` x the 10-90% mean of the per-pair ratios. A machine whose speed
drifts (a CPU VM whose single-thread speed wanders by ~20% over seconds, or a neighbour job on the
other core) slows both runs of a pair alike, so the ratio keeps the subnet's cost and drops the
drift: on the project's 2-core VM, re-measuring 60 tiny subnets differed by 17.5-24.7% MAPE with
direct timing and by 3.4-4.0% with paired timing (BENCHMARKS.md).

Unlike HAT's script, which ShiftAddNAS reuses (docs/architecture.md, "Where we depart from the public code"), the model is in
``eval()`` mode and no autograd graph is recorded (``torch.inference_mode``), so dropout and graph
bookkeeping are not timed. Thread count and device are pinned for the measurement and recorded.
"""
from __future__ import annotations

import math
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from ..errors import InvalidInput


def describe_device(device: torch.device) -> str:
    """A readable name of the hardware, so measurements from different machines never mix unnoticed.

    E.g. ``cpu:Intel(R) Xeon(R) CPU @ 2.20GHz`` or ``cuda:NVIDIA H100 80GB HBM3``.
    """
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{_cpu_model()}"
    return str(device)


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when present, else CPU; a CUDA device that is absent is a ValueError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {device} requested but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {str(device)!r}")
    return device


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    """Run the body with ``torch.set_num_threads(threads)`` (None: keep the current count); yields the count."""
    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise InvalidInput(f"threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def trimmed_mean(samples: list[float], trim: float = 0.1) -> float:
    """Mean after dropping the ``trim`` fraction of lowest and of highest samples (HAT: 10-90%)."""
    if not samples:
        raise ValueError("samples must not be empty")
    ordered = sorted(samples)
    cut = int(trim * len(ordered))
    kept = ordered[cut : len(ordered) - cut]
    return sum(kept) / len(kept)


def dummy_inputs(model: nn.Module, src_len: int, tgt_len: int, beam: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source (1, src_len), its length (1,), and decoder inputs (beam, tgt_len) starting with EOS as fairseq's do.

    Token values do not change the work done; any ordinary (non-special) symbol serves.
    """
    src_dict, tgt_dict = model.encoder.dictionary, model.decoder.dictionary
    src_word = min(src_dict.nspecial, len(src_dict) - 1)
    tgt_word = min(tgt_dict.nspecial, len(tgt_dict) - 1)
    src_tokens = torch.full((1, src_len), src_word, dtype=torch.long, device=device)
    src_tokens[0, -1] = src_dict.eos()
    src_lengths = torch.tensor([src_len], dtype=torch.long, device=device)
    prev_tokens = torch.full((beam, tgt_len), tgt_word, dtype=torch.long, device=device)
    prev_tokens[:, 0] = tgt_dict.eos()
    return src_tokens, src_lengths, prev_tokens


def translate_once(model: nn.Module, src_tokens: torch.Tensor, src_lengths: torch.Tensor, prev_tokens: torch.Tensor) -> None:
    """One timed unit: encoder once, expand to beam, then one incremental decoder step per target token.

    Args:
        src_tokens: (1, S); src_lengths: (1,); prev_tokens: (beam, T).
    """
    beam, tgt_len = prev_tokens.shape
    encoder_out = model.encoder(src_tokens, src_lengths=src_lengths)
    new_order = torch.zeros(beam, dtype=torch.long, device=src_tokens.device)
    encoder_out = model.encoder.reorder_encoder_out(encoder_out, new_order)
    incremental_state: dict[str, Any] = {}
    for step in range(tgt_len):
        model.decoder(prev_tokens[:, : step + 1], encoder_out=encoder_out, incremental_state=incremental_state)


def measure_latency(
    model: nn.Module,
    src_len: int = 30,
    tgt_len: int = 30,
    beam: int = 4,
    warmup: int = 5,
    runs: int = 20,
    device: str | torch.device | None = None,
    threads: int | None = None,
    reference: nn.Module | None = None,
    reference_ms: float | None = None,
) -> dict[str, Any]:
    """Latency of one translation (see the module docstring) in milliseconds.

    The models are moved to ``device`` (and stay there); their train/eval modes are restored afterwards.

    Args:
        model: a fairseq encoder-decoder whose decoder supports ``incremental_state``.
        device: None = CUDA when present, else CPU.
        threads: CPU threads pinned during timing (None: torch's current count).
        reference: paired timing: this model runs right after every run of ``model`` (warm-up too).
        reference_ms: the reference's latency the ratios are scaled by; required with ``reference``.

    Returns:
        ``{"latency_ms", "samples_ms" (every timed run of ``model``), "device", "torch", "threads"}``,
        and with a reference ``"ratio"`` (the 10-90% mean of the per-pair ratios) and ``"reference_ms"``.
    """
    for name, value, least in (("src_len", src_len, 1), ("tgt_len", tgt_len, 1), ("beam", beam, 1), ("warmup", warmup, 0), ("runs", runs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if (reference is None) != (reference_ms is None):
        raise ValueError("reference and reference_ms go together: paired timing needs both, direct timing neither")
    if reference_ms is not None and not (math.isfinite(reference_ms) and reference_ms > 0):
        raise ValueError(f"reference_ms must be a positive number, got {reference_ms!r}")
    device = resolve_device(device)
    timed = [model] if reference is None else [model, reference]
    modes = [timed_model.training for timed_model in timed]
    inputs = [dummy_inputs(timed_model.to(device).eval(), src_len, tgt_len, beam, device) for timed_model in timed]
    samples: list[float] = []
    ratios: list[float] = []
    try:
        with pinned_threads(threads) as pinned, torch.inference_mode():
            for run in range(warmup + runs):
                times = [_timed_translation(timed_model, its_inputs, device) for timed_model, its_inputs in zip(timed, inputs)]
                if run >= warmup:
                    samples.append(times[0])
                    if reference is not None:
                        ratios.append(times[0] / times[1])
    finally:
        for timed_model, mode in zip(timed, modes):
            timed_model.train(mode)
    result = {
        "latency_ms": trimmed_mean(samples),
        "samples_ms": samples,
        "device": describe_device(device),
        "torch": torch.__version__,
        "threads": pinned,
    }
    if reference_ms is not None:
        ratio = trimmed_mean(ratios)
        result.update(ratio=ratio, reference_ms=reference_ms, latency_ms=ratio * reference_ms)
    return result


def _timed_translation(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], device: torch.device) -> float:
    """Milliseconds of one :func:`translate_once`, the device synchronised before and after."""
    _synchronize(device)
    start = time.perf_counter()
    translate_once(model, *inputs)
    _synchronize(device)
    return (time.perf_counter() - start) * 1000.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
