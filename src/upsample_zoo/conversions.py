"""Image conversions shared by the data, the tasks and the metrics (one home, one rounding rule)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

UNIT_RANGE = (0.0, 1.0)


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Model-range float images (the GAN's tanh output, loader outputs in [-1, 1]) -> uint8 [0, 255], the form
    FID and the checkerboard score read: scaled, rounded to nearest, clamped. Exact inverse of the loaders'
    ``x / 127.5 - 1`` scaling."""
    lo, hi = value_range
    return ((images.detach().float() - lo) * (255.0 / (hi - lo))).round().clamp(0, 255).to(torch.uint8)


def check_value_range(value_range: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be two numbers (lo, hi), got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"value_range must be finite with lo < hi, got {value_range!r}")
    return lo, hi


def to_unit(x: Tensor, value_range: tuple[float, float] = UNIT_RANGE) -> Tensor:
    """uint8 -> float in [0, 1] (0..255); floating tensors -> float32 mapped from ``value_range`` to [0, 1]
    (the default (0, 1) passes them through unchanged). Converts only: :func:`check_images` checks."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor in value_range {tuple(value_range)} or uint8, got {x.dtype}")
    lo, hi = check_value_range(value_range)
    return x.float() if (lo, hi) == UNIT_RANGE else (x.float() - lo) / (hi - lo)
