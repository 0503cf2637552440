"""Image conversions shared by the data, the tasks and the metrics (one home, one rounding rule)."""

from __future__ import annotations

import torch


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Model-range float images (the GAN's tanh output, loader outputs in [-1, 1]) -> uint8 [0, 255], the form
    FID and the checkerboard score read: scaled, rounded to nearest, clamped. Exact inverse of the loaders'
    ``x / 127.5 - 1`` scaling."""
    lo, hi = value_range
    return ((images.detach().float() - lo) * (255.0 / (hi - lo))).round().clamp(0, 255).to(torch.uint8)
