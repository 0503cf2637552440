"""The alias-free FIR family (fir_sinc, tconv_blur): frequency responses by FFT, the module against scipy's
upfirdn, the grid, and the checkerboard that cannot appear whatever the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import upfirdn

from upsample_zoo.upsamplers import FIRSincUp, InterpConv, TConvBlurUp, TransposedConv
from upsample_zoo.upsamplers.fir import binomial_blur, kaiser_lowpass


def response_db(h: np.ndarray, scale: int, n: int = 1 << 14) -> tuple[np.ndarray, np.ndarray]:
    """|H(f)| in dB relative to the DC gain of one polyphase branch (scale: zero-insertion keeps 1/scale of
    the samples), over f in cycles per output sample."""
    f = np.fft.rfftfreq(n)
    return f, 20 * np.log10(np.maximum(np.abs(np.fft.rfft(h, n)) / scale, 1e-300))


@pytest.mark.parametrize("scale", [2, 4])
def test_kaiser_lowpass_meets_its_passband_and_a_40db_stopband_at_the_output_nyquist_band(scale):
    h = kaiser_lowpass(scale)  # 60 dB design, transition 1/(2s) centred on the cutoff 1/(2s)
    f, db = response_db(h, scale)
    cutoff, half = 1 / (2 * scale), 1 / (4 * scale)
    assert len(h) % (2 * scale) == 0 and np.allclose(h, h[::-1])  # even, symmetric: centred on a half-sample
    assert np.abs(db[f <= cutoff - half]).max() < 0.05  # passband ripple, dB
    assert db[f >= cutoff + half].max() < -55  # the designed 60 dB, within the window's rounding
    assert db[f >= 0.5 - half].max() < -40  # the output's Nyquist band: at least 40 dB, as asked
    for k in range(1, scale):  # every polyphase branch sums to 1: an exact zero at f = k / scale
        assert abs(np.sum(h * np.exp(-2j * np.pi * k / scale * np.arange(len(h))))) < 1e-12


def test_binomial_blur_is_1_3_3_1_with_zeros_at_every_period_of_the_scale():
    np.testing.assert_allclose(binomial_blur(2), np.array([1, 3, 3, 1]) / 8)
    for scale in (2, 4):
        b = binomial_blur(scale)
        for k in range(1, scale):
            assert abs(np.sum(b * np.exp(-2j * np.pi * k / scale * np.arange(len(b))))) < 1e-12


def _identity_proj(up: FIRSincUp) -> FIRSincUp:
    with torch.no_grad():
        up.proj.weight.copy_(torch.eye(up.out_channels, up.in_channels).view_as(up.proj.weight))
        up.proj.bias.zero_()
    return up


@pytest.mark.parametrize("scale", [2, 4])
def test_fir_sinc_is_zero_insertion_then_the_filter_as_scipy_upfirdn_computes_it(scale):
    """A signal along the rows only: each output row is scipy.signal.upfirdn(h, replicate-padded row, up=s),
    shifted so that input pixel i sits over output pixels [s*i, s*i + s)."""
    up = _identity_proj(FIRSincUp(1, 1, scale=scale))
    h = kaiser_lowpass(scale)
    row = np.random.default_rng(0).normal(size=11)
    x = torch.tensor(np.tile(row, (5, 1)), dtype=torch.float32)[None, None]
    got = up(x)[0, 0].detach().numpy()
    pad = len(h)  # generous: the crop below reads only fully covered outputs
    full = upfirdn(h, np.pad(row, pad, mode="edge"), up=scale)
    start = scale * pad + (len(h) - scale) // 2
    want = full[start:start + scale * len(row)]
    np.testing.assert_allclose(got, np.tile(want, (5 * scale, 1)), atol=1e-5)


def _centroid(y: torch.Tensor) -> tuple[float, float]:
    w = y.abs()[0, 0]
    ys, xs = torch.meshgrid(torch.arange(w.shape[0]), torch.arange(w.shape[1]), indexing="ij")
    return float((w * ys).sum() / w.sum()), float((w * xs).sum() / w.sum())


@pytest.mark.parametrize("scale", [2, 4])
def test_an_impulse_lands_where_bilinear_puts_it(scale):
    """Input pixel (5, 6) of 12x13 lands centred at (s*5 + (s-1)/2, s*6 + (s-1)/2), as with bilinear
    (align_corners=False): the grid every operator keeps. tconv_blur with a symmetric (all-ones) kernel."""
    x = torch.zeros(1, 1, 12, 13)
    x[0, 0, 5, 6] = 1.0
    fir = _identity_proj(FIRSincUp(1, 1, scale=scale))
    blur = TConvBlurUp(1, 1, scale=scale, bias=False)
    bilinear = InterpConv(1, 1, scale=scale, mode="bilinear")
    with torch.no_grad():
        blur.tconv.weight.fill_(1.0)
        bilinear.proj.weight.fill_(1.0)
        bilinear.proj.bias.zero_()
        want = (scale * 5 + (scale - 1) / 2, scale * 6 + (scale - 1) / 2)
        assert _centroid(bilinear(x)) == pytest.approx(want, abs=1e-4)
        for up in (fir, blur):
            y = up(x)
            assert y.shape[-2:] == (12 * scale, 13 * scale)
            assert _centroid(y) == pytest.approx(want, abs=1e-3), type(up).__name__


@pytest.mark.parametrize("scale", [2, 4])
def test_constant_in_constant_out_everywhere_for_any_weights(scale):
    """No period-scale pattern (the checkerboard) can appear: random weights, a constant input, and every
    output pixel, the border included, holds the same value. The plain tconv fails this with the same kind of
    weights, so the test can tell."""
    torch.manual_seed(0)
    x = torch.full((2, 4, 7, 9), 0.7)
    with torch.no_grad():
        for up in (TConvBlurUp(4, 3, scale=scale), FIRSincUp(4, 3, scale=scale), FIRSincUp(4, 6, scale=scale)):
            for p in up.parameters():
                p.copy_(torch.randn_like(p))
            y = up(x)
            spread = (y - y[..., :1, :1]).abs().max()
            assert spread < 1e-5 * y.abs().max(), type(up).__name__
        plain = TransposedConv(4, 3, scale=scale)
        plain.tconv.weight.copy_(torch.randn_like(plain.tconv.weight))
        y = plain(x)[..., 2:-2, 2:-2]  # even away from its border, a plain tconv's output is periodic
        assert (y - y[..., :1, :1]).abs().max() > 1e-2


def test_tconv_blur_is_the_tconv_then_the_fixed_blur():
    """The module against its definition, computed with numpy: ConvTranspose2d (k3, s2) of the replicate-padded
    input, then the separable [1, 3, 3, 1] / 8 blur, cropped to the centred 2h x 2w."""
    torch.manual_seed(1)
    up = TConvBlurUp(2, 1, scale=2)
    x = torch.randn(1, 2, 5, 6)
    with torch.no_grad():
        got = up(x)[0, 0].numpy()
        z = up.tconv(torch.nn.functional.pad(x, (3, 3, 3, 3), mode="replicate"))[0, 0].numpy()
    b = binomial_blur(2)
    z = np.apply_along_axis(lambda r: np.convolve(r, b), 0, z)
    z = np.apply_along_axis(lambda r: np.convolve(r, b), 1, z)
    start = 2 * 3 + 2  # 3 padded pixels, then the pair's centre
    np.testing.assert_allclose(got, z[start:start + 10, start:start + 12], atol=1e-5)


def test_fir_sinc_refuses_a_stopband_no_window_reaches():
    from upsample_zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="stopband_db"):
        FIRSincUp(4, 4, stopband_db=10)
    with pytest.raises(ConfigError, match="transition"):
        FIRSincUp(4, 4, transition=0.9)
