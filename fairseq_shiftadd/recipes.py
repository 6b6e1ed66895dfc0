"""fairseq-train recipes that several places share (the demo, the retrain command, tests, benches).

Each is a list of fairseq-train flags; callers add data, model, budget and output flags around it.
Learning rates are given as the strings the command line shows (``"2e-3"``).
"""
from __future__ import annotations


def translation_recipe(lr: str, warmup_updates: int) -> list[str]:
    """Adam (0.9, 0.98), inverse-square-root schedule after a linear warm-up, label smoothing 0.1:
    the Transformer recipe of Vaswani et al., which HAT and ShiftAddNAS train their supernets with."""
    return [
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", lr, "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", str(warmup_updates), "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
    ]


def retrain_recipe(lr: str, warmup_updates: int, max_update: int) -> list[str]:
    """HAT's recipe for training a searched subnet from scratch: Adam (0.9, 0.98), linear warm-up
    from 1e-7, then cosine to 1e-7 at ``max_update``; label smoothing 0.1, dropout 0.3."""
    return [
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "0.0",
        "--lr", lr, "--lr-scheduler", "cosine", "--warmup-updates", str(warmup_updates),
        "--warmup-init-lr", "1e-7", "--min-lr", "1e-7", "--max-update", str(max_update),
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--dropout", "0.3",
    ]
