"""U-Net (Ronneberger et al. 2015) with BatchNorm, whose every decoder step is the configured upsampler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.stages import UpsamplerFactory, UpsamplerSpec, require_scale, stage_factories
from upsample_zoo.upsamplers.base import accepts_guide


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """upsample(c_in -> c_out) to the skip's exact size, with the skip as its guide, concatenate the skip,
    DoubleConv. (A user's module whose forward has no ``guide`` argument is called without it.)"""

    def __init__(self, in_channels: int, out_channels: int, upsampler: UpsamplerFactory) -> None:
        super().__init__()
        self.channels = (in_channels, out_channels)
        self.up = upsampler(in_channels, out_channels)
        self.guided = accepts_guide(self.up)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.guided:
            x = self.up(x, output_size=skip.shape[-2:], guide=skip)
        else:
            x = self.up(x, output_size=skip.shape[-2:])
        return self.conv(torch.cat([skip, x], dim=1))


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Encoder of ``depth`` 2x max-pool stages, mirrored decoder; any input size >= 2**depth works.

    With ``encoder`` (a pretrained :class:`~upsample_zoo.models.encoders.Encoder`, ``encoder=inception_v3``)
    its levels replace the max-pool stages: each level's map is projected to the decoder's width
    ``base_channels * 2**level`` by a trainable 1x1 conv (+BN, ReLU), the deepest one starts the decoder,
    the others are the skips (and the guides of guided operators). The full-resolution skip is the image
    itself, projected the same way. ``forward(x, features)`` takes the encoder's maps when they were
    computed once already (a frozen encoder's feature cache, :mod:`upsample_zoo.data.encoded`).
    """

    def __init__(
        self,
        upsampler: UpsamplerSpec,
        in_channels: int = 3,
        num_classes: int = 21,
        base_channels: int = 32,
        depth: int = 4,
        stage_upsamplers: Mapping[Any, UpsamplerSpec] | None = None,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels), ("depth", depth)):
            if int(value) <= 0:
                raise ConfigError(f"UNet: model.{name} must be a positive integer, got {value}")
        self.depth = depth
        self.num_classes = num_classes
        widths = [base_channels * 2**i for i in range(depth + 1)]
        if encoder is None:
            self.stem = DoubleConv(in_channels, widths[0])
            self.down = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(depth))
            self.pool = nn.MaxPool2d(2)
        else:
            self._attach(encoder, in_channels, widths)
        # decoder stage j (0 = lowest resolution) upsamples widths[depth - j] -> widths[depth - j - 1]
        factories = stage_factories(upsampler, stage_upsamplers, depth)
        self.up = nn.ModuleList(UpBlock(widths[depth - j], widths[depth - j - 1], factories[j]) for j in range(depth))
        require_scale(self.upsampler_modules(), "U-Net (model=unet)")
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def _attach(self, encoder: nn.Module, in_channels: int, widths: list[int]) -> None:
        if list(encoder.strides) != [2**i for i in range(1, self.depth + 1)]:
            raise ConfigError(f"UNet: model.depth={self.depth} does not match encoder={encoder.name}, whose "
                              f"{len(encoder.strides)} levels have strides {list(encoder.strides)}; set "
                              f"model.depth={len(encoder.strides)}")
        self.encoder = encoder
        self.project = nn.ModuleList(ConvBNReLU(c, w) for c, w in zip([in_channels, *encoder.channels], widths))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Encoder, decoder (upsamplers excluded) and upsampler parameters: results.json counts each."""
        ups = {id(p) for m in self.upsampler_modules() for p in m.parameters()}
        enc = list(self.encoder.parameters()) if hasattr(self, "encoder") else [
            *self.stem.parameters(), *self.down.parameters()]
        enc_ids = {id(p) for p in enc}
        return {"encoder": enc, "upsamplers": [p for m in self.upsampler_modules() for p in m.parameters()],
                "decoder": [p for p in self.parameters() if id(p) not in ups and id(p) not in enc_ids]}

    @property
    def total_stride(self) -> int:
        return 2**self.depth

    def upsampler_modules(self) -> list[nn.Module]:
        """What the factory built, one per decoder stage: counted as upsampler cost, checked for the contract."""
        return [block.up for block in self.up]

    def upsampler_channels(self) -> list[tuple[int, int]]:
        """(in_channels, out_channels) of each of :meth:`upsampler_modules`."""
        return [block.channels for block in self.up]

    def forward(self, x: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        if hasattr(self, "encoder"):
            maps = self.encoder(x) if features is None else features
            skips = [p(m) for p, m in zip(self.project, [x, *maps])]
            y = skips.pop()
            for block in self.up:
                y = block(y, skips.pop())
            return self.head(y)
        if features is not None:
            raise ValueError("UNet: features given, but this U-Net has its own (scratch) encoder")
        if min(x.shape[-2:]) < self.total_stride:
            raise ValueError(
                f"UNet of depth {self.depth} needs inputs of at least {self.total_stride} px, got {tuple(x.shape[-2:])}"
            )
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))
        x = skips.pop()
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)
