"""``--criterion word_distillation --teacher CKPT``: word-level knowledge distillation (Kim & Rush, 2016).

While training, the loss is (1 - w) * label-smoothed cross-entropy + w * cross-entropy to the
teacher's next-token distribution, w = ``--distill-weight``: a trained teacher (e.g. the
multiplication baseline) gives every target position a full distribution to learn from, which
helps students whose operators learn slowly per update. Validation computes the plain
label-smoothed loss, so validation losses (and checkpoint selection) stay comparable with models
trained without a teacher.

``--teacher largest`` is in-place distillation for supernet training (BigNAS, Yu et al. 2020;
README, supernet options): under ``--sandwich`` each update trains the largest subnet first, on the data
alone, and its next-token distribution (detached, dropout as trained) is the teacher of the
update's smallest and random subnets. No second model and no extra forward pass.
"""
# No `from __future__ import annotations`: fairseq reads the config dataclasses' field types at run time.

from dataclasses import dataclass, field
from pathlib import Path

import torch
from fairseq import checkpoint_utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)

from ..errors import InvalidInput, MissingInput


@dataclass
class WordDistillationConfig(LabelSmoothedCrossEntropyCriterionConfig):
    teacher: str = field(default="", metadata={"help": "trained teacher checkpoint with the same dictionary "
                                                        "(e.g. the baseline's checkpoint_best.pt), or 'largest': in-place "
                                                        "distillation, the supernet's largest subnet teaches the others "
                                                        "(--task shiftadd_supernet_translation --sandwich)"})
    distill_weight: float = field(default=0.5, metadata={"help": "weight w of the teacher's distribution in the "
                                                                  "training loss; the label-smoothed loss gets 1 - w"})


IN_PLACE_TEACHER = "largest"


def teacher_vocabulary_size(model_state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the teacher's output projection (its decoder's embedding when they are shared); None if it has neither."""
    for key in ("decoder.output_projection.weight", "decoder.embed_tokens.weight"):
        if key in model_state:
            return model_state[key].shape[0]
    return None


def load_teacher(path: str, task) -> torch.nn.Module:
    """The teacher model in eval mode, frozen; its dictionary must be the task's."""
    if not path:
        raise InvalidInput("--criterion word_distillation needs --teacher CHECKPOINT")
    if not Path(path).is_file():
        raise MissingInput(f"--teacher {path} does not exist")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)  # weights-only (checkpoint_compat), upgraded to a cfg
    output_size = teacher_vocabulary_size(state["model"])
    if output_size is not None and output_size != len(task.target_dictionary):
        raise InvalidInput(f"--teacher {path} predicts {output_size} words, the data's dictionary has {len(task.target_dictionary)}")
    models, _ = checkpoint_utils.load_model_ensemble([path], task=task, state=state)
    teacher = models[0].eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@register_criterion("word_distillation", dataclass=WordDistillationConfig)
class WordDistillationCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, teacher, distill_weight, ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        if not 0.0 <= distill_weight <= 1.0:
            raise InvalidInput(f"--distill-weight must be in [0, 1], got {distill_weight}")
        self.distill_weight = distill_weight
        self.in_place = teacher == IN_PLACE_TEACHER
        if self.in_place and not getattr(getattr(task, "cfg", None), "sandwich", False):
            raise InvalidInput("--teacher largest (in-place distillation) needs --task shiftadd_supernet_translation --sandwich")
        # A list, not an attribute: the teacher's parameters must stay out of the criterion's (trained) parameters.
        self._teacher = [] if self.in_place else [load_teacher(teacher, task)]
        self._cached: tuple[object, torch.Tensor] | None = None

    def teacher_log_probs(self, sample) -> torch.Tensor:
        """(target tokens, vocab) log-probabilities of the teacher, computed once per sample (a sandwich
        update scores one sample with several subnets); in place, those the largest subnet left."""
        fresh = self._cached is not None and self._cached[0] is sample
        if self.in_place and not fresh:
            raise RuntimeError("in-place distillation: the update's largest subnet must run before the others")
        if not fresh:
            teacher = self._teacher[0]
            device = sample["target"].device
            if next(teacher.parameters()).device != device:
                teacher.to(device)
            with torch.no_grad():
                lprobs, _ = self.get_lprobs_and_target(teacher, teacher(**sample["net_input"]), sample)
            self._cached = (sample, lprobs.float())
        return self._cached[1]

    def compute_loss(self, model, net_output, sample, reduce=True):
        loss, nll_loss = super().compute_loss(model, net_output, sample, reduce)
        if not model.training or self.distill_weight == 0.0:
            return loss, nll_loss
        if not reduce:
            raise ValueError("word_distillation computes a reduced loss only")
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        if self.in_place and model.subnet == model.search_space.largest():
            self._cached = (sample, lprobs.detach().float())
            return loss, nll_loss
        soft = -(self.teacher_log_probs(sample).exp() * lprobs).sum(-1)
        soft = soft.masked_fill(target.eq(self.padding_idx), 0.0).sum()
        return (1.0 - self.distill_weight) * loss + self.distill_weight * soft, nll_loss
