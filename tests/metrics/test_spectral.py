"""Spectra beyond the checkerboard score: azimuthal spectra against numpy rings, the mean log spectrum, the
differentiable spectral regulariser, and the figures."""


from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from upsample_zoo.data.noise import one_over_f_images
from upsample_zoo.figures import save_azimuthal_figure, save_spectrum_figure
from upsample_zoo.metrics.checkerboard import CheckerboardScore
from upsample_zoo.metrics.spectrum import (
    azimuthal_spectrum,
    mean_log_spectrum,
    spectral_loss,
)
from upsample_zoo.upsamplers import TransposedConv

from ..helpers.spectra import np_radial as _np_radial

# ---- golden reference: the definition written out in numpy, loop by loop ----------------


# ---- spectra, regulariser, figures ---------------------------------------------------------------

def test_azimuthal_spectrum_white_and_one_over_f():
    g = torch.Generator().manual_seed(0)
    white = 0.5 + 0.1 * torch.randn(8, 3, 64, 64, generator=g)
    az = azimuthal_spectrum(white)
    assert az.per_image.shape == (8, 33) and az.mean.shape == (33,)
    assert az.freqs[0] == 0 and az.freqs[-1] == pytest.approx(0.5)
    band = (az.freqs >= 0.05) & (az.freqs <= 0.45)
    # A periodic Hann window keeps E[P] = sigma^2 for white noise.
    assert torch.allclose(az.mean[band], torch.full_like(az.mean[band], 0.01), rtol=0.15)
    pink = azimuthal_spectrum(one_over_f_images(8, 3, 64, seed=1, quantize=False))
    band = (pink.freqs >= 0.05) & (pink.freqs <= 0.4)
    slope = np.polyfit(np.log(pink.freqs[band].numpy()), np.log(pink.mean[band].numpy()), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.3)  # amplitude 1/f -> power 1/f^2


@pytest.mark.parametrize("periodic", [True, False])
def test_azimuthal_spectrum_equals_numpy_rings(periodic):
    # the one radial spectrum serves the metrics (periodic Hann) and the synthetic data's slope check
    # (numpy's symmetric hanning): both against a direct numpy computation, ring by ring
    x = np.random.default_rng(3).normal(size=(4, 2, 24, 30))
    x[:, :, :, ::3] += 1.5  # a vertical stripe pattern: power concentrated on a few rings
    h, w = x.shape[-2:]
    win = np.outer(np.hanning(h), np.hanning(w)) if not periodic else np.outer(
        0.5 - 0.5 * np.cos(2 * np.pi * np.arange(h) / h), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w))
    power = np.abs(np.fft.fft2((x - x.mean(axis=(-2, -1), keepdims=True)) * win)) ** 2 / (win**2).sum()
    f, expected = _np_radial_batch(power.mean(axis=1))
    az = azimuthal_spectrum(torch.from_numpy(x), periodic_window=periodic)
    np.testing.assert_allclose(az.freqs.numpy(), f)
    np.testing.assert_allclose(az.per_image.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(az.mean.numpy(), expected.mean(axis=0), rtol=1e-6)


def _np_radial_batch(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = [_np_radial(q) for q in p]
    return rows[0][0], np.stack([r[1] for r in rows])


def test_mean_log_spectrum_is_centred():
    x = 0.5 + 0.2 * torch.cos(2 * torch.pi * 4 * torch.arange(64) / 64).expand(2, 1, 64, 64)
    db = mean_log_spectrum(x)
    assert db.shape == (64, 64)
    peak = divmod(int(db.argmax()), 64)
    assert peak in {(32, 28), (32, 36)}


def test_spectral_loss_gradient_reaches_generator_weights():
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(8, 8 * 16 * 16), nn.Unflatten(1, (8, 16, 16)), nn.ReLU(),
                        TransposedConv(8, 3, scale=2), nn.Sigmoid())
    real = one_over_f_images(8, 3, 32, seed=0)
    z = torch.randn(8, 8)
    loss = spectral_loss(gen(z), real)
    assert spectral_loss(real.float() / 255, real).item() == pytest.approx(0.0, abs=1e-10)
    loss.backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert gen[3].weight.grad.abs().sum() > 0 and gen[0].weight.grad.abs().sum() > 0
    opt = torch.optim.Adam(gen.parameters(), lr=1e-2)
    for _ in range(15):
        opt.zero_grad()
        step_loss = spectral_loss(gen(z), real)
        step_loss.backward()
        opt.step()
    assert spectral_loss(gen(z), real).item() < 0.5 * loss.item()


def test_spectral_loss_trains_after_the_metric_ran_in_inference_mode():
    # evaluation (FID, the checkerboard metric) runs first in one process and fills the cached
    # constants; if any were inference tensors, autograd would refuse them in the next training step
    real = one_over_f_images(4, 3, 40, seed=3)
    with torch.inference_mode():
        m = CheckerboardScore(scale=2)
        m.update(real)
        m.compute()
        azimuthal_spectrum(real)
    fake = torch.rand(4, 3, 40, 40, requires_grad=True)
    spectral_loss(fake, real).backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_figures_are_written_atomically(tmp_path):
    m = CheckerboardScore(scale=2)
    m.update(one_over_f_images(4, 3, 48, seed=1))
    m.update(one_over_f_images(4, 3, 48, seed=2), real=True)
    a = save_spectrum_figure(m.mean_power(), tmp_path / "spectrum.png")
    fake, real = azimuthal_spectrum(one_over_f_images(4, 3, 48, seed=1)), azimuthal_spectrum(
        one_over_f_images(4, 3, 48, seed=2))
    b = save_azimuthal_figure({"fake": (fake.freqs, fake.mean), "real": (real.freqs, real.mean)},
                              tmp_path / "azimuthal.png")
    for p in (a, b):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["azimuthal.png", "spectrum.png"]
