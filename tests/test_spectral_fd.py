"""The spectral Fréchet distance: 0 for identical sets, shape-only (blind to a contrast change, not to a
blur), and a 2-level Nyquist checkerboard well above the real-vs-real sampling noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from upsample_zoo.data.noise import one_over_f_images
from upsample_zoo.metrics.frechet import frechet_distance
from upsample_zoo.metrics.spectral_fd import SpectralFD, log_spectral_features, spectral_fd, spectral_feature_names
from upsample_zoo.metrics.spectrum import azimuthal_spectrum, power_spectrum


def _images(n: int, seed: int) -> torch.Tensor:
    return one_over_f_images(n, size=32, seed=seed, quantize=False)


def _checkerboard(kind: str, size: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if kind == "diagonal":  # (-1)^(x+y): only the (0.5, 0.5) bin, in the corner ring
        return ((-1.0) ** (x + y)).float()
    # one sub-pixel phase of four brighter (a stride-2 tconv's pattern): (0.5, 0), (0, 0.5) and (0.5, 0.5)
    return ((y % 2 == 0) & (x % 2 == 0)).float() * 2 - 0.5


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _levels(kind: str, size: int = 32) -> torch.Tensor:
    """A +-1 gray-level pattern at one Nyquist bin (int)."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return {"diagonal": (-1) ** (x + y), "vertical stripes": (-1) ** x, "horizontal stripes": (-1) ** y}[kind]


NAMES = [*(f"ring {r}/32" for r in range(1, 17)), "corner ring", "nyquist (16, 0)", "nyquist (0, 16)",
         "nyquist (16, 16)", "aliasing period 4", "aliasing period 8"]


def test_features_are_the_spectral_shape_plus_nyquist_and_aliasing_bins():
    x = _images(4, seed=0)
    f = log_spectral_features(x)
    assert spectral_feature_names(32, 32) == NAMES and f.shape == (4, len(NAMES))
    # shape: the log azimuthal spectrum (rings 1..16 and the corner ring) minus its own mean
    shape = f[:, :17]
    assert torch.allclose(shape.sum(1), torch.zeros(4, dtype=shape.dtype), atol=1e-9)
    offset = shape[:, :16] - azimuthal_spectrum(x).per_image.double()[:, 1:].log()
    assert torch.allclose(offset, offset[:, :1].expand(-1, 16), atol=1e-4)
    # Nyquist and aliasing bins: log P(bin) - log mean P(its ring), written out with an explicit radius mask
    p = power_spectrum(x).mean(1).double()
    fy, fx = torch.fft.fftfreq(32, dtype=torch.float64)[:, None], torch.fft.fftfreq(32, dtype=torch.float64)[None, :]
    ring = torch.round(torch.sqrt(fy**2 + fx**2) * 32).clamp(max=17)

    def contrast(r: int, c: int) -> torch.Tensor:
        return p[:, r, c].log() - p[:, ring == ring[r, c]].mean(1).log()

    for i, (r, c) in enumerate([(16, 0), (0, 16), (16, 16)]):
        assert torch.allclose(f[:, 17 + i], contrast(r, c), atol=1e-6), NAMES[17 + i]
    for i, period in enumerate((4, 8)):
        step = 32 // period
        bins = [(a * step, b * step) for a in range(period) for b in range(period)
                if np.gcd.reduce([a, b, period]) == 1]
        want = torch.stack([contrast(r, c) for r, c in bins], 1).max(1).values
        assert torch.allclose(f[:, 20 + i], want, atol=1e-6), NAMES[20 + i]
    # shape-only: any gain and offset leave every feature as it is; uint8 reads as [0, 1]
    assert torch.allclose(log_spectral_features(3.0 * x - 7.0), f, atol=1e-6)
    assert torch.allclose(log_spectral_features(0.5 + 0.5 * (x - 0.5)), f, atol=1e-6)
    assert torch.allclose(log_spectral_features(_u8(x)), f, atol=0.1)


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


def test_contrast_change_reads_as_sampling_noise_but_blur_does_not():
    """Shape-only: halving the contrast of the generated set stays within the noise of two independent real
    sets of the same size (the old level-sensitive features read 32.6 there, 1400x that noise); a 3x3 blur
    changes the spectral shape and still registers."""
    real, fake = _images(256, seed=10), _images(256, seed=11)
    noise = spectral_fd(_u8(real), _u8(fake))
    low_contrast = spectral_fd(_u8(real), _u8(0.5 + 0.5 * (fake - 0.5)))
    assert low_contrast <= 2 * noise, (low_contrast, noise)
    blurred = F.avg_pool2d(F.pad(fake, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    assert spectral_fd(_u8(real), _u8(blurred)) > 100 * noise


@pytest.mark.parametrize("kind,feature", [("diagonal", "nyquist (16, 16)"), ("vertical stripes", "nyquist (0, 16)"),
                                          ("horizontal stripes", "nyquist (16, 0)")])
def test_two_level_nyquist_checkerboard_stands_out_at_n256(kind, feature):
    """+-2 gray levels alternating at a Nyquist bin, added to 256 uint8 images, against the noise of two
    independent real sets of 256 (the old azimuthal features read 1.5x that noise)."""
    real, fake = _u8(_images(256, seed=12)), _u8(_images(256, seed=13))
    noise = spectral_fd(real, fake)
    checkered = (fake.short() + 2 * _levels(kind)).clamp(0, 255).to(torch.uint8)
    fd = spectral_fd(real, checkered)
    assert fd > 5 * noise, (fd, noise)
    # and it is the feature of that bin that moved, by more than one real-set standard deviation
    fr, fc = log_spectral_features(real), log_spectral_features(checkered)
    z = (fc.mean(0) - fr.mean(0)) / fr.std(0)
    assert NAMES[int(z.abs().argmax())] == feature and z.max() > 1, z


def test_bad_input_is_rejected():
    m = SpectralFD()
    x = _images(4, seed=7)
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="SpectralFD: 1 of 12288 values in the generated images .* not finite"):
        m.update(x, real=False)
    with pytest.raises(ValueError, match="empty batch of real images"):
        m.update(x[:0], real=True)
