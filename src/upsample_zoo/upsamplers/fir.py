"""The alias-free FIR family: fixed low-pass filters after the rate change, written from the signal-processing
equations (Kaiser 1974; the resampling of Karras et al. 2021, "Alias-Free GANs", and the blur of Karras et al.
2020, "Analyzing and Improving the Image Quality of StyleGAN"), not from any released code.

Both filters are even-length and symmetric about a half-sample, so that input pixel i lands centred over
output pixels [s*i, s*i + s), the grid every zoo operator keeps (align_corners=False). Inputs are
replicate-padded first, so that every output pixel, the border included, receives all of its filter taps:
a constant input gives exactly that constant everywhere, whatever the weights.

(A plain "zero-insert, then [1, 3, 3, 1]" upsampler is not here: in the interior it *is* bilinear
upsampling with align_corners=False.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler


def kaiser_lowpass(scale: int, stopband_db: float = 60.0, transition: float | None = None) -> np.ndarray:
    """The 1-D interpolation filter of zero-insertion by ``scale``: a Kaiser-windowed sinc with its cutoff at the
    input's Nyquist frequency, 1 / (2 scale) cycles per output sample.

    - ``transition`` (cycles per output sample, default 1 / (2 scale), half the input band) is centred on the
      cutoff: the passband ends at 1/(2s) - t/2, the stopband starts at 1/(2s) + t/2.
    - The tap count and β come from Kaiser's design formulas for ``stopband_db`` (scipy.signal.kaiserord),
      rounded up to a multiple of 2*scale: even, so the filter is centred on a half-sample.
    - Each of the ``scale`` polyphase components (the taps one output phase reads) is normalised to sum 1: a
      constant input gives a constant output, exactly, so the filter cannot add a period-``scale`` pattern (the
      checkerboard); its response at f = k / scale, k = 1..scale-1, the output's Nyquist band included, is 0.
    """
    from scipy.signal import firwin, kaiserord

    if stopband_db < 21:
        raise ConfigError(f"kaiser_lowpass: stopband_db={stopband_db} is below a window's 21 dB; ask for 40 or more")
    t = 1 / (2 * scale) if transition is None else float(transition)
    if not 0 < t <= 1 / scale:
        raise ConfigError(f"kaiser_lowpass: transition={t} must be in (0, 1/scale] cycles per output sample")
    numtaps, beta = kaiserord(stopband_db, 2 * t)  # width relative to the Nyquist frequency 0.5
    numtaps = 2 * scale * math.ceil(numtaps / (2 * scale))
    h = firwin(numtaps, 1 / scale, window=("kaiser", beta), scale=True)  # cutoff relative to Nyquist
    phases = h.reshape(-1, scale)  # column p: the taps that output phase p reads
    return (phases / phases.sum(axis=0, keepdims=True)).reshape(-1)


def binomial_blur(scale: int) -> np.ndarray:
    """The 1-D blur of the StyleGAN2 up block, box_s * box_s * box_s (s = scale): [1, 3, 3, 1] / 8 at scale 2.
    Its box_s factor has zeros at every f = k / scale, so it removes any period-``scale`` pattern (triply)."""
    box = np.ones(scale)
    h = np.convolve(np.convolve(box, box), box)
    return h / h.sum()


def _separable(x: torch.Tensor, taps: torch.Tensor, stride: int) -> torch.Tensor:
    """Depthwise 1-D filtering of rows then columns: transposed ("zero-insert, then filter") when stride > 1,
    else a full convolution (every partial overlap kept)."""
    c, k = x.shape[1], taps.numel()
    w = taps.to(x.dtype).flip(0)  # a true convolution
    for dims in ((k, 1), (1, k)):
        kernel = w.view(1, 1, *dims).expand(c, 1, *dims)
        step = (stride, 1) if dims[1] == 1 else (1, stride)
        if stride > 1:
            x = F.conv_transpose2d(x, kernel.flip(-1, -2), stride=step, groups=c)
        else:
            x = F.conv2d(x, kernel, padding=(dims[0] - 1, dims[1] - 1), groups=c)
    return x


class FIRSincUp(Upsampler):
    """``fir_sinc``: zero-insertion by ``scale``, a separable Kaiser-windowed sinc low-pass (cutoff at the input's
    Nyquist, :func:`kaiser_lowpass`), then the same 1x1 channel map as ``bilinear``. No learned spatial weights."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, stopband_db: float = 60.0,
                 transition: float | None = None) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.stopband_db = float(stopband_db)
        self.register_buffer("taps", torch.from_numpy(kaiser_lowpass(scale, stopband_db, transition)).float(),
                             persistent=False)
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        s, n = self.scale, self.taps.numel()
        if self.out_channels < self.in_channels:  # linear and per channel: it commutes with the 1x1 map
            x = self.proj(x)
        pad = math.ceil(((n + s) // 2 - 1) / s)  # input pixels each side so that every output gets all its taps
        y = _separable(F.pad(x, (pad, pad, pad, pad), mode="replicate"), self.taps, stride=s)
        start = s * pad + (n - s) // 2  # input i's filter centre, n/2 - 1/2, onto output s*i + (s-1)/2
        h, w = self.natural_size(x)
        y = y[..., start:start + h, start:start + w]
        return y if self.out_channels < self.in_channels else self.proj(y)

    def extra_repr(self) -> str:
        return f"taps={self.taps.numel()}, stopband_db={self.stopband_db:g}, " + super().extra_repr()


class TConvBlurUp(Upsampler):
    """``tconv_blur``: the StyleGAN2 / R3GAN generator up block. A learned transposed convolution of kernel
    2*scale - 1 and stride ``scale`` (3x3, stride 2 at scale 2), then the fixed :func:`binomial_blur`
    ([1, 3, 3, 1] ⊗ [1, 3, 3, 1] / 64 at scale 2). The odd kernel is what centres the pair: an even tconv kernel
    (k4) after which a 4-tap blur runs would shift the output by half a pixel against every other operator."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.tconv = nn.ConvTranspose2d(in_channels, out_channels, 2 * scale - 1, stride=scale, bias=bias)
        self.register_buffer("taps", torch.from_numpy(binomial_blur(scale)).float(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.tconv.weight

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        s, pad = self.scale, 3  # 3 input pixels each side: every output gets all of its taps (5s - 3 in all)
        y = _separable(self.tconv(F.pad(x, (pad, pad, pad, pad), mode="replicate")), self.taps, stride=1)
        start = s * pad + 2 * s - 2  # the tconv's and the blur's centres, (2s-2)/2 + (3s-3)/2, minus (s-1)/2
        h, w = self.natural_size(x)
        return y[..., start:start + h, start:start + w]
