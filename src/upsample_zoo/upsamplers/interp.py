"""Parameter-free resampling, then a convolution: InterpConv (mmseg) and resize-conv (Odena et al. 2016)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size


def keys_cubic_phases(scale: int, a: float = -0.75) -> torch.Tensor:
    """(scale, 5) float64: output phase p's weights on input taps y-2 .. y+2, as ``F.interpolate(mode="bicubic",
    align_corners=False)`` computes them: source position (p + 0.5) / scale - 0.5 from y, Keys' cubic with
    PyTorch's a = -0.75 on the four taps around it."""

    def cubic(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return ((a + 2) * d - (a + 3)) * d * d + 1
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a if d < 2 else 0.0

    w = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        f = (p + 0.5) / scale - 0.5
        i0 = math.floor(f)
        for m in range(-1, 3):
            w[p, i0 + m + 2] = cubic(f - (i0 + m))
    return w


def _polyphase_1d(x: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """Upsample ``x`` (N, C, H, W) along ``dim`` (2 or 3) by len(weights): replicate-pad 2, one depthwise conv with
    a 5-tap kernel per output phase, then interleave the phases."""
    n, c, h, w = x.shape
    s = weights.shape[0]
    kernel = weights.to(x.dtype).repeat(c, 1)  # (c*s, 5): channel c, phase p at row c*s + p
    if dim == 2:
        y = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(c * s, 1, 5, 1), groups=c)
        return y.view(n, c, s, h, w).transpose(2, 3).reshape(n, c, h * s, w)
    y = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(c * s, 1, 1, 5), groups=c)
    return y.view(n, c, s, h, w).permute(0, 1, 3, 4, 2).reshape(n, c, h, w * s)


def resample(x: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=scale, mode=mode)`` (align_corners=False), bicubic as two separable
    polyphase convs: the same numbers (tests hold them to 1e-5), without ``upsample_bicubic2d``'s backward,
    which ran at 10x bilinear's on the CPU."""
    if mode == "bicubic":
        w = keys_cubic_phases(scale)
        return _polyphase_1d(_polyphase_1d(x, w, 2), w, 3)
    size = (x.shape[-2] * scale, x.shape[-1] * scale)
    return F.interpolate(x, size=size, mode=mode, align_corners=None if mode == "nearest" else False)


class InterpConv(Upsampler):
    """Parameter-free resampling, then a 1x1 conv that only changes channels (mmseg's InterpConv)."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, mode: str = "bilinear") -> None:
        super().__init__(in_channels, out_channels, scale)
        if mode not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"InterpConv: unknown mode {mode!r}; use nearest, bilinear or bicubic")
        self.mode = mode
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        # Project first when it shrinks channels: the same result (1x1 conv and linear resampling
        # commute), with fewer channels to resample.
        if self.out_channels < self.in_channels:
            return resample(self.proj(x), self.scale, self.mode)
        return self.proj(resample(x, self.scale, self.mode))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, " + super().extra_repr()


class ResizeConv(Upsampler):
    """Resampling, then a k x k conv (Odena, Dumoulin, Olah 2016, "Deconvolution and Checkerboard Artifacts")."""

    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 2, mode: str = "nearest", kernel_size: int = 3
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        kernel_size = odd_size("ResizeConv", "kernel_size", kernel_size)
        self.mode = mode
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(resample(x, self.scale, self.mode))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, " + super().extra_repr()
