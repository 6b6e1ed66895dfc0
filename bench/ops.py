"""Benchmark the shift and add operators against their multiplication baselines.

    python bench/ops.py [--repeats 7] [--threads N] [--device cpu|cuda] [--dtype float32 float16 ...]

Pairs, measured side by side in one run on this machine's CPU threads or one GPU (--device cuda,
default dtypes float32 and float16; CPU default float32), one table per dtype:
  AddLinear vs nn.Linear and ShiftLinear vs nn.Linear (4096 tokens, 512->2048 and 2048->512);
  AddConv1d vs fairseq's LightweightConv (B=32, T=30, C=512, 8 heads, K=3/15/31, "same" padding).
Time: median over --repeats after two warm-up calls, the operator and its baseline interleaved
call by call so machine load hits both alike; "fwd" runs under no_grad, "fwd+bwd" is a training
step (output.backward(grad), input and parameters requiring grad).
On CUDA every timed call is followed by torch.cuda.synchronize(). The "path" column names the
implementation that ran the operator (add_backend.select_backend: cpp, triton or torch; half
precision on cpp/torch runs through float32), matmul for ShiftLinear (a float GEMM).
Memory on CUDA: torch.cuda.max_memory_allocated over one call after a warm one, minus what was
allocated before it. On CPU torch's allocator keeps no statistics, so each operator is measured in a fresh
subprocess with glibc's mmap threshold fixed at 64 KiB (every large buffer is mapped on use and
unmapped on free): after one warm call, the kernel's peak-RSS counter is reset
(/proc/self/clear_refs) and the peak resident-set growth of one more call is reported, i.e. all
memory the call allocates at once, outputs and saved activations included, inputs excluded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
from torch import nn

from fairseq.modules import LightweightConv
from fairseq_shiftadd.modules import AddConv1d, AddLinear, ShiftLinear, kernels_available
from fairseq_shiftadd.modules.add_backend import TRITON, select_backend, upcast

TOKENS, BATCH, STEPS, CHANNELS, HEADS = 4096, 32, 30, 512, 8
LINEAR_SIZES = [(512, 2048), (2048, 512)]
KERNEL_SIZES = [3, 15, 31]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cases() -> list[tuple[str, str, str]]:
    """(case, operator, baseline) names."""
    out = []
    for op in ("AddLinear", "ShiftLinear"):
        out += [(f"{op} {TOKENS}x{i}->{o}", op, "nn.Linear") for i, o in LINEAR_SIZES]
    out += [(f"AddConv1d B{BATCH} T{STEPS} C{CHANNELS} K{k}", "AddConv1d", "LightweightConv") for k in KERNEL_SIZES]
    return out


def setup(case: str, impl: str, device: str, dtype: torch.dtype) -> tuple[Callable[[], None], Callable[[], None], str]:
    """Build one implementation of a case on device in dtype; returns (forward, training step, path) closures."""
    torch.manual_seed(0)
    if "->" in case:
        in_features, out_features = (int(v) for v in case.split("x")[1].split("->"))
        module = {
            "AddLinear": lambda: AddLinear(in_features, out_features),
            "ShiftLinear": lambda: ShiftLinear(in_features, out_features),
            "nn.Linear": lambda: nn.Linear(in_features, out_features),
        }[impl]()
        x = torch.randn(TOKENS, in_features)
        grad = torch.randn(TOKENS, out_features)
    else:
        kernel_size = int(case.rsplit("K", 1)[1])
        if impl == "AddConv1d":
            module = AddConv1d(HEADS, kernel_size, "same")
        else:
            module = LightweightConv(CHANNELS, kernel_size, padding_l=kernel_size // 2, num_heads=HEADS, weight_softmax=True)
        x = torch.randn(STEPS, BATCH, CHANNELS)
        grad = torch.randn(STEPS, BATCH, CHANNELS)
    module.to(device, dtype)
    x, grad = x.to(device, dtype), grad.to(device, dtype)
    x_train = x.clone().requires_grad_()
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None

    def forward() -> None:
        with torch.no_grad():
            module(x)
        sync()

    def train() -> None:
        output = module(x_train)
        output.backward(grad.to(output.dtype))
        module.zero_grad(set_to_none=True)  # gradients count in the peak, then return to baseline
        x_train.grad = None
        sync()

    return forward, train, path_of(impl, x)


def path_of(impl: str, x: torch.Tensor) -> str:
    """The implementation that runs impl on x: the add operators' backend, else the float op torch runs."""
    if impl not in ("AddLinear", "AddConv1d"):
        return "matmul" if "Linear" in impl else "torch"
    backend = select_backend(x)
    return backend if backend == TRITON or upcast(backend, x)[0].dtype == x.dtype else f"{backend} (float32)"


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def peak_growth_mib(fn: Callable[[], None], device: str) -> float:
    """Peak memory growth (MiB) of one call of fn: resident set on CPU, allocator on CUDA (module docstring)."""
    fn()
    if device == "cuda":
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_kib("VmRSS:")
    fn()
    return (_status_kib("VmHWM:") - before) / 1024


