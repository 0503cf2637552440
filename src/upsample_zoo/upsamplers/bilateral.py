"""Joint-bilateral upsampling (guided): the base of the 2024-25 feature-upsampler line.

- ``jbu``: FeatUp's learned-range joint bilateral upsampler (Fu et al., ICLR 2024; github.com/mhamilton723/FeatUp,
  ``featup/upsamplers.py``, ``JBULearnedRange``), in pure PyTorch: its ``AdaptiveConv`` is a CUDA extension,
  here the 7x7 window is a streamed sum over shifted views (``window_ops``).
- ``jbf``: the parameter-free joint bilateral filter (Kopf et al. 2007, with a Gaussian range kernel), the
  baseline that tells whether JBU's learned range kernel earns its weights.

Both: the decoder feature is bicubic-upsampled to the guide's grid (align_corners=False: the zoo's grid), then
each output pixel is the weighted mean of its 7x7 neighbourhood, with weights = a spatial Gaussian x a range
kernel computed on the guide (the U-Net skip), normalised to sum 1. A 1x1 conv maps the channels (projected
first when it narrows them: the filter is linear and shared by every channel, so the two commute). The window
is replicate-padded (FeatUp pads by reflection, which needs the radius below the side: replicate works at any
size), and every window pass is a streamed :mod:`~upsample_zoo.upsamplers.window_ops` op, never a 49x copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler
from upsample_zoo.upsamplers.interp import resample
from upsample_zoo.upsamplers.window_ops import reassemble, window_dot


def spatial_gaussian(radius: int, sigma: torch.Tensor | float) -> torch.Tensor:
    """(d^2,) exp(-|p|^2 / 2 sigma^2) over the window, with positions in [-1, 1] as FeatUp's (so sigma = 1 is
    ``radius`` pixels)."""
    t = torch.linspace(-1, 1, 2 * radius + 1, device=sigma.device if torch.is_tensor(sigma) else None)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.exp(-(yy.square() + xx.square()).reshape(-1) / (2 * sigma**2))


class _JointBilateral(Upsampler):
    """Shared: bicubic upsampling, the normalised spatial x range kernel, the 1x1 channel map."""

    requires_guide = True

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, radius: int = 3) -> None:
        super().__init__(in_channels, out_channels, scale)
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
            raise ConfigError(f"{type(self).__name__}: radius must be a positive int (the window is 2r+1), got "
                              f"{radius!r}")
        self.radius, self.window_size = radius, 2 * radius + 1
        self.guide_channels = out_channels  # the skip, before concatenation
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def spatial(self) -> torch.Tensor:
        raise NotImplementedError

    def range_kernel(self, guide: torch.Tensor) -> torch.Tensor:
        """(N, d^2, H, W), non-negative: how alike each neighbour's guide is to the centre's."""
        raise NotImplementedError

    def kernel(self, guide: torch.Tensor) -> torch.Tensor:
        """(N, d^2, H, W): spatial x range, normalised to sum 1 over the window at every pixel."""
        k = self.range_kernel(guide) * self.spatial().to(guide.dtype).view(1, -1, 1, 1)
        return k / k.sum(1, keepdim=True).clamp_min(1e-12)

    def upsample(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        narrow = self.out_channels < self.in_channels
        if narrow:
            x = self.proj(x)
        hr = resample(x, self.scale, "bicubic")
        y = reassemble(hr, self.kernel(guide).to(hr.dtype), self.window_size, 1, padding="replicate")
        return y if narrow else self.proj(y)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, " + super().extra_repr()


class JBU(_JointBilateral):
    """``jbu``: FeatUp's ``JBULearnedRange`` on the zoo contract (guide = the skip, ``out_channels`` wide).

    - Range kernel: ``softmax(exp(range_temp) * <k_q, k_p>)`` over the window, keys ``k`` from
      ``range_proj`` = 1x1 conv (guide -> key_dim) -> GELU -> Dropout2d -> 1x1 conv (key_dim -> key_dim);
      ``range_temp`` starts at 0 (temperature 1), as FeatUp.
    - ``dropout`` defaults to 0, not FeatUp's 0.1: no other operator of the zoo brings its own regulariser, and
      one that only JBU had would be part of what the comparison measures (``upsampler.dropout=0.1`` restores
      it).
    - Spatial kernel: a Gaussian with a learned ``sigma_spatial`` (starts at 1: ``radius`` pixels).
    - Left out: FeatUp's ``fixup_proj`` (it adds 0.1 x a learned correction to the normalised kernel, which then
      is neither non-negative nor of sum 1; its JBUStack also adds a 0.1-weighted 1x1 fix-up of the output).
      Here the kernel is a true weighted mean, the property the tests hold.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, radius: int = 3, key_dim: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__(in_channels, out_channels, scale, radius)
        self.key_dim = int(key_dim)
        self.range_proj = nn.Sequential(nn.Conv2d(out_channels, key_dim, 1), nn.GELU(), nn.Dropout2d(dropout),
                                        nn.Conv2d(key_dim, key_dim, 1))
        self.range_temp = nn.Parameter(torch.tensor(0.0))
        self.sigma_spatial = nn.Parameter(torch.tensor(1.0))

    def spatial(self) -> torch.Tensor:
        return spatial_gaussian(self.radius, self.sigma_spatial)

    def range_kernel(self, guide: torch.Tensor) -> torch.Tensor:
        keys = self.range_proj(guide)
        sim = window_dot(keys, keys, self.window_size, 1, padding="replicate")
        return F.softmax(self.range_temp.exp().clamp(1e-4, 1e4) * sim, dim=1)


class JBF(_JointBilateral):
    """``jbf``: the parameter-free joint bilateral filter. Range kernel ``exp(-|g_q - g_p|^2 / (2 sigma_range^2))``
    with the squared distance averaged over the guide's channels and divided by the guide's variance (per
    image, over all channels and pixels), so ``sigma_range`` is in units of the guide's own spread, whatever
    its scale. Spatial Gaussian fixed at ``sigma_spatial`` (1: ``radius`` pixels, JBU's start). Its only
    weights are the 1x1 channel map, as ``bilinear``'s."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, radius: int = 3,
                 sigma_spatial: float = 1.0, sigma_range: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, scale, radius)
        if not (sigma_spatial > 0 and sigma_range > 0):
            raise ConfigError(f"JBF: sigma_spatial={sigma_spatial} and sigma_range={sigma_range} must be positive")
        self.sigma_spatial, self.sigma_range = float(sigma_spatial), float(sigma_range)

    def spatial(self) -> torch.Tensor:
        return spatial_gaussian(self.radius, torch.tensor(self.sigma_spatial, device=self.proj.weight.device))

    def range_kernel(self, guide: torch.Tensor) -> torch.Tensor:
        var = guide.var(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-12)
        # |g_p - g_q|^2 = |g_p|^2 + |g_q|^2 - 2 g_p.g_q, each a streamed window op (no 49x copy of the guide)
        sq = guide.square().sum(1, keepdim=True)
        sq_p = window_dot(torch.ones_like(sq), sq, self.window_size, 1, padding="replicate")
        dot = window_dot(guide, guide, self.window_size, 1, padding="replicate")
        d2 = (sq_p + sq - 2 * dot).clamp_min(0) / guide.shape[1] / var
        return torch.exp(-d2 / (2 * self.sigma_range**2))
