"""The checkerboard score's batched spectra: one buffer and one FFT for a map and its gradient map, held to the
float64 definition bin by bin, batch-split invariant, and logits scored as their class probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from upsample_zoo.metrics.checkerboard import CheckerboardScore, analysis_size
from upsample_zoo.metrics.spectrum import (
    half_power_sums,
    hann_window_2d,
    power_spectrum,
)

from ..helpers.spectra import np_spectrum as _np_spectrum


@pytest.mark.parametrize("side,scale", [(112, 16), (64, 8), (33, 2), (16, 2), (12, 2)])
def test_gradient_spectrum_of_the_window_equals_the_cropped_whole_map(side, scale):
    # batch_power_sums differentiates only the analysed window when it can; the numbers must be those
    # of the whole image's gradient map cropped to the window
    from upsample_zoo.metrics.checkerboard import analysis_size, batch_power_sums, gradient_energy

    def _power_sum(maps):
        return power_spectrum(maps).sum(dim=(0, 1))

    x = torch.rand(2, 5, side, side, generator=torch.Generator().manual_seed(side))
    c, hh, ww = analysis_size(side, side, scale)
    _, grad, n = batch_power_sums(x, scale)
    whole = gradient_energy(x)
    if c + hh < side:
        expected = _power_sum(whole[..., c:c + hh, c:c + ww])
    else:  # no room for the extra row: the map's missing last row/column is zero-padded
        expected = _power_sum(F.pad(whole[..., :hh, :ww], (0, ww - whole.shape[-1], 0, hh - whole.shape[-2])))
    assert n == 10
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))


def test_one_batched_update_equals_updates_image_by_image():
    """The segmentation task scores a batch's windows in one update (one check, one FFT call); the metric keeps
    rfft2 half-planes and mirrors them when read. Same numbers as one image at a time, to float32 rounding."""
    x = torch.rand(5, 4, 40, 40, generator=torch.Generator().manual_seed(7))
    one, each = CheckerboardScore(scale=4), CheckerboardScore(scale=4)
    one.update(x)
    for image in x:
        each.update(image[None])
    torch.testing.assert_close(one.mean_power(), each.mean_power(), rtol=1e-5, atol=0)
    a, b = one.compute(), each.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert abs(float(a[k]) - float(b[k])) <= 1e-4 * max(1.0, abs(float(b[k]))), k
    # the mirrored half-plane is the full spectrum: P(-k) = P(k) of the windowed, mean-free image
    c, hh, ww = analysis_size(40, 40, 4)
    win = hann_window_2d(hh, ww)
    crop = x[..., c:c + hh, c:c + ww]
    full = torch.fft.fft2((crop - crop.mean((-2, -1), keepdim=True)) * win).abs().square().mean((0, 1))
    torch.testing.assert_close(one.mean_power(), full / win.square().sum(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("side", [112, 45])
def test_class_map_power_sums_equal_the_float64_definition_bin_by_bin(side):
    """The spectra the segmentation task accumulates (softmax maps of 21 classes, a batch of windows, the
    image and its gradient-energy map in one buffer) equal the float64 numpy definition to 1e-5 relative in
    every bin: summing |X|^2 over batch and channels before adding re^2 and im^2 changes float32 rounding
    only (measured: at most 7e-7)."""
    from upsample_zoo.metrics.checkerboard import batch_power_sums

    x = torch.randn(3, 21, side, side, generator=torch.Generator().manual_seed(side)).mul(3).softmax(1)
    power, grad, n = batch_power_sums(x, 2)
    c, hh, ww = analysis_size(side, side, 2)
    xn = x.double().numpy()
    gn = np.abs(np.diff(xn, axis=-1))[..., :-1, :] + np.abs(np.diff(xn, axis=-2))[..., :, :-1]
    assert n == 63
    np.testing.assert_allclose(power.double().numpy(), _np_spectrum(xn[..., c:c + hh, c:c + ww]) * n, rtol=1e-5)
    np.testing.assert_allclose(grad.double().numpy(), _np_spectrum(gn[..., c:c + hh, c:c + ww]) * n, rtol=1e-5)


def test_the_metrics_batched_half_plane_is_the_power_spectrum_summed():
    """One definition of P: the checkerboard's batched half-plane sums mirror to power_spectrum's P summed over
    batch and channels."""
    from upsample_zoo.metrics.checkerboard import full_spectrum

    x = torch.rand(3, 4, 24, 30, generator=torch.Generator().manual_seed(5))
    half = half_power_sums(x[None].clone())[0]
    torch.testing.assert_close(full_spectrum(half, 30), power_spectrum(x).sum(dim=(0, 1)), rtol=1e-5, atol=1e-6)


def test_logits_with_softmax_dim_score_as_their_class_probabilities():
    """update(logits, softmax_dim=1) takes the softmax on the pixels the score reads only: per pixel over the
    classes, so it commutes with the crop, and the sums equal those of the full softmax maps (to float32
    rounding: the vectorised exp may round a strided and a contiguous row differently in the last bit)."""
    logits = 3 * torch.randn(3, 21, 112, 112, generator=torch.Generator().manual_seed(1))
    full, cropped = CheckerboardScore(scale=16), CheckerboardScore(scale=16)
    full.update(logits.softmax(1))
    cropped.update(logits, softmax_dim=1)
    torch.testing.assert_close(cropped.power_sum, full.power_sum, rtol=1e-5, atol=0)
    torch.testing.assert_close(cropped.grad_sum, full.grad_sum, rtol=1e-5, atol=0)
    a, b = full.compute(), cropped.compute()
    assert {k: float(v) for k, v in b.items()} == pytest.approx({k: float(v) for k, v in a.items()}, rel=1e-5, abs=1e-6)
    logits[1, 4, 50, 60] = float("nan")  # inside the read window: one NaN logit spoils that pixel's classes
    with pytest.raises(ValueError, match="not finite"):
        CheckerboardScore(scale=16).update(logits, softmax_dim=1)
