"""The spectral Fréchet distance: 0 for identical sets, growing with an injected checkerboard."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from upsample_zoo.metrics.spectral import (
    SpectralFD,
    azimuthal_spectrum,
    frechet_distance,
    log_spectral_features,
    one_over_f_images,
    spectral_fd,
)


def _images(n: int, seed: int) -> torch.Tensor:
    return one_over_f_images(n, size=32, seed=seed, quantize=False)


def _checkerboard(kind: str, size: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if kind == "diagonal":  # (-1)^(x+y): only the (0.5, 0.5) bin, in the corner ring
        return ((-1.0) ** (x + y)).float()
    # one sub-pixel phase of four brighter (a stride-2 tconv's pattern): (0.5, 0), (0, 0.5) and (0.5, 0.5)
    return ((y % 2 == 0) & (x % 2 == 0)).float() * 2 - 0.5


def test_features_are_the_azimuthal_spectrum_plus_the_corner_ring():
    x = _images(4, seed=0)
    f = log_spectral_features(x)
    az = azimuthal_spectrum(x).per_image.double()
    assert f.shape == (4, az.shape[1])  # rings 1..16 and the corner ring: 17
    assert torch.allclose(f[:, :-1], az[:, 1:].log(), atol=1e-4)
    uint8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(log_spectral_features(uint8), f, atol=0.1)  # uint8 reads as [0, 1]


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 6)), rng.standard_normal((40, 6)) * 1.5 + 0.3
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    got = frechet_distance(*(torch.from_numpy(t) for t in (mu1, s1, mu2, s2)))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_identical_sets_give_zero():
    x = _images(64, seed=1)
    assert spectral_fd(x, x) == pytest.approx(0.0, abs=1e-6)
    # and as small rank-deficient sets (16 images, 17 features), as in the smoke runs
    assert spectral_fd(x[:16], x[:16]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["diagonal", "phase"])
def test_grows_with_checkerboard_amplitude(kind):
    real, fake = _images(200, seed=2), _images(200, seed=3)
    pattern = _checkerboard(kind)
    fds = [spectral_fd(real, (fake + a * pattern).clamp(0, 1)) for a in (0.0, 0.01, 0.02, 0.05, 0.1)]
    assert all(b > a for a, b in zip(fds, fds[1:])), fds
    assert fds[-1] > 20 * fds[0], fds  # the artifact dominates the sampling noise


def test_metric_accumulates_like_one_batch_and_checks_sizes():
    real, fake = _images(40, seed=4), _images(30, seed=5)
    m = SpectralFD()
    for chunk in real.split(7):
        m.update(chunk, real=True)
    for chunk in fake.split(9):
        m.update(chunk, real=False)
    assert m.compute().item() == pytest.approx(spectral_fd(real, fake), rel=1e-6)
    with pytest.raises(ValueError, match="share a size"):
        m.update(_images(2, seed=6)[..., :16, :16], real=False)
    with pytest.raises(RuntimeError, match="at least 2 fake"):
        lone = SpectralFD()
        lone.update(real, real=True)
        lone.update(fake[:1], real=False)
        lone.compute()
