"""KID against a numpy implementation of its formula and against torchmetrics; precision, recall, density
and coverage on point sets whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from upsample_zoo.metrics.kid import kernel_inception_distance
from upsample_zoo.metrics.prdc import precision_recall_density_coverage


def _mmd2_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Bińkowski et al.'s unbiased MMD², written from the formula with full kernel matrices."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean())


def _features(seed: int, n: int, d: int = 16, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).abs() + shift  # post-ReLU-like


@pytest.mark.parametrize("m,n", [(60, 60), (53, 71)])
def test_kid_matches_the_formula_and_its_jackknife(m, n):
    x, y = _features(0, m, shift=0.1), _features(1, n)
    got = kernel_inception_distance(x, y, blocks=5)
    assert got.value == pytest.approx(_mmd2_numpy(x.numpy(), y.numpy()), rel=1e-10, abs=1e-12)
    # the jackknife by brute force: drop block b (index % 5 == b) of both sets, recompute from scratch
    loo = np.array([_mmd2_numpy(x.numpy()[np.arange(m) % 5 != b], y.numpy()[np.arange(n) % 5 != b])
                    for b in range(5)])
    assert got.se == pytest.approx(np.sqrt(4 / 5 * ((loo - loo.mean()) ** 2).sum()), rel=1e-8)


def test_kid_matches_torchmetrics_on_the_same_features():
    """torchmetrics draws random subsets; with one subset of every sample the estimates coincide."""
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = _features(2, 40, shift=0.3).float(), _features(3, 40).float()
    tm = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=40)
    tm.update(y, real=True)
    tm.update(x, real=False)
    mean, _ = tm.compute()
    assert kernel_inception_distance(x, y, blocks=4).value == pytest.approx(float(mean), rel=1e-4)


def test_kid_is_unbiased_so_equal_distributions_can_score_below_zero():
    values = [kernel_inception_distance(_features(2 * s, 40), _features(2 * s + 1, 40), blocks=4).value
              for s in range(40)]
    assert min(values) < 0 < max(values)
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))
    shifted = kernel_inception_distance(_features(0, 40, shift=0.5), _features(1, 40), blocks=4)
    assert shifted.value > 5 * shifted.se > 0


def _blobs(centres, per: int, seed: int, spread: float = 0.05) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.tensor(c, dtype=torch.float64) + spread * torch.randn(per, len(c), generator=g,
                                                                                  dtype=torch.float64)
                      for c in centres])


MODES = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]


def test_identical_sets_score_perfectly_and_density_counts_each_ball_once_plus_itself():
    real = _blobs(MODES, 50, seed=0)
    got = precision_recall_density_coverage(real, real.clone())
    assert got["precision"] == got["recall"] == got["coverage"] == 1.0
    # each real ball holds its centre and its 5 nearest neighbours: 6 per ball, / (k = 5) per sample
    assert got["density"] == pytest.approx(6 / 5)


def test_disjoint_sets_score_zero():
    got = precision_recall_density_coverage(_blobs(MODES[:2], 40, seed=0), _blobs(MODES[2:], 40, seed=1))
    assert got == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def _lattice(centres, side: int = 6, step: float = 0.1) -> torch.Tensor:
    g = torch.arange(side, dtype=torch.float64) * step
    grid = torch.cartesian_prod(g, g)
    return torch.cat([grid + torch.tensor(c, dtype=torch.float64) for c in centres])


def test_a_generator_that_covers_half_the_modes_has_full_precision_and_half_recall():
    """Every generated sample is a real one (precision 1), but two of the four modes are missing."""
    got = precision_recall_density_coverage(_lattice(MODES), _lattice(MODES[:2]))
    assert got["precision"] == 1.0 and got["recall"] == 0.5 and got["coverage"] == 0.5


def test_generated_outliers_cost_precision_exactly():
    real = _blobs(MODES, 30, seed=0)
    fake = torch.cat([real.clone(), torch.full((6, 2), 100.0, dtype=torch.float64) + torch.arange(6.0)[:, None]])
    got = precision_recall_density_coverage(real, fake)
    assert got["precision"] == pytest.approx(120 / 126) and got["coverage"] == 1.0
