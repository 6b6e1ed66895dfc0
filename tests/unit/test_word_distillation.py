"""word_distillation: the loss against a hand computation, validation unchanged, teacher checks."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairseq_shiftadd.criterions import word_distillation
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size

VOCAB = 12
LOAD_TEACHER = word_distillation.load_teacher  # the real loader (criterion() replaces it with a stand-in)


class TableModel(nn.Module):
    """A stand-in seq2seq model: logits looked up from the previous output token."""

    def __init__(self, seed: int):
        super().__init__()
        self.table = nn.Parameter(torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(seed)))

    def forward(self, src_tokens, src_lengths, prev_output_tokens):
        return (self.table[prev_output_tokens],)

    def get_normalized_probs(self, net_output, log_probs):
        return F.log_softmax(net_output[0], -1) if log_probs else F.softmax(net_output[0], -1)

    def get_targets(self, sample, net_output):
        return sample["target"]


def criterion(monkeypatch, weight: float):
    monkeypatch.setattr(word_distillation, "load_teacher", lambda path, task: TableModel(seed=1).eval())
    task = SimpleNamespace(target_dictionary=dictionary_of_size(VOCAB), source_dictionary=dictionary_of_size(VOCAB))
    return word_distillation.WordDistillationCriterion(task, False, 0.1, "teacher.pt", weight)


def sample():
    target = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 1]])  # 1 = padding
    prev = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 2]])
    return {"net_input": {"src_tokens": target, "src_lengths": torch.tensor([4, 3]), "prev_output_tokens": prev},
            "target": target, "ntokens": 7}


def label_smoothed(lprobs, target, eps=0.1):
    mask = target.ne(1)
    nll = -lprobs.gather(-1, target[..., None]).squeeze(-1)[mask].sum()
    smooth = -lprobs.sum(-1)[mask].sum()
    eps_i = eps / (VOCAB - 1)
    return (1 - eps - eps_i) * nll + eps_i * smooth


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_training_loss_mixes_label_smoothing_and_the_teachers_distribution(monkeypatch, weight):
    crit = criterion(monkeypatch, weight)
    student, teacher = TableModel(seed=0).train(), TableModel(seed=1)
    s = sample()
    loss, _, _ = crit(student, s)
    lprobs = F.log_softmax(student.table[s["net_input"]["prev_output_tokens"]], -1)
    q = F.softmax(teacher.table[s["net_input"]["prev_output_tokens"]], -1).detach()
    mask = s["target"].ne(1)
    soft = -(q * lprobs).sum(-1)[mask].sum()
    expected = (1 - weight) * label_smoothed(lprobs, s["target"]) + weight * soft
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert student.table.grad.abs().sum() > 0


def test_validation_loss_is_the_plain_label_smoothed_loss(monkeypatch):
    crit = criterion(monkeypatch, 0.5)
    student = TableModel(seed=0).eval()
    s = sample()
    loss, _, _ = crit(student, s)
    lprobs = F.log_softmax(student.table[s["net_input"]["prev_output_tokens"]], -1)
    torch.testing.assert_close(loss, label_smoothed(lprobs, s["target"]))


def test_teacher_is_not_trained_and_bad_settings_are_named(monkeypatch, tmp_path):
    crit = criterion(monkeypatch, 0.5)
    assert list(crit.parameters()) == []
    with pytest.raises(ValueError, match="--distill-weight"):
        criterion(monkeypatch, 1.5)
    task = SimpleNamespace(target_dictionary=dictionary_of_size(VOCAB))
    with pytest.raises(ValueError, match="--teacher"):
        LOAD_TEACHER("", task)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        LOAD_TEACHER(str(tmp_path / "missing.pt"), task)


class TableSupernet(TableModel):
    """A stand-in supernet: one logit table per subnet (named by a string), the largest first."""

    def __init__(self):
        super().__init__(seed=0)
        self.tables = nn.ParameterDict({name: nn.Parameter(torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(seed)))
                                        for seed, name in enumerate(("largest", "smallest"))})
        self.search_space = SimpleNamespace(largest=lambda: "largest")
        self.subnet = "largest"

    def forward(self, src_tokens, src_lengths, prev_output_tokens):
        return (self.tables[self.subnet][prev_output_tokens],)


def in_place_criterion(weight: float, sandwich: bool = True):
    task = SimpleNamespace(target_dictionary=dictionary_of_size(VOCAB), cfg=SimpleNamespace(sandwich=sandwich))
    return word_distillation.WordDistillationCriterion(task, False, 0.1, "largest", weight)


def test_in_place_the_largest_learns_from_data_and_teaches_the_others_what_it_predicted():
    crit, model, s = in_place_criterion(0.5), TableSupernet().train(), sample()
    prev = s["net_input"]["prev_output_tokens"]
    largest_loss, _, _ = crit(model, s)
    largest_lprobs = F.log_softmax(model.tables["largest"][prev], -1)
    torch.testing.assert_close(largest_loss, label_smoothed(largest_lprobs, s["target"]))
    model.subnet = "smallest"
    loss, _, _ = crit(model, s)
    lprobs = F.log_softmax(model.tables["smallest"][prev], -1)
    soft = -(largest_lprobs.exp() * lprobs).sum(-1)[s["target"].ne(1)].sum()
    torch.testing.assert_close(loss, 0.5 * label_smoothed(lprobs, s["target"]) + 0.5 * soft)
    loss.backward()  # the teacher's distribution is a constant: no gradient reaches the largest subnet's table
    assert model.tables["largest"].grad is None and model.tables["smallest"].grad.abs().sum() > 0


def test_in_place_needs_the_sandwich_and_the_largest_first():
    with pytest.raises(ValueError, match="--sandwich"):
        in_place_criterion(0.5, sandwich=False)
    crit, model = in_place_criterion(0.5), TableSupernet().train()
    model.subnet = "smallest"
    with pytest.raises(RuntimeError, match="largest subnet must run before"):
        crit(model, sample())
