"""1/f noise: natural-like test images and textures (amplitude spectrum 1/f^beta, random phase)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


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
