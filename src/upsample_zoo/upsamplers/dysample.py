"""DySample (Liu et al., ICCV 2023): upsampling by learned point sampling (grid_sample)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler


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
        self.register_buffer("init_pos", self._init_pos())
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def _init_pos(self) -> torch.Tensor:
        """(1, 2 * groups * scale^2, 1, 1): the (x, y) offset, in input pixels, of each sub-pixel from its
        input pixel's centre, e.g. +-0.25 at scale 2; channel layout (xy, group, sub-pixel i*scale + j)."""
        s = self.scale
        h = torch.arange((-s + 1) / 2, (s - 1) / 2 + 1) / s
        return torch.stack(torch.meshgrid([h, h], indexing="ij")).transpose(1, 2).repeat(
            1, self.groups, 1).reshape(1, -1, 1, 1)

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
        """(N * groups, scale*H, scale*W, 2) float32 (x, y) sampling positions in input pixels (0 = the
        input's left/top edge), as ``grid_sample`` reads them once normalised. ``offset`` defaults to
        :meth:`offsets`.

        Coordinates and offsets are float32 with autocast off: in bf16 (8 mantissa bits) a position near
        256 px is off by up to 0.75 px, and the +-0.25 initial offsets vanish past 64 px.
        """
        with torch.autocast(x.device.type, enabled=False):
            offset = (self.offsets(x) if offset is None else offset).float()
        b, _, h, w = offset.shape
        s, g = self.scale, self.groups
        ys = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5
        xs = torch.arange(w, device=x.device, dtype=torch.float32) + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pos = torch.stack([gx, gy]).view(1, 2, 1, h, w) + offset.view(b, 2, g * s * s, h, w)
        pos = F.pixel_shuffle(pos.reshape(b, -1, h, w), s).view(b, 2, g, s * h, s * w)
        return pos.permute(0, 2, 3, 4, 1).reshape(b * g, s * h, s * w, 2)

    def sample(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Sample x (N, C, H, W) at :meth:`positions`: (N, C, scale*H, scale*W), in x's dtype."""
        b, _, h, w = x.shape
        pos = self.positions(x, offset)
        grid = 2 * pos / torch.tensor([w, h], dtype=torch.float32, device=x.device) - 1
        with torch.autocast(x.device.type, enabled=False):
            out = F.grid_sample(x.float().reshape(b * self.groups, -1, h, w), grid, mode="bilinear",
                                align_corners=False, padding_mode="border")
        return out.view(b, -1, self.scale * h, self.scale * w).to(x.dtype)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.sample(x))

    def extra_repr(self) -> str:
        return f"groups={self.groups}, dyscope={self.dyscope}, " + super().extra_repr()
