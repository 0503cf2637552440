"""The upsampler contract: the base class, the alignment rule (fit_to_size) and the size formulas.

Contract (every class): ``__init__(in_channels, out_channels, scale=2, **options)`` and
``forward(x, output_size=None, guide=None)`` returning exactly ``(N, out_channels, H*scale, W*scale)``, or
exactly ``output_size`` when given. Models never ask which upsampler they hold.

Guided operators (FADE, SAPA) also read ``guide``: the high-resolution feature at the output size, with
``out_channels`` channels (in the U-Net, the skip before concatenation). They declare
``requires_guide = True`` and implement ``upsample(x, guide)``; every other operator ignores ``guide``.

Alignment rule (owned by :class:`Upsampler`): a subclass implements only :meth:`Upsampler.upsample`, an
exact ``scale x`` upsampling; ``forward`` then fits that to ``output_size`` by cropping or
replicate-padding the bottom/right edge. So ``up(x, output_size=(2h+1, 2w+1))[..., :2h, :2w] == up(x)``:
output pixel (Y, X) always sits over input pixel (Y // scale, X // scale), the grid of a U-Net's max-pool
skips. Resampling straight to an odd size would stretch the grid by (2h+1)/2h instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError

SUPPORTED_SCALES = (2, 4)


def conv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Output side of a convolution: floor((i + 2p - d(k-1) - 1) / s) + 1."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def tconv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, output_padding: int = 0) -> int:
    """Output side of a transposed convolution: (i-1)s - 2p + d(k-1) + 1 + output_padding."""
    return (i - 1) * s - 2 * p + d * (k - 1) + 1 + output_padding


def odd_size(owner: str, name: str, k: int) -> int:
    """``k`` as an int, or a ConfigError when it is not odd and positive: the kernels here are centred, so a
    "same" padding of k // 2 keeps the grid aligned."""
    if int(k) <= 0 or int(k) % 2 == 0:
        raise ConfigError(f"{owner}: {name} must be odd and positive, got {k} (upsampler.{name})")
    return int(k)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def fit_to_size(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop or replicate-pad the bottom/right edge so that y has spatial ``size``.

    Used by operators whose natural output is exactly ``scale x`` the input: a U-Net skip of odd
    side s comes from floor(s/2) and needs one row or column less.
    """
    h, w = size
    y = y[..., :h, :w]
    ph, pw = h - y.shape[-2], w - y.shape[-1]
    if ph or pw:
        y = F.pad(y, (0, pw, 0, ph), mode="replicate")
    return y


def needs_guide(module: nn.Module) -> bool:
    """Whether the operator reads a guide (the high-resolution feature): ``requires_guide`` on a zoo class or
    on a user's module. The one place that asks: the models, the contract check, the probe and the bench."""
    return bool(getattr(module, "requires_guide", False))


def accepts_guide(module: nn.Module) -> bool:
    """Whether ``module(x, output_size=..., guide=...)`` may be called: a zoo class, or a user's module whose
    forward names a ``guide`` argument (a plain ``forward(x, output_size)`` keeps working without one)."""
    if isinstance(module, Upsampler) or needs_guide(module):
        return True
    try:
        return "guide" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


class Upsampler(nn.Module):
    """The base of the zoo's operators: validation, the target size, the guide, and the cost report.

    A subclass implements :meth:`upsample` at exactly ``scale x``; ``forward`` then serves any
    ``output_size`` by the alignment rule (crop or edge-pad the exact output, never resample it), so
    every operator lands on the same grid. A plain ``nn.Module`` with ``forward(x, output_size=None)``
    is a first-class operator too; this base only saves the checks.

    Args:
        in_channels: channels of the low-resolution input (a positive int).
        out_channels: channels of the output (a positive int).
        scale: the upsampling factor, one of ``SUPPORTED_SCALES``.

    Raises:
        ConfigError: a non-int or non-positive channel count, or an unsupported scale.

    Example:
        >>> class Nearest(Upsampler):
        ...     def upsample(self, x):
        ...         return torch.nn.functional.interpolate(x, scale_factor=self.scale)[:, : self.out_channels]
        >>> tuple(Nearest(4, 4)(torch.zeros(1, 4, 5, 7), output_size=(11, 15)).shape)
        (1, 4, 11, 15)
    """

    requires_guide = False  # True: upsample(x, guide) reads the high-resolution feature (FADE, SAPA)

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{type(self).__name__}: {name} must be an int, got {type(value).__name__} "
                                  f"{value!r}")
        if int(in_channels) <= 0 or int(out_channels) <= 0:
            raise ConfigError(
                f"{type(self).__name__}: channels must be positive, got in_channels={in_channels}, "
                f"out_channels={out_channels}"
            )
        if scale not in SUPPORTED_SCALES:
            raise ConfigError(
                f"{type(self).__name__}: scale={scale} is not supported; use one of {SUPPORTED_SCALES} "
                "(upsampler.scale=2)"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.scale = int(scale)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """The operator itself: (N, in_channels, H, W) -> exactly (N, out_channels, scale*H, scale*W).
        A guided operator's is ``upsample(x, guide)``, with the guide already at (scale*H, scale*W)."""
        raise NotImplementedError

    def natural_size(self, x: torch.Tensor) -> tuple[int, int]:
        """(scale*H, scale*W): the only size :meth:`upsample` may return."""
        return x.shape[-2] * self.scale, x.shape[-1] * self.scale

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None,
                guide: torch.Tensor | None = None) -> torch.Tensor:
        natural = self.natural_size(x)
        if self.requires_guide:
            # the guide is at the output size; the operator sees it on the exact scale x grid, like its output
            y = self.upsample(x, fit_to_size(self._checked_guide(x, guide, self.target_size(x, output_size)),
                                             natural))
        else:
            y = self.upsample(x)
        if tuple(y.shape[-2:]) != natural:
            raise RuntimeError(
                f"{type(self).__name__}.upsample made {tuple(y.shape[-2:])} from {tuple(x.shape[-2:])}, not exactly "
                f"scale={self.scale} x {natural}; the alignment rule needs an exact scale x output"
            )
        size = self.target_size(x, output_size)
        return y if size == natural else fit_to_size(y, size)

    def _checked_guide(self, x: torch.Tensor, guide: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        name, channels = type(self).__name__, getattr(self, "guide_channels", self.out_channels)
        want = f"(N, {channels}, {size[0]}, {size[1]})"
        if guide is None:
            raise ValueError(f"{name} is a guided upsampler: call it as up(x, output_size, guide=<the high-resolution "
                             f"feature {want}>, such as the U-Net skip)")
        if guide.dim() != 4 or guide.shape[0] != x.shape[0] or guide.shape[1] != channels \
                or tuple(guide.shape[-2:]) != size:
            raise ValueError(f"{name}: guide is {tuple(guide.shape)}, expected {want}: the high-resolution feature "
                             "at the output size")
        return guide

    def target_size(self, x: torch.Tensor, output_size: Sequence[int] | None) -> tuple[int, int]:
        if output_size is None:
            return x.shape[-2] * self.scale, x.shape[-1] * self.scale
        h, w = (int(v) for v in tuple(output_size)[-2:])
        if h <= 0 or w <= 0:
            raise ValueError(f"output_size must be positive, got {tuple(output_size)}")
        return h, w

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, scale={self.scale}, params={self.num_parameters()}"


def upsampler_modules(model: nn.Module) -> list[nn.Module]:
    """The upsamplers a model built from its factory, as its parts list them (``upsampler_modules()`` of the
    U-Net, of the DCGAN generator): a user's plain ``nn.Module`` counts like a zoo class."""
    return [up for m in model.modules() if hasattr(m, "upsampler_modules") for up in m.upsampler_modules()]


def upsampler_stages(model: nn.Module) -> list[tuple[nn.Module, int, int]]:
    """(upsampler, in_channels, out_channels) for each upsampler the model built."""
    return [(up, cin, cout) for m in model.modules() if hasattr(m, "upsampler_modules")
            for up, (cin, cout) in zip(m.upsampler_modules(), m.upsampler_channels())]


def upsampler_parameters(model: nn.Module) -> int:
    """Parameters held by the upsamplers inside a model (the cost the comparison is about)."""
    return sum(p.numel() for up in upsampler_modules(model) for p in up.parameters())
