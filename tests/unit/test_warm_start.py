"""``warm_start.copy_shared_weights``: every tensor of the source checkpoint lands in the model under its name,
the model's other tensors stay as they were, and a source that does not fit is one line naming the tensor."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fairseq_shiftadd.errors import InvalidInput, MissingInput
from fairseq_shiftadd.warm_start import copy_shared_weights


def small() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))


def large() -> torch.nn.Module:  # ``small`` plus a layer: its state dict holds small's names and shapes
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


def saved(module: torch.nn.Module, path: Path) -> Path:
    torch.save({"model": module.state_dict(), "cfg": None}, path)
    return path


def test_copies_the_shared_tensors_and_leaves_the_rest(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source, target = small(), large()
    with torch.no_grad():
        source[1].weight.uniform_(2, 3)  # LayerNorm's initial weight is all ones: make it tell
    untouched = {name: tensor.clone() for name, tensor in target.state_dict().items() if name.startswith("2.")}
    copied = copy_shared_weights(target, saved(source, tmp_path / "source.pt"))
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name
    for name, tensor in untouched.items():
        assert torch.equal(target.state_dict()[name], tensor), name
    assert (copied.tensors, copied.of_tensors) == (4, 6)
    assert (copied.parameters, copied.of_parameters) == (4 * 8 + 8 + 8 + 8, 4 * 8 + 8 + 8 + 8 + 8 * 3 + 3)


def test_a_tensor_the_model_lacks_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"--init-from-supernet: .*source.pt holds 2.weight, which the supernet being trained lacks"):
        copy_shared_weights(small(), saved(large(), tmp_path / "source.pt"))


def test_a_shape_mismatch_is_named_and_nothing_is_copied(tmp_path: Path) -> None:
    source = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(6))
    target = small()
    before = {name: tensor.clone() for name, tensor in target.state_dict().items()}
    with pytest.raises(InvalidInput, match=r"holds 1.weight of shape \(6,\), the supernet being trained \(8,\)"):
        copy_shared_weights(target, saved(source, tmp_path / "source.pt"))
    assert all(torch.equal(target.state_dict()[name], tensor) for name, tensor in before.items())


def test_a_missing_file_or_one_without_weights_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MissingInput, match="--init-from-supernet: checkpoint .*absent.pt does not exist"):
        copy_shared_weights(small(), tmp_path / "absent.pt")
    torch.save({"cfg": None}, tmp_path / "empty.pt")
    with pytest.raises(InvalidInput, match="holds no model weights"):
        copy_shared_weights(small(), tmp_path / "empty.pt")
