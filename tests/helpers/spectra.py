"""The golden references of the spectral tests, written out in numpy: the mean windowed power spectrum of a
batch (the checkerboard score's definition) and its ring means (the azimuthal spectrum's)."""

from __future__ import annotations

import numpy as np


def np_spectrum(a: np.ndarray) -> np.ndarray:
    """Mean over batch and channels of |FFT(Hann-windowed, mean-removed map)|^2, divided by the window's energy."""
    h, w = a.shape[-2:]
    win = np.outer(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(h) / h), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w))
    a = a - a.mean(axis=(-2, -1), keepdims=True)
    return (np.abs(np.fft.fft2(a * win)) ** 2).mean(axis=(0, 1)) / (win**2).sum()


def np_radial(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(freqs, mean power per ring of width 1/min(H, W)) of an unshifted spectrum, radii 0 .. 0.5."""
    h, w = p.shape
    side = min(h, w)
    r = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    idx = np.round(r * side).astype(int)
    n = side // 2 + 1
    return np.arange(n) / side, np.array([p[idx == k].mean() for k in range(n)])
