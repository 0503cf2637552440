"""The toy task's model: a convolution, the operator under test (x2), a convolution."""

from __future__ import annotations

from torch import nn

from upsample_zoo.models.stages import UpsamplerSpec, resolve_upsampler


class ToyModel(nn.Module):
    def __init__(self, upsampler: UpsamplerSpec, channels: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        # the zoo's factory (in_channels, out_channels) -> module, or a zoo name
        self.up = resolve_upsampler(upsampler)(channels, channels)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x):
        return self.tail(self.up(self.head(x)))

    # what the zoo's checks and cost columns read (upsample_zoo.upsamplers.upsampler_stages)
    def upsampler_modules(self) -> list[nn.Module]:
        return [self.up]

    def upsampler_channels(self) -> list[tuple[int, int]]:
        return [(self.channels, self.channels)]
