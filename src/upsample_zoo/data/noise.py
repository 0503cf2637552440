"""1/f noise: natural-like textures and test images (amplitude spectrum 1/f^alpha, random phase).

Two random sources, kept apart on purpose: :func:`pink_noise` draws from a numpy Generator (the synthetic
datasets, whose every image depends on its exact draw order), :func:`one_over_f_images` from a seeded
torch Generator (the probe's and the metric tests' test images). Moving either to the other's source or
draw order would change every image it makes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def pink_noise(rng: np.random.Generator, shape: tuple[int, ...], alpha: float = 1.0,
               dtype: type[np.floating] = np.float64) -> np.ndarray:
    """Zero-mean, unit-std noise of ``shape`` (..., H, W) with a 1/f^alpha amplitude spectrum over the last two
    axes, each (H, W) field standardised on its own. Draws the real, then the imaginary half-spectrum
    (..., H, W // 2 + 1) from ``rng`` in ``dtype``; float32 halves the memory traffic of large batches."""
    *lead, h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    half = (*lead, h, w // 2 + 1)
    spec = rng.standard_normal(half, dtype=dtype) + 1j * rng.standard_normal(half, dtype=dtype)
    spec = spec / (f**alpha).astype(dtype)
    spec[..., 0, 0] = 0
    img = np.fft.irfft2(spec, s=(h, w)).astype(dtype)
    return img / (img.std(axis=(-2, -1), keepdims=True) + 1e-8)


def one_over_f_images(
    n: int,
    channels: int = 3,
    size: int | tuple[int, int] = 64,
    *,
    seed: int = 0,
    std: float = 0.15,
    beta: float = 1.0,
    quantize: bool = True,
) -> Tensor:
    """Natural-like test images: amplitude spectrum 1/f^beta with random phase, mean 0.5, given std.

    Each image and channel is independent Gaussian noise shaped in the Fourier domain (periodic, so no
    border discontinuity), clipped to [0, 1]. uint8 when ``quantize`` (8-bit, as saved images), else float.
    """
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, channels, h, w, generator=g)
    f = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float32)[:, None] ** 2
                   + torch.fft.rfftfreq(w, dtype=torch.float32)[None, :] ** 2)
    f[0, 0] = math.inf  # no DC: the mean is set below
    img = torch.fft.irfft2(torch.fft.rfft2(noise) / f**beta, s=(h, w))
    img = img - img.mean(dim=(-2, -1), keepdim=True)
    img = 0.5 + std * img / img.std(dim=(-2, -1), keepdim=True)
    img = img.clamp(0, 1)
    return (img * 255).round().to(torch.uint8) if quantize else img.float()
