"""Data-parallel training with fairseq's own DDP: the supernet on N ranks, on GPUs and on CPU ranks.

:func:`install` (run when the plugin is imported) wraps two fairseq functions in memory; fairseq's
files are not changed.

* ``call_main`` first runs :func:`prepare_launch`: a model that leaves parameters without
  gradient in an update (the class attribute ``leaves_parameters_unused``, true for the supernet,
  which trains one subnet per update) trains with ``--ddp-backend legacy_ddp`` (why: docs/distributed.md);
  CPU ranks get what fairseq derives from ``torch.cuda.device_count()`` right (torchrun's ranks,
  the gloo backend, one spawned process per rank).
* ``DistributedFairseqModel`` wraps a model with :class:`UsedParameterDDP` for legacy_ddp, and
  with ``torch.nn.parallel.DistributedDataParallel`` without GPU device ids for pytorch_ddp on CPU.

With these, N ranks train as one process that accumulates the same batches (``--update-freq``
N times larger) does: bit for bit with one batch per rank and update (tests/integration/test_distributed_training.py).
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
from typing import Callable

import torch
from fairseq import models
from fairseq.distributed import LegacyDistributedDataParallel, ModuleProxyWrapper
from fairseq.distributed import utils as distributed_utils
from omegaconf import open_dict
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import InvalidInput

logger = logging.getLogger(__name__)

LEGACY_DDP = ("legacy_ddp", "no_c10d")
PYTORCH_DDP = ("pytorch_ddp", "c10d")
TORCHRUN_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
LEGACY_BUFFER_ELEMENTS = 2**28  # the all-reduce bucket fairseq gives legacy_ddp


class UsedParameterDDP(LegacyDistributedDataParallel):
    """fairseq's legacy_ddp, except that parameters no rank used keep ``grad=None``.

    fairseq's version gives every parameter without a gradient a zero one before the all-reduce;
    Adam then keeps moving the supernet's untrained weights on their old momentum, which one
    process (whose unused grads stay None) never does. Here the ranks first agree on the
    parameters any of them used (one small all-reduce), all-reduce the gradients of those only
    (a rank that did not use one contributes zeros), and leave the rest untouched: N ranks step
    the optimizer as one process accumulating the same batches, and only the gradients of the
    parameters the update trained travel.
    """

    def all_reduce_grads(self) -> None:
        if self.accumulate_grads:  # inside no_sync(): fairseq reduces after the last micro-batch
            return
        params = [p for p in self.module.parameters() if p.requires_grad]
        if not params:
            return
        ranks_using = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=params[0].device)
        distributed_utils.all_reduce(ranks_using, self.process_group)
        used = [p for p, count in zip(params, ranks_using.tolist()) if count]
        for param in used:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        used_ids = {id(p) for p in used}
        every_param = self.per_device_params
        self.per_device_params = [[p for p in group if id(p) in used_ids] for group in every_param]
        try:
            super().all_reduce_grads()
        finally:
            self.per_device_params = every_param


def distributed_model(fairseq_wrapper: Callable) -> Callable:
    """fairseq's ``DistributedFairseqModel`` with :class:`UsedParameterDDP` for legacy_ddp and
    CPU-capable pytorch_ddp; every other backend goes to ``fairseq_wrapper`` unchanged."""

    def wrap(args, model: nn.Module, process_group, device: torch.device) -> nn.Module:
        if getattr(args, "tpu", False):
            return fairseq_wrapper(args, model, process_group, device)
        if args.ddp_backend in LEGACY_DDP:
            ddp = UsedParameterDDP(model.to(device), process_group=process_group, buffer_size=LEGACY_BUFFER_ELEMENTS)
            return ModuleProxyWrapper(ddp)
        if args.ddp_backend in PYTORCH_DDP and device.type == "cpu":
            # fairseq passes device_ids=[device_id], which torch refuses for a CPU module.
            ddp = DistributedDataParallel(
                model.to(device), forward_sync_buffers=args.broadcast_buffers, bucket_cap_mb=args.bucket_cap_mb,
                process_group=process_group, find_unused_parameters=args.find_unused_parameters,
                gradient_as_bucket_view=args.gradient_as_bucket_view,
            )
            return ModuleProxyWrapper(ddp)
        return fairseq_wrapper(args, model, process_group, device)

    wrap.wrapped_by_shiftadd = True
    return wrap


def leaves_parameters_unused(model_cfg) -> bool:
    """Whether the model of ``cfg.model`` declares that an update leaves parameters without gradient."""
    arch = getattr(model_cfg, "_name", None) or getattr(model_cfg, "arch", None)
    model_cls = models.ARCH_MODEL_REGISTRY.get(arch) or models.MODEL_REGISTRY.get(arch)
    return bool(getattr(model_cls, "leaves_parameters_unused", False))


def choose_ddp_backend(cfg) -> None:
    """legacy_ddp for a model that leaves parameters unused; one-line InvalidInput for a backend that
    cannot train it. pytorch_ddp (fairseq's default) becomes legacy_ddp unless
    ``--find-unused-parameters`` asks for it explicitly."""
    dt = cfg.distributed_training
    if not leaves_parameters_unused(cfg.model):
        return
    backend = str(dt.ddp_backend)
    if backend in LEGACY_DDP or (backend in PYTORCH_DDP and dt.find_unused_parameters):
        return
    if backend not in PYTORCH_DDP:
        raise InvalidInput(
            f"--ddp-backend {backend}: --arch {cfg.model._name} leaves most parameters without gradient in every update; "
            "use --ddp-backend legacy_ddp (its default) or pytorch_ddp --find-unused-parameters"
        )
    with open_dict(dt):
        dt.ddp_backend = "legacy_ddp"
    if world_size(dt) > 1:
        logger.info("--ddp-backend legacy_ddp: --arch %s leaves most parameters without gradient in every update", cfg.model._name)


def world_size(dt) -> int:
    """The world size fairseq will use: torchrun's when launched by it, else the configured one."""
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else int(dt.distributed_world_size)


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def on_cpu(cfg) -> bool:
    """Whether fairseq's trainer will run on the CPU (the test fairseq's Trainer makes)."""
    return bool(cfg.common.cpu) or not torch.cuda.is_available()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_cpu_ranks(cfg) -> None:
    """What fairseq derives from ``torch.cuda.device_count()`` (0 on CPU), set for CPU ranks.

    Under torchrun: the world size and rank come from its environment (fairseq's default world
    size of 1 ignored the launcher, and its device id ``rank % device_count()`` divides by zero).
    Without a launcher, ``--distributed-world-size N`` initialises on a free local port (fairseq
    asserts N GPUs instead). The backend becomes gloo: nccl cannot reduce CPU tensors.
    """
    dt = cfg.distributed_training
    if world_size(dt) <= 1:
        return
    with open_dict(dt):
        if str(dt.distributed_backend) == "nccl":
            dt.distributed_backend = "gloo"
        if dt.distributed_init_method is not None:
            return
        if launched_by_torchrun():
            dt.distributed_init_method = "env://"
            dt.distributed_world_size = int(os.environ["WORLD_SIZE"])
            dt.distributed_rank = int(os.environ["RANK"])
            dt.device_id = 0
            dt.distributed_no_spawn = True
        elif dt.distributed_no_spawn:
            raise InvalidInput(
                "--distributed-no-spawn on CPU needs --distributed-init-method tcp://HOST:PORT and --distributed-rank "
                "(or a launcher: torchrun --nproc_per_node N $(which fairseq-train) ...)"
            )
        else:
            dt.distributed_init_method = f"tcp://127.0.0.1:{free_port()}"


def spawn_cpu_ranks(cfg, main: Callable, **kwargs) -> None:
    """One process per rank (fairseq spawns ``min(cuda.device_count(), world size)``: none on CPU)."""
    dt = cfg.distributed_training
    start_rank = dt.distributed_rank
    with open_dict(dt):
        dt.distributed_rank = None  # each process takes start_rank + its index (fairseq's distributed_main)
    torch.multiprocessing.spawn(
        fn=distributed_utils.distributed_main, args=(main, cfg, dict(kwargs, start_rank=start_rank)),
        nprocs=dt.distributed_world_size, join=True,
    )


def prepare_launch(fairseq_call_main: Callable) -> Callable:
    """fairseq's ``call_main`` after :func:`choose_ddp_backend` and, on CPU, the CPU rank fixes."""

    def call_main(cfg, main: Callable, **kwargs) -> None:
        if getattr(cfg, "model", None) is not None:
            choose_ddp_backend(cfg)
        if on_cpu(cfg) and not cfg.common.tpu:
            prepare_cpu_ranks(cfg)
            dt = cfg.distributed_training
            if dt.distributed_init_method is not None and not dt.distributed_no_spawn:
                return spawn_cpu_ranks(cfg, main, **kwargs)
        return fairseq_call_main(cfg, main, **kwargs)

    call_main.wrapped_by_shiftadd = True
    return call_main


def install() -> None:
    """Wrap fairseq's ``call_main`` and ``DistributedFairseqModel`` (idempotent)."""
    if not getattr(distributed_utils.call_main, "wrapped_by_shiftadd", False):
        distributed_utils.call_main = prepare_launch(distributed_utils.call_main)
    if not getattr(models.DistributedFairseqModel, "wrapped_by_shiftadd", False):
        models.DistributedFairseqModel = distributed_model(models.DistributedFairseqModel)


def data_parallel_world_size() -> int:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 1
    return distributed_utils.get_data_parallel_world_size()


def digest(text: str) -> str:
    """A short stable fingerprint of ``text`` (12 hex digits), for logs and cross-rank checks."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def check_same_on_all_ranks(text: str, device: torch.device, what: str) -> None:
    """Raise InvalidInput on every rank unless all data-parallel ranks hold the same ``text``.

    One all-reduce (max) of the pair (d, -d), d = the 48-bit :func:`digest` of ``text``: the
    ranks agree iff max(d) == min(d).
    """
    if data_parallel_world_size() <= 1:
        return
    value = int(digest(text), 16)
    extremes = torch.tensor([value, -value], dtype=torch.int64, device=device)
    distributed_utils.all_reduce(extremes, distributed_utils.get_data_parallel_group(), op="max")
    if int(extremes[0]) != -int(extremes[1]):
        raise InvalidInput(f"data-parallel ranks disagree on {what}: every rank needs the same --seed and --search-space")
