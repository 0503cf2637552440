"""Parameter-free resampling, then a convolution: InterpConv (mmseg) and resize-conv (Odena et al. 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size


class InterpConv(Upsampler):
    """Parameter-free resampling, then a 1x1 conv that only changes channels (mmseg's InterpConv)."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, mode: str = "bilinear") -> None:
        super().__init__(in_channels, out_channels, scale)
        if mode not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"InterpConv: unknown mode {mode!r}; use nearest, bilinear or bicubic")
        self.mode = mode
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        align = None if self.mode == "nearest" else False
        # Project first when it shrinks channels: the same result (1x1 conv and linear resampling
        # commute), with fewer channels to resample.
        if self.out_channels < self.in_channels and self.mode != "bicubic":
            return F.interpolate(self.proj(x), size=self.natural_size(x), mode=self.mode, align_corners=align)
        return self.proj(F.interpolate(x, size=self.natural_size(x), mode=self.mode, align_corners=align))

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
        align = None if self.mode == "nearest" else False
        return self.conv(F.interpolate(x, size=self.natural_size(x), mode=self.mode, align_corners=align))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, " + super().extra_repr()
