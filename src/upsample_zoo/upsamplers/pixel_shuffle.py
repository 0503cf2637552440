"""Sub-pixel convolution: a conv to out*scale^2 channels, then PixelShuffle (Shi et al. 2016), optional ICNR."""

from __future__ import annotations

import torch
from torch import nn

from upsample_zoo.upsamplers.base import Upsampler, odd_size


class PixelShuffleUp(Upsampler):
    """k x k conv to out*scale^2 channels, then PixelShuffle (Shi et al. 2016).

    With ``icnr=True`` the conv is initialised with ICNR (Aitken et al. 2017): all scale^2 sub-pixel
    kernels of an output channel start equal, so at init the layer equals conv + nearest upsampling.
    """

    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 2, kernel_size: int = 3, icnr: bool = False
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        kernel_size = odd_size("PixelShuffleUp", "kernel_size", kernel_size)
        self.icnr = bool(icnr)
        self.conv = nn.Conv2d(in_channels, out_channels * scale * scale, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(scale)
        if self.icnr:
            self.reset_icnr()

    @torch.no_grad()
    def reset_icnr(self) -> None:
        # Initialise one kernel per output channel as a plain conv would be, then copy it to the
        # scale^2 sub-pixel positions. PixelShuffle reads channel c*r^2 + i as sub-position i of c.
        r2 = self.scale * self.scale
        base = nn.Conv2d(self.in_channels, self.out_channels, self.conv.kernel_size, padding=self.conv.padding)
        self.conv.weight.copy_(base.weight.repeat_interleave(r2, dim=0))
        self.conv.bias.copy_(base.bias.repeat_interleave(r2, dim=0))

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))

    def extra_repr(self) -> str:
        return f"icnr={self.icnr}, " + super().extra_repr()
