"""Transposed convolution (ConvTranspose2d) under the zoo contract, and with free geometry for the seeds' examples."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, _pair, tconv_output_size


class TransposedConv(Upsampler):
    """ConvTranspose2d. Defaults from scale: kernel 2*scale, stride scale, padding scale/2 (even overlap).

    ``strict=True`` (every zoo config) requires a geometry that maps each side i to exactly scale * i, and
    ``output_size`` follows the zoo's alignment rule like every operator. With ``strict=False`` any geometry
    is accepted (the seeds' worked examples use stride 1 and 4), and ``output_size`` is honoured through
    :func:`tconv_output_size`: the missing rows/columns become ``output_padding``, exactly as the formula
    says (``nn.ConvTranspose2d(output_size=...)`` semantics).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 2,
        kernel_size: int | Sequence[int] | None = None,
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] | None = None,
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        strict: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.kernel_size = _pair(2 * scale if kernel_size is None else kernel_size)
        self.stride = _pair(scale if stride is None else stride)
        self.padding = _pair(scale // 2 if padding is None else padding)
        self.output_padding = _pair(output_padding)
        self.dilation = _pair(dilation)
        self.strict = bool(strict)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.padding) < 0:
            raise ConfigError(
                f"TransposedConv: kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding} must be positive (padding >= 0)"
            )
        if strict:
            # The zoo contract: this geometry must map every side i to exactly scale * i.
            for i in (1, 2, 7):
                got = tuple(tconv_output_size(i, k, st, p, d, op) for k, st, p, d, op in zip(
                    self.kernel_size, self.stride, self.padding, self.dilation, self.output_padding))
                if got != (scale * i, scale * i):
                    raise ConfigError(
                        f"TransposedConv: kernel_size={self.kernel_size}, stride={self.stride}, "
                        f"padding={self.padding}, output_padding={self.output_padding} upsamples {i} px to "
                        f"{got}, not scale={scale} x; fix the geometry (or use upsampler=tconv, which "
                        "derives it from scale)"
                    )
        self.tconv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            bias=bias,
        )

    @property
    def weight(self) -> torch.Tensor:
        return self.tconv.weight

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.tconv(x)  # the configured output_padding: exactly scale x (checked in strict mode)

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None,
                guide: torch.Tensor | None = None) -> torch.Tensor:
        if self.strict:
            return super().forward(x, output_size)  # unguided: the guide is ignored
        # Free geometry (the seeds' worked examples): nn.ConvTranspose2d's own output_size semantics, where
        # the missing rows/columns become output_padding and an unreachable size is an error.
        size = None if output_size is None else list(self.target_size(x, output_size))
        return self.tconv(x, output_size=size)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"output_padding={self.output_padding}, " + super().extra_repr()
        )
