"""Data-parallel training with fairseq's DDP on CPU ranks (gloo): N ranks train as 1 process with --update-freq N.

fairseq gives rank r of N the batches r, r+N, r+2N, ...: the very batches one process
accumulates in an update with ``--update-freq N``. With every source of randomness off (dropout,
attention and filter dropout) and one thread per process, the parameters must end equal.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import torch
import torch.multiprocessing
from torch import nn

from conftest import REPO, SPACE_FILE, run
from fairseq_shiftadd.distributed import UsedParameterDDP, digest, free_port
from fairseq_shiftadd.space import SearchSpace, write_subnet
from fairseq_shiftadd.venv_commands import VENV_BIN as BIN, venv_env

UPDATES = 6
# Test scale for the commands below, and every source of randomness off. One batch per rank and
# update: then both runs add the same two gradients, bit for bit (with --update-freq k the ranks sum
# k batches each before the all-reduce, a different order of float additions).
TEST_SCALE = [
    "--update-freq", "1", "--max-tokens", "1000", "--max-update", str(UPDATES), "--warmup-updates", "1",
    "--dropout", "0", "--attention-dropout", "0", "--weight-dropout", "0", "--seed", "1", "--num-workers", "0",
    "--no-progress-bar", "--log-interval", "1", "--no-save-optimizer-state", "--no-epoch-checkpoints",
]
TINY_SUPERNET = ["--arch", "shiftadd_supernet_tiny", "--search-space", SPACE_FILE]
SUBNET_LINE = re.compile(r"update (\d+) rank (\d+) subnets (\S+)")


def readme_supernet_command(data: Path) -> list[str]:
    """Step 1 of README's GPU workflow on ``data``, with the device flags changed: 2 CPU processes instead of 8 GPUs."""
    text = (REPO / "README.md").read_text()
    lines = text[text.index("torchrun --standalone --nproc_per_node 8 $(which fairseq-train)"):].splitlines()
    end = next(i for i, line in enumerate(lines) if not line.endswith("\\"))
    command = " ".join(line.rstrip("\\") for line in lines[: end + 1]).replace("$(which fairseq-train)", str(BIN / "fairseq-train"))
    tokens = shlex.split(command)
    assert tokens[:4] == ["torchrun", "--standalone", "--nproc_per_node", "8"] and "--fp16" in tokens
    tokens[0], tokens[3], tokens[tokens.index("--fp16")] = str(BIN / "torchrun"), "2", "--cpu"
    save_dir = tokens.index("--save-dir")  # each test saves under its tmp_path
    return [str(data) if token == "$DATA" else token for token in tokens[:save_dir] + tokens[save_dir + 2:]]


def without_launcher(torchrun_command: list[str]) -> list[str]:
    return torchrun_command[torchrun_command.index(str(BIN / "fairseq-train")):]


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_process():
    """Equal thread counts: a reduction over 1 or 2 threads rounds differently, which Adam amplifies."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


def parameters(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]


def subnets_per_rank(log: str) -> dict[int, dict[int, str]]:
    """{rank: {update: subnet fingerprints}} from --log-subnets lines."""
    ranks: dict[int, dict[int, str]] = {}
    for update, rank, names in SUBNET_LINE.findall(log):
        ranks.setdefault(int(rank), {})[int(update)] = names
    return ranks


def valid_losses(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"\| valid on 'valid' subset \| loss ([\d.]+)", log)]


@pytest.fixture(scope="module")
def subnet_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("subnet") / "hybrid.yml"
    write_subnet(SearchSpace.from_file(SPACE_FILE).representative_hybrid(), path)
    return path


def assert_same_parameters(one: Path, two: Path) -> None:
    reference, distributed = parameters(one / "checkpoint_last.pt"), parameters(two / "checkpoint_last.pt")
    assert distributed.keys() == reference.keys()
    for name, value in reference.items():
        torch.testing.assert_close(distributed[name], value, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("sharing", ["none", "plain", "heterogeneous"])
def test_supernet_on_two_ranks_trains_as_one_process_with_update_freq_2(sharing: str, toy_data: Path, tmp_path: Path) -> None:
    """README's command launched by torchrun vs the same fairseq-train with --update-freq doubled."""
    launched = [*readme_supernet_command(toy_data), *TINY_SUPERNET, *TEST_SCALE, "--weight-sharing", sharing, "--log-subnets",
                "--save-dir", str(tmp_path / "two")]
    two = run(launched)
    one = run([*without_launcher(launched), "--update-freq", "2", "--save-dir", str(tmp_path / "one")])
    assert_same_parameters(tmp_path / "one", tmp_path / "two")
    assert f"num_updates {UPDATES}" in two.stdout.replace("=", " ")
    assert valid_losses(two.stdout) == pytest.approx(valid_losses(one.stdout), abs=2e-3) and valid_losses(one.stdout)
    assert "--ddp-backend legacy_ddp" in two.stdout  # chosen for the supernet, without a flag
    space = SearchSpace.from_file(SPACE_FILE)
    expected = {u: f"random={digest(space.sample_for_update(1, u).key())}" for u in range(UPDATES)}
    assert subnets_per_rank(two.stdout) == {0: expected, 1: expected}  # every rank, every update
    assert subnets_per_rank(one.stdout) == {0: expected}


