"""How the plugin sets up fairseq's data parallelism: the DDP backend a model gets, CPU ranks under torchrun."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from fairseq_shiftadd.distributed import choose_ddp_backend, prepare_cpu_ranks
from fairseq_shiftadd.errors import InvalidInput


def distributed_cfg(arch: str, backend: str, find_unused: bool = False, world_size: int = 1):
    return OmegaConf.create({
        "model": {"_name": arch},
        "distributed_training": {
            "ddp_backend": backend, "find_unused_parameters": find_unused, "distributed_world_size": world_size,
            "distributed_backend": "nccl", "distributed_init_method": None, "distributed_rank": 0, "device_id": 0,
            "distributed_no_spawn": False, "distributed_num_procs": 1,
        },
    })


@pytest.mark.parametrize("backend, find_unused, chosen", [
    ("pytorch_ddp", False, "legacy_ddp"), ("c10d", False, "legacy_ddp"), ("legacy_ddp", False, "legacy_ddp"),
    ("no_c10d", False, "no_c10d"), ("pytorch_ddp", True, "pytorch_ddp"),
])
def test_supernet_gets_a_ddp_backend_that_handles_unused_parameters(backend: str, find_unused: bool, chosen: str) -> None:
    cfg = distributed_cfg("shiftadd_supernet_tiny", backend, find_unused)
    choose_ddp_backend(cfg)
    assert cfg.distributed_training.ddp_backend == chosen


def test_dense_models_keep_their_ddp_backend_and_incompatible_ones_are_refused() -> None:
    for arch in ("shiftadd_transformer", "transformer"):
        cfg = distributed_cfg(arch, "pytorch_ddp")
        choose_ddp_backend(cfg)
        assert cfg.distributed_training.ddp_backend == "pytorch_ddp"
    for backend in ("fully_sharded", "slowmo"):
        with pytest.raises(InvalidInput, match=f"^--ddp-backend {backend}: --arch shiftadd_supernet_wmt_en_de leaves"):
            choose_ddp_backend(distributed_cfg("shiftadd_supernet_wmt_en_de", backend))


def test_cpu_ranks_under_torchrun_take_its_world_size_and_gloo(monkeypatch) -> None:
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    cfg = distributed_cfg("transformer", "pytorch_ddp", world_size=1)  # fairseq's default on a machine without GPUs
    prepare_cpu_ranks(cfg)
    dt = cfg.distributed_training
    assert (dt.distributed_init_method, dt.distributed_world_size, dt.distributed_rank, dt.device_id) == ("env://", 2, 1, 0)
    assert dt.distributed_backend == "gloo" and dt.distributed_no_spawn
