"""DySample (Liu et al., ICCV 2023): upsampling by learned point sampling (grid_sample)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler


def subpixel_offsets(scale: int, groups: int) -> torch.Tensor:
    """(1, 2 * groups * scale^2, 1, 1): the (x, y) offset, in input pixels, of each sub-pixel from its input
    pixel's centre, e.g. +-0.25 at scale 2; channel layout (xy, group, sub-pixel i*scale + j). Sampling there is
    bilinear upsampling (align_corners=False)."""
    h = torch.arange((-scale + 1) / 2, (scale - 1) / 2 + 1) / scale
    return torch.stack(torch.meshgrid([h, h], indexing="ij")).transpose(1, 2).repeat(1, groups, 1).reshape(1, -1, 1, 1)


def sampling_positions(offset: torch.Tensor, scale: int, groups: int) -> torch.Tensor:
    """(N * groups, scale*H, scale*W, 2) float32 (x, y) sampling positions in units of the offset grid's pixels
    (0 = the left/top edge): each pixel's centre plus its ``offset`` (N, 2 * groups * scale^2, H, W), channel
    layout (xy, group, sub-pixel i*scale + j), pixel-shuffled to one point per output pixel and group.

    Float32 with autocast off: in bf16 (8 mantissa bits) a position near 256 px is off by up to 0.75 px, and the
    +-0.25 initial offsets vanish past 64 px.
    """
    with torch.autocast(offset.device.type, enabled=False):
        offset = offset.float()
        b, _, h, w = offset.shape
        ys = torch.arange(h, device=offset.device, dtype=torch.float32) + 0.5
        xs = torch.arange(w, device=offset.device, dtype=torch.float32) + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pos = torch.stack([gx, gy]).view(1, 2, 1, h, w) + offset.view(b, 2, groups * scale * scale, h, w)
        pos = F.pixel_shuffle(pos.reshape(b, -1, h, w), scale).view(b, 2, groups, scale * h, scale * w)
        return pos.permute(0, 2, 3, 4, 1).reshape(b * groups, scale * h, scale * w, 2)


def point_sample(feature: torch.Tensor, offset: torch.Tensor, scale: int, groups: int) -> torch.Tensor:
    """Bilinear samples (border padding) of ``feature`` at :func:`sampling_positions` of ``offset``:
    (N, C, scale*H, scale*W) for an offset grid of H x W. ``feature`` covers the same image as that grid at any
    resolution (DySample: the input itself; FreqFusion: the input already upsampled), its C channels in
    ``groups`` consecutive groups, each read at its own points. Runs in float32 (float64 for float64); returns
    ``feature``'s dtype."""
    b, c, fh, fw = feature.shape
    h, w = offset.shape[-2:]
    pos = sampling_positions(offset, scale, groups)
    dtype = torch.promote_types(feature.dtype, torch.float32)  # float32, or float64 for a float64 feature
    grid = (2 * pos / torch.tensor([w, h], dtype=torch.float32, device=feature.device) - 1).to(dtype)
    with torch.autocast(feature.device.type, enabled=False):
        out = F.grid_sample(feature.to(dtype).reshape(b * groups, c // groups, fh, fw), grid, mode="bilinear",
                            align_corners=False, padding_mode="border")
    return out.view(b, c, scale * h, scale * w).to(feature.dtype)


class DySample(Upsampler):
    """DySample (Liu et al., ICCV 2023, "Learning to Upsample by Learning to Sample"), 'lp' style, then a
    1x1 conv to out_channels.

    A 1x1 conv predicts 2 * groups * scale^2 offsets per input pixel, scaled by 0.25 (static scope) or by
    0.5 sigmoid(a learned 1x1 scope conv) (``dyscope=True``), plus the initial-position bias ``init_pos``
    (the sub-pixel positions of bilinear upsampling); pixel shuffle turns them into one sampling point per
    output pixel and group, and ``F.grid_sample`` (bilinear, border padding) samples the input. Structure
    and init follow the official implementation: offset conv N(0, 0.001) with zero bias, scope conv zero.
    With zero offsets it is exactly bilinear upsampling (align_corners=False).
    """

    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 2, groups: int = 4, dyscope: bool = False
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        if int(groups) <= 0 or in_channels % int(groups):
            raise ConfigError(
                f"DySample: in_channels={in_channels} must be a positive multiple of groups={groups} (each "
                "group of channels shares one sampling grid); set upsampler.groups to a divisor of every "
                "decoder width, e.g. upsampler.groups=1"
            )
        self.groups, self.dyscope = int(groups), bool(dyscope)
        n_offsets = 2 * self.groups * scale * scale
        self.offset = nn.Conv2d(in_channels, n_offsets, 1)
        nn.init.normal_(self.offset.weight, 0.0, 0.001)
        nn.init.zeros_(self.offset.bias)
        if self.dyscope:
            self.scope = nn.Conv2d(in_channels, n_offsets, 1, bias=False)
            nn.init.zeros_(self.scope.weight)
        self.register_buffer("init_pos", subpixel_offsets(scale, self.groups))
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2 * groups * scale^2, H, W) sampling offsets in input pixels, init_pos included, in float32."""
        x = x.float()

        def conv1x1(conv: nn.Conv2d) -> torch.Tensor:  # float32 whatever the parameters' dtype
            return F.conv2d(x, conv.weight.float(), None if conv.bias is None else conv.bias.float())

        init_pos = self.init_pos.float()
        if self.dyscope:
            return conv1x1(self.offset) * conv1x1(self.scope).sigmoid() * 0.5 + init_pos
        return conv1x1(self.offset) * 0.25 + init_pos

    def positions(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """:func:`sampling_positions` of ``offset`` (default :meth:`offsets`), autocast off."""
        with torch.autocast(x.device.type, enabled=False):
            offset = self.offsets(x) if offset is None else offset
        return sampling_positions(offset, self.scale, self.groups)

    def sample(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Sample x (N, C, H, W) at :meth:`positions`: (N, C, scale*H, scale*W), in x's dtype."""
        with torch.autocast(x.device.type, enabled=False):
            offset = self.offsets(x) if offset is None else offset
        return point_sample(x, offset, self.scale, self.groups)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.sample(x))

    def extra_repr(self) -> str:
        return f"groups={self.groups}, dyscope={self.dyscope}, " + super().extra_repr()
