"""Bilinear additive upsampling (Wojna et al. 2017, "The Devil is in the Decoder")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size


class BilinearAdditive(Upsampler):
    """Bilinear additive upsampling (Wojna et al. 2017, "The Devil is in the Decoder"), then a k x k conv.

    Bilinear resampling (align_corners=False), then the sum of every in/out consecutive channels: no
    parameters. The conv (out -> out, 3x3 by default) is the one the paper's decoder puts after it.
    Summing and resampling are both linear, so the channels are summed first (same result, less work).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, kernel_size: int = 3) -> None:
        super().__init__(in_channels, out_channels, scale)
        if in_channels % out_channels:
            raise ConfigError(
                f"BilinearAdditive: in_channels={in_channels} must be a multiple of out_channels={out_channels} "
                "(it sums groups of in/out consecutive channels); use a model whose decoder halves the width, "
                "or another upsampler"
            )
        kernel_size = odd_size("BilinearAdditive", "kernel_size", kernel_size)
        self.group = in_channels // out_channels
        self.conv = nn.Conv2d(out_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def resample(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The parameter-free part: channel-group sums, bilinearly resampled to ``size``."""
        n, _, h, w = x.shape
        x = x.reshape(n, self.out_channels, self.group, h, w).sum(dim=2)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.resample(x, self.natural_size(x)))

    def extra_repr(self) -> str:
        return f"group={self.group}, " + super().extra_repr()
