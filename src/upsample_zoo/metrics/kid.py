"""KID: the kernel Inception distance (Bińkowski et al., ICLR 2018), unbiased at any sample size.

KID is the squared maximum mean discrepancy between the Inception features of generated images X (m of
them) and real images Y (n), with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)**3``:

    MMD² = Σ_{i≠j} k(x_i, x_j) / (m(m-1)) + Σ_{i≠j} k(y_i, y_j) / (n(n-1)) - 2 Σ_{i,j} k(x_i, y_j) / (mn)

computed here over **all** features at once (no random subsets: torchmetrics and torch-fidelity refuse
n below their subset size, clean-fid silently shrinks it). The estimate is unbiased, so for two samples
of one distribution it scatters around 0 and can be negative: it is never clipped.

Its standard error is a **delete-one-block jackknife**: both sets are split into ``blocks`` interleaved
blocks, MMD² is recomputed leaving out block b of each, and ``SE² = (B-1)/B Σ_b (θ_(b) - θ̄)²``. The kernel
is evaluated once, in row chunks (memory O(chunk x n)), and every leave-out estimate comes from the
block sums of the three kernel matrices, all in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from upsample_zoo.metrics.facts import MIN, MetricFact

CHUNK = 2048  # rows of a kernel matrix at a time


@dataclass(frozen=True)
class KIDResult:
    facts: ClassVar[dict[str, MetricFact]] = {
        "kid": MetricFact(MIN, "KID ×10³", "unbiased MMD² of the Inception features, cubic polynomial kernel, all "
                          "pairs (Bińkowski et al. 2018), x 10³"),
        "kid_se": MetricFact(None, "KID SE ×10³", "delete-one-block jackknife standard error of kid, x 10³"),
    }

    value: float  # MMD², unbiased (may be < 0)
    se: float  # jackknife standard error
    n_fake: int
    n_real: int
    blocks: int

    def scaled(self, factor: float = 1e3) -> tuple[float, float]:
        """(KID, SE) x ``factor``: KID is reported x 10³."""
        return self.value * factor, self.se * factor


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1) ** 3


def _block_sums(a: torch.Tensor, b: torch.Tensor, ga: torch.Tensor, gb: torch.Tensor, blocks: int,
                same: bool) -> torch.Tensor:
    """S[p, q] = Σ_{i in block p of a, j in block q of b} k(a_i, b_j), the diagonal left out when a is b."""
    out = torch.zeros(blocks, blocks, dtype=torch.float64)
    for start in range(0, a.shape[0], CHUNK):
        k = polynomial_kernel(a[start : start + CHUNK], b)
        if same:
            rows = torch.arange(k.shape[0])
            k[rows, rows + start] = 0
        per_b = torch.zeros(k.shape[0], blocks, dtype=torch.float64).index_add_(1, gb, k)
        out.index_add_(0, ga[start : start + CHUNK], per_b)
    return out


def _mmd2(sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def kernel_inception_distance(fake: torch.Tensor, real: torch.Tensor, blocks: int = 10) -> KIDResult:
    """KID of ``fake`` (m, d) against ``real`` (n, d) features, with its jackknife standard error."""
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"KID needs two (N, d) feature sets of one d, got {tuple(fake.shape)} and {tuple(real.shape)}")
    m, n = fake.shape[0], real.shape[0]
    if min(m, n) < 2 * blocks:
        raise ValueError(f"KID with {blocks} jackknife blocks needs at least {2 * blocks} images a side, "
                         f"got {m} and {n}")
    x, y = fake.to(torch.float64), real.to(torch.float64)
    gx, gy = torch.arange(m) % blocks, torch.arange(n) % blocks  # interleaved: each block spans the whole set
    bxx = _block_sums(x, x, gx, gx, blocks, same=True)
    byy = _block_sums(y, y, gy, gy, blocks, same=True)
    bxy = _block_sums(x, y, gx, gy, blocks, same=False)
    mb = torch.bincount(gx, minlength=blocks).double()
    nb = torch.bincount(gy, minlength=blocks).double()
    value = _mmd2(bxx.sum(), byy.sum(), bxy.sum(), torch.tensor(float(m)), torch.tensor(float(n)))
    # leave block b out of both sets: remove its rows and columns (its own block counted once)
    sxx = bxx.sum() - 2 * bxx.sum(1) + bxx.diagonal()
    syy = byy.sum() - 2 * byy.sum(1) + byy.diagonal()
    sxy = bxy.sum() - bxy.sum(1) - bxy.sum(0) + bxy.diagonal()
    loo = _mmd2(sxx, syy, sxy, m - mb, n - nb)
    se = math.sqrt((blocks - 1) / blocks * float(((loo - loo.mean()) ** 2).sum()))
    return KIDResult(float(value), se, m, n, blocks)


def feature_metrics(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Every metric of two Inception feature sets but FID: ``kid`` and ``kid_se`` (x 10³, jackknife over 10
    blocks, fewer below 20 samples a side) and precision, recall, density, coverage (metrics/prdc.py)."""
    from upsample_zoo.metrics.prdc import precision_recall_density_coverage

    kid, se = kernel_inception_distance(fake, real, blocks=min(10, min(len(fake), len(real)) // 2)).scaled()
    return {"kid": kid, "kid_se": se, **precision_recall_density_coverage(real, fake)}


def gathered(x: torch.Tensor) -> torch.Tensor:
    """Under DDP, every rank's rows (each rank scored its rank_share of one sample set), on every rank; else x."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, x.cpu())
    return torch.cat(parts)
