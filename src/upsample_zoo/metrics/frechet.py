"""The Fréchet distance between two Gaussians, and Gaussian fits from running sums: one implementation
for FID (its real statistics and floor) and the spectral FD."""

from __future__ import annotations

import torch
from torch import Tensor


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), in float64.

    Tr (S1 S2)^1/2 = Tr (S1^1/2 S2 S1^1/2)^1/2 (same eigenvalues), computed with symmetric eigensolvers,
    so it is stable for the rank-deficient covariances of small sample sets. Clamped at 0.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    diff = mu1 - mu2
    evals, evecs = torch.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    m = root1 @ sigma2 @ root1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return (diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean).clamp(min=0)


def gaussian_from_sums(total: Tensor, outer_sum: Tensor, n: Tensor | int) -> tuple[Tensor, Tensor]:
    """(mean, unbiased covariance) of n feature vectors from their sum and the sum of their outer products,
    the states a metric accumulates (and DDP sums) batch by batch."""
    mu = total / n
    return mu, (outer_sum - n * torch.outer(mu, mu)) / (n - 1)
