"""fairseq criterion ``latency_predictor``: MSE on normalised latency, reported in the units that matter.

Logged: ``loss`` (MSE, normalised), ``rmse_ms``, ``mape`` (mean absolute percentage error, %),
and, on validation, ``kendall_tau`` of predicted vs measured latency over the *whole* valid set.
fairseq reduces validation metrics one batch at a time, so tau cannot come from per-batch
numbers: each batch's predictions go into fairseq's concatenating meter (``_pred_ms``,
``_true_ms``) and tau is a derived meter over everything gathered so far.
"""
from __future__ import annotations

import math

import torch
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.logging import metrics
from fairseq.logging.meters import MetersDict
from scipy.stats import kendalltau


@register_criterion("latency_predictor")
class LatencyPredictorCriterion(FairseqCriterion):
    def forward(self, model, sample: dict, reduce: bool = True) -> tuple[torch.Tensor, int, dict]:
        prediction = model(**sample["net_input"])  # [B], normalised
        error = prediction - sample["target"]
        loss = error.pow(2).sum() if reduce else error.pow(2)
        with torch.no_grad():
            pred_ms = model.to_ms(prediction.detach().float())
            true_ms = sample["latency_ms"]
            logging_output = {
                "loss": loss.detach().sum().item(),
                "sq_err_ms": (pred_ms - true_ms).pow(2).sum().item(),
                "abs_pct_err": ((pred_ms - true_ms).abs() / true_ms).sum().item() * 100.0,
                "ntokens": sample["ntokens"],
                "nsentences": sample["nsentences"],
                "sample_size": sample["nsentences"],
            }
            if not self.training:
                logging_output["pred_ms"] = pred_ms.cpu()
                logging_output["true_ms"] = true_ms.cpu()
        return loss, sample["nsentences"], logging_output

    @staticmethod
    def reduce_metrics(logging_outputs: list[dict]) -> None:
        count = sum(log.get("sample_size", 0) for log in logging_outputs)
        if count == 0:
            return
        metrics.log_scalar("loss", sum(log["loss"] for log in logging_outputs) / count, count, round=4)
        metrics.log_scalar("_mse_ms", sum(log["sq_err_ms"] for log in logging_outputs) / count, count)
        metrics.log_derived("rmse_ms", lambda meters: round(math.sqrt(meters["_mse_ms"].avg), 4))
        metrics.log_scalar("mape", sum(log["abs_pct_err"] for log in logging_outputs) / count, count, round=3)
        predictions = [log["pred_ms"] for log in logging_outputs if "pred_ms" in log]
        if predictions:
            metrics.log_concat_tensor("_pred_ms", torch.cat(predictions))
            metrics.log_concat_tensor("_true_ms", torch.cat([log["true_ms"] for log in logging_outputs if "true_ms" in log]))
            metrics.log_derived("kendall_tau", _kendall_tau)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        """No: validation outputs carry per-sample predictions for Kendall tau."""
        return False


def _kendall_tau(meters: MetersDict) -> float:
    """Kendall tau-b over every prediction concatenated in this aggregation (nan below 2 samples)."""
    pred, true = meters["_pred_ms"].tensor, meters["_true_ms"].tensor
    if pred is None or len(pred) < 2:
        return float("nan")
    return round(float(kendalltau(pred.numpy(), true.numpy()).statistic), 4)
