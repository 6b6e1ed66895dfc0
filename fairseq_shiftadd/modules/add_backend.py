"""Where the add operators' arithmetic runs, and in which precision.

Three implementations compute the same four functions (add_linear_forward, add_linear_input_grad,
add_conv_forward, add_conv_backward):

* ``cpp``: the C++ kernels (kernels.py, csrc/) for CPU tensors;
* ``triton``: the Triton kernels (triton_add.py) for CUDA tensors of float32, float16 or
  bfloat16, when triton imports (the optional ``gpu`` extra; imported on first use only);
* ``torch``: the pure-torch fallbacks of add_linear.py and add_conv.py, for anything else.

Precision: the Triton kernels load float16/bfloat16 and accumulate in float32 themselves; the
C++ kernels and the fallbacks receive float16/bfloat16 operands cast to float32 (:func:`upcast`).
Either way a forward result of half operands leaves the kernel in float32, and the operator casts
it to its result dtype: the operands' dtype, or float32 under ``torch.autocast`` (:func:`precision`).
"""
from __future__ import annotations

import functools
from types import ModuleType

import torch
from torch import Tensor

from fairseq_shiftadd.modules.kernels import kernels_available

CPP, TRITON, TORCH = "cpp", "triton", "torch"
HALF_DTYPES = (torch.float16, torch.bfloat16)
TRITON_DTYPES = (torch.float32, *HALF_DTYPES)
CPP_DTYPES = (torch.float32, torch.float64, *HALF_DTYPES)  # half through upcast()


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether triton imports (it is optional: ``pip install .[gpu]``)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def select_backend(*tensors: Tensor) -> str:
    """The implementation for these operands: CPP, TRITON or TORCH (see the module docstring)."""
    devices = {t.device.type for t in tensors}
    dtypes = {t.dtype for t in tensors}
    if devices == {"cpu"} and dtypes <= set(CPP_DTYPES) and kernels_available():
        return CPP
    if devices == {"cuda"} and dtypes <= set(TRITON_DTYPES) and triton_available():
        return TRITON
    return TORCH


def kernel_ops(backend: str) -> ModuleType:
    """The namespace holding a kernel backend's four functions (torch.ops.shiftadd or triton_add)."""
    if backend == CPP and kernels_available():  # builds or loads them on first use
        return torch.ops.shiftadd
    if backend == TRITON:
        from fairseq_shiftadd.modules import triton_add

        return triton_add
    raise ValueError(f"backend must be {CPP!r} (when built) or {TRITON!r} to have kernels, got {backend!r}")


def upcast(backend: str, *tensors: Tensor | None) -> list[Tensor | None]:
    """The operands in the dtype ``backend`` computes in: float16/bfloat16 become float32 except on Triton."""
    if backend == TRITON:
        return list(tensors)
    return [t.float() if t is not None and t.dtype in HALF_DTYPES else t for t in tensors]


def precision(x: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(operand dtype, result dtype) of an add operator on x.

    Outside autocast both are x's own dtype. Under torch.autocast the operands take autocast's
    dtype, as F.linear's do, but the result keeps the float32 accumulator, as autocast does for
    sums and norms: -sum|x - w| carries its information in differences between outputs that are
    small beside an offset of about fan-in * E|x - w|, and a float16 or bfloat16 result rounds
    them away as fan-in grows (bench/precision.py measures it).
    """
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return x.dtype, x.dtype
    return torch.get_autocast_dtype(device), torch.promote_types(x.dtype, torch.float32)