def memory(case: str, impl: str, device: str, dtype: str) -> dict[str, float]:
    """Peak MiB of a forward and a training step: in this process on CUDA, in a fresh one on CPU."""
    if device == "cuda":
        forward, train, _ = setup(case, impl, device, DTYPES[dtype])
        return {"fwd": peak_growth_mib(forward, device), "train": peak_growth_mib(train, device)}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(
        [sys.executable, __file__, "--memory", case, impl, dtype], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_pair(op: Callable[[], None], base: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median milliseconds of op and base, interleaved."""
    for _ in range(2):
        op(), base()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, sink in ((op, times[0]), (base, times[1])):
            start = time.perf_counter()
            fn()
            sink.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), help="default: float32 (cpu), float32 float16 (cuda)")
    parser.add_argument("--memory", nargs=3, metavar=("CASE", "IMPL", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.memory:
        case, impl, dtype = args.memory
        forward, train, _ = setup(case, impl, "cpu", DTYPES[dtype])
        print(json.dumps({"fwd": peak_growth_mib(forward, "cpu"), "train": peak_growth_mib(train, "cpu")}))
        return

    dtypes = args.dtype or (["float32", "float16"] if args.device == "cuda" else ["float32"])
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {where}, C++ kernels: {kernels_available()}, load average {os.getloadavg()[0]:.2f}")
    for dtype in dtypes:
        print(f"\n{dtype}:\n")
        print("| case | baseline | path | fwd ms (op / base = ratio) | fwd+bwd ms (op / base = ratio) | peak MiB fwd (op / base) | peak MiB fwd+bwd (op / base = ratio) |")
        print("|---|---|---|---|---|---|---|")
        for case, op, baseline in cases():
            op_fwd, op_train, path = setup(case, op, args.device, DTYPES[dtype])
            base_fwd, base_train, _ = setup(case, baseline, args.device, DTYPES[dtype])
            fwd = time_pair(op_fwd, base_fwd, args.repeats)
            train = time_pair(op_train, base_train, args.repeats)
            mem_op, mem_base = memory(case, op, args.device, dtype), memory(case, baseline, args.device, dtype)
            print(
                f"| {case} | {baseline} | {path} | {fwd[0]:.1f} / {fwd[1]:.1f} = {fwd[0] / fwd[1]:.2f}x "
                f"| {train[0]:.1f} / {train[1]:.1f} = {train[0] / train[1]:.2f}x "
                f"| {mem_op['fwd']:.0f} / {mem_base['fwd']:.0f} "
                f"| {mem_op['train']:.0f} / {mem_base['train']:.0f} = {mem_op['train'] / max(mem_base['train'], 1e-9):.2f}x |",
                flush=True,
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
