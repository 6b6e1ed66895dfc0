"""Heterogeneous weight sharing (ShiftAddNAS section 3.3): T(w), a learnable map to a Laplacian shape.

Multiplication weights are roughly Gaussian while add-layer weights want a Laplacian. When add
operators share a weight tensor with multiplication/shift operators, they use T(w) = s[bin(w)] * w
with one learnable scale per bin, and a KL term pulls the distribution of T(w) towards
Laplace(0, b). The bin edges cover a fixed range stored as a buffer (set from the initial weight),
so the transform of a leading slice equals the slice of the transform: elastic subnets and
exported standalone subnets compute the same T(w).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LaplaceTransform(nn.Module):
    """Per-bin learnable scaling of a shared weight, plus its KL regulariser.

    Args:
        weight: the shared weight at initialisation (fixes the bin range).
        num_bins: number of equal-width bins over [-range, range] (100 in the public CV code).
    """

    def __init__(self, weight: Tensor, num_bins: int = 100):
        super().__init__()
        if num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {num_bins}")
        self.num_bins = num_bins
        self.scale = nn.Parameter(torch.ones(num_bins))
        self.register_buffer("bound", weight.detach().abs().max().clamp_min(1e-6).float().reshape(()))

    def bins(self, weight: Tensor) -> Tensor:
        """Bin index of every entry (entries beyond the range fall in the end bins)."""
        position = (weight.detach() + self.bound) / (2 * self.bound) * self.num_bins
        return position.long().clamp_(0, self.num_bins - 1)

    def forward(self, weight: Tensor) -> Tensor:
        return self.scale.to(weight.dtype)[self.bins(weight)] * weight

    @staticmethod
    def kl_to_laplace(values: Tensor, num_bins: int = 64) -> Tensor:
        """KL(P || Laplace(0, b)) of the soft histogram P of ``values``, b the MLE mean |v|.

        The histogram uses linear (triangular) binning so the KL is differentiable in ``values``;
        b and the histogram range are treated as constants so the term shapes the distribution
        rather than its scale.
        """
        flat = values.reshape(-1).float()
        limit = flat.detach().abs().max().clamp_min(1e-8)
        scale_b = flat.detach().abs().mean().clamp_min(1e-8)
        position = (flat + limit) / (2 * limit) * (num_bins - 1)
        lower = position.detach().floor().clamp(0, num_bins - 2)
        upper_weight = position - lower
        hist = torch.zeros(num_bins, device=flat.device, dtype=flat.dtype)
        hist = hist.index_add(0, lower.long(), 1 - upper_weight).index_add(0, lower.long() + 1, upper_weight)
        p = hist / hist.sum()
        centres = torch.linspace(-1.0, 1.0, num_bins, device=flat.device) * limit
        half_width = limit / (num_bins - 1)
        q = _laplace_cdf(centres + half_width, scale_b) - _laplace_cdf(centres - half_width, scale_b)
        q = q / q.sum()
        eps = 1e-8
        return (p * ((p + eps).log() - (q + eps).log())).sum()


def _laplace_cdf(x: Tensor, scale: Tensor) -> Tensor:
    return torch.where(x < 0, 0.5 * torch.exp(x / scale), 1 - 0.5 * torch.exp(-x / scale))