def test_standalone_subnet_on_two_spawned_cpu_ranks_trains_as_one_process(toy_data: Path, subnet_file: Path, tmp_path: Path) -> None:
    """fairseq's default pytorch_ddp on CPU ranks, which fairseq-train spawns itself (--distributed-world-size 2)."""
    args = [str(toy_data), "--user-dir", "fairseq_shiftadd", *TEST_SCALE, "--arch", "shiftadd_transformer", "--subnet",
            str(subnet_file), "--cpu", "--optimizer", "adam", "--lr", "3e-3", "--lr-scheduler", "inverse_sqrt",
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
    two = run(["fairseq-train", *args, "--distributed-world-size", "2", "--save-dir", str(tmp_path / "two")])
    run(["fairseq-train", *args, "--update-freq", "2", "--save-dir", str(tmp_path / "one")])
    assert_same_parameters(tmp_path / "one", tmp_path / "two")
    assert "distributed init (rank 0)" in two.stdout and f"num_updates {UPDATES}" in two.stdout.replace("=", " ")


def test_ranks_with_different_subnets_stop_with_one_line(toy_data: Path, tmp_path: Path) -> None:
    """Rank 1 gets another --seed, so another subnet sequence: every rank refuses the first update."""
    port = free_port()
    env = venv_env(cpu_only=True)
    ranks = [
        subprocess.Popen(
            [*without_launcher(readme_supernet_command(toy_data)), *TINY_SUPERNET, *TEST_SCALE, "--seed", str(rank + 1),
             "--distributed-world-size", "2", "--distributed-rank", str(rank), "--distributed-no-spawn",
             "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--save-dir", str(tmp_path)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank in range(2)
    ]
    for proc in ranks:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 2, stderr[-3000:]
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == (
            "fairseq-train: error: data-parallel ranks disagree on the subnets of update 0: "
            "every rank needs the same --seed and --search-space"
        )
        assert "| train_inner |" not in stdout  # no update ran


class ThreeLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        """a on every rank, b on rank 1 only, c never."""
        return self.b(self.a(x)) if rank == 1 else self.a(x)


def _grads_after_reduce(rank: int, port: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = ThreeLayers()
    ddp = UsedParameterDDP(model, process_group=torch.distributed.group.WORLD)
    ddp(torch.full((2, 3), float(rank + 1)), rank).sum().backward()
    ddp.all_reduce_grads()
    torch.save({name: p.grad for name, p in model.named_parameters()}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_used_parameter_ddp_averages_used_grads_and_leaves_unused_ones_none(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_grads_after_reduce, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    model = ThreeLayers()
    local = []
    for rank in range(2):  # the reference: each rank's gradients, computed here without communication
        model.zero_grad(set_to_none=True)
        model(torch.full((2, 3), float(rank + 1)), rank).sum().backward()
        local.append({name: p.grad for name, p in model.named_parameters()})
    for rank in range(2):
        grads = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name in ("a.weight", "a.bias"):
            torch.testing.assert_close(grads[name], (local[0][name] + local[1][name]) / 2)
        for name in ("b.weight", "b.bias"):  # used by rank 1 only: rank 0 contributes zeros
            torch.testing.assert_close(grads[name], local[1][name] / 2)
        assert grads["c.weight"] is None and grads["c.bias"] is None
