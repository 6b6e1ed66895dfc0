"""Builds and loads the C++ CPU kernels of the add operators (torch.ops.shiftadd.*).

Compiled on first use (about 30 s on 2 cores) with -O3 -march=native into torch's extension
cache (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions), which later processes reuse.
If the build fails the operators fall back to slower pure-torch code; a warning says so once.

Each checkout (source directory), CPU kind and torch version builds into its own folder of the
cache: torch rebuilds an extension whenever its build command changes, and two checkouts sharing
one folder would rebuild it under each other's running processes. Builders take an OS file lock
(released when the process dies, however it dies) and clear torch's own lock file under it: a
builder killed mid-build leaves that file behind, and torch would wait for it forever.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

_SOURCES = [Path(__file__).parent / "csrc" / name for name in ("add_linear.cpp", "add_conv.cpp")]


def _cpu_flags() -> str:
    """The CPU's instruction sets: -march=native code is built per CPU kind, so a cache shared by
    machines with different CPUs never loads code with illegal instructions."""
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or platform.machine()


def extension_name(source_dir: Path, torch_version: str) -> str:
    """The extension's name, and so its folder in the cache: one per source directory, CPU kind and torch version."""
    key = "\n".join((_cpu_flags(), str(source_dir.resolve()), torch_version))
    return f"shiftadd_ops_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


@functools.lru_cache(maxsize=None)
def kernels_available() -> bool:
    """Build or load the kernels once per process; False (with one warning) if that fails."""
    try:
        import torch
        from torch.utils import cpp_extension

        # A venv's ninja sits next to its python, which need not be on PATH.
        bin_dir = os.path.dirname(sys.executable)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        name = extension_name(_SOURCES[0].parent, torch.__version__)
        build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
        with open(build_dir / "builder.flock", "w") as builder:
            fcntl.flock(builder, fcntl.LOCK_EX)  # waits while another process builds
            (build_dir / "lock").unlink(missing_ok=True)  # torch's lock file: no builder is alive to hold it
            if not (build_dir / f"{name}.so").is_file():
                print("shiftadd: compiling the add operators' C++ kernels (once per checkout and machine, about 30 s)...",
                      file=sys.stderr, flush=True)
            cpp_extension.load(
                name=name,
                sources=[str(source) for source in _SOURCES],
                extra_cflags=["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast"],
                extra_ldflags=["-fopenmp"],
                is_python_module=False,
            )
        return True
    except Exception as error:  # any build or load failure: warn once, use the fallbacks
        logger.warning("shiftadd C++ kernels unavailable (%s); using slower pure-torch fallbacks", error)
        return False
