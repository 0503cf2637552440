"""Image power spectra, batched with torch.fft: the input checks every spectral metric shares, the Hann
window, the per-image power spectrum, its azimuthal (radial) average, the spectral regulariser and the
high-frequency gap of two spectra. The metrics built on them: :mod:`upsample_zoo.metrics.checkerboard`
and :mod:`upsample_zoo.metrics.spectral_fd`.

Inputs are checked before anything is computed: uint8, or float in the declared ``value_range`` ((0, 1)
by default; pass (-1, 1) for tanh-range images). Out of range by more than ``RANGE_TOL`` of the span, a
NaN or inf value, or an empty batch raise a one-line ValueError.

Rings: a DFT bin of frequency (fy, fx) lies in ring round(r * min(H, W)), r = sqrt(fy^2 + fx^2) in
cycles/px: rings 0 .. min(H, W) // 2 cover radii 0 .. 0.5, and the corners beyond 0.5 form one more ring.
"""

from __future__ import annotations

import math
from functools import lru_cache, wraps
from typing import NamedTuple

import torch
from torch import Tensor

from upsample_zoo.conversions import UNIT_RANGE, check_value_range, to_unit

HF_BAND = (0.375, 0.5)  # cycles/px
LF_BAND = (0.05, 0.2)
POWER_EPS = 1e-20  # added to powers before a log or a ratio: 0 stays finite
RANGE_TOL = 0.1  # accepted overshoot of a float input's declared range, as a fraction of its span


# ---- inputs ---------------------------------------------------------------------------------------

def check_batch(x: Tensor, what: str = "images") -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (B, C, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"empty batch of {what}, shape {tuple(x.shape)}: no images, channels or pixels to score")


def _range_hint(lo: float, hi: float) -> str:
    if lo >= -1 - 2 * RANGE_TOL and hi <= 1 + 2 * RANGE_TOL and lo < 0:
        return "for images in [-1, 1] pass value_range=(-1, 1)"
    if lo >= -2 * RANGE_TOL * 255 and hi <= 255 * (1 + 2 * RANGE_TOL) and hi > 2:
        return "for 0..255 images pass uint8 or value_range=(0, 255)"
    return "pass the images' value_range, or uint8"


def check_images(x: Tensor, value_range: tuple[float, float] = UNIT_RANGE, what: str = "images",
                 who: str = "checkerboard score") -> None:
    """Reject what would give a silently wrong score, with a one-line ValueError: a batch that is not
    (B, C, H, W) or is empty, NaN or inf values, or a float batch outside ``value_range`` by more than
    ``RANGE_TOL`` of its span. uint8 is always valid (0..255). One pass and one device sync for a float batch."""
    check_batch(x, what)
    if x.dtype == torch.uint8:
        return
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a float tensor in value_range {tuple(value_range)} or uint8, got {x.dtype}")
    lo, hi = check_value_range(value_range)
    # one pass: min and max propagate NaN, and an inf is its own min or max, so both are finite iff every value
    # is (the count of bad values is only taken for the message)
    vmin, vmax = (float(v) for v in torch.stack(torch.aminmax(x)).double().tolist())
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{who}: {bad} of {x.numel()} values in the {what} are not finite (NaN or inf)")
    tol = RANGE_TOL * (hi - lo)
    if vmin < lo - tol or vmax > hi + tol:
        raise ValueError(f"{who}: the {what} span [{vmin:.3g}, {vmax:.3g}], outside value_range ({lo:g}, {hi:g}) "
                         f"by more than {RANGE_TOL:.0%} of its span; {_range_hint(vmin, vmax)}")


# ---- spectra --------------------------------------------------------------------------------------

def cached_tensors(maxsize: int):
    """lru_cache for tensor constants, always built outside inference mode.

    A constant first made under torch.inference_mode() (FID, evaluation) would be an inference tensor,
    and autograd (spectral_loss, later in the same process) refuses to save one for backward.
    """
    def wrap(fn):
        @lru_cache(maxsize=maxsize)
        @wraps(fn)
        def built(*args):
            with torch.inference_mode(False):
                return fn(*args)
        return built
    return wrap


@cached_tensors(maxsize=32)
def hann_window_2d(h: int, w: int, periodic: bool = True) -> Tensor:
    """Separable 2-D Hann window, float32. Periodic for the metrics (their DFT bins see an exact
    raised cosine); ``periodic=False`` is numpy's symmetric ``hanning``."""
    return torch.outer(torch.hann_window(h, periodic=periodic, dtype=torch.float64),
                       torch.hann_window(w, periodic=periodic, dtype=torch.float64)).float()


def power_spectrum(x: Tensor, periodic_window: bool = True) -> Tensor:
    """P = |FFT(w (x - mean))|^2 / sum(w^2) per image and channel, w a separable Hann window
    (:func:`hann_window_2d`). Differentiable; same shape as x (unshifted: DC at [0, 0]).
    """
    x = to_unit(x) if not x.is_floating_point() else x
    win = hann_window_2d(x.shape[-2], x.shape[-1], periodic_window).to(device=x.device, dtype=x.dtype)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return torch.fft.fft2(x * win).abs().square() / win.square().sum()


def half_power_sums(maps: Tensor) -> Tensor:
    """(K, B, C, H, W) -> (K, H, W//2 + 1): for each of the K kinds of map (the image, its gradient energy), P
    summed over batch and channels on the rfft2 half-plane, all K in one FFT call: :func:`power_spectrum`'s P,
    summed (the metrics' batched form; the other half-plane is the mirror image). ``maps`` is consumed: it is
    centred and windowed in place."""
    h, w = maps.shape[-2:]
    win = hann_window_2d(h, w).to(device=maps.device, dtype=maps.dtype)
    spec = torch.view_as_real(torch.fft.rfft2(maps.sub_(maps.mean(dim=(-2, -1), keepdim=True)).mul_(win)))
    # |X|^2 = re^2 + im^2, summed over batch and channels first: the reduction then runs over contiguous
    # (re, im) pairs, which is 8x faster on CPU than reducing the last axis first (float32 rounding apart)
    return spec.square_().sum(dim=(1, 2)).sum(dim=-1) / win.square().sum()


@cached_tensors(maxsize=32)
def ring_index(h: int, w: int) -> Tensor:
    """Ring of each DFT bin, round(r * min(H, W)); corners beyond 0.5 cycles/px go to an overflow ring.
    float64, so that radii exactly half-way between rings round the same everywhere."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    side = min(h, w)
    return torch.round(torch.sqrt(fy**2 + fx**2) * side).long().flatten().clamp(max=side // 2 + 1)


def ring_means(power: Tensor) -> Tensor:
    """Mean power per ring of an unshifted power spectrum (..., H, W), as (..., R + 1): the rings
    0 .. R - 1 of :func:`ring_index` (R = min(H, W) // 2 + 1, radii 0 .. 0.5 cycles/px), then the corner
    ring beyond 0.5 cycles/px (0 when it is empty). Differentiable in ``power``."""
    h, w = power.shape[-2:]
    n_r = min(h, w) // 2 + 1
    idx = ring_index(h, w).to(power.device)
    flat = power.reshape(*power.shape[:-2], h * w)
    sums = flat.new_zeros(*flat.shape[:-1], n_r + 1).scatter_add(-1, idx.expand_as(flat), flat)
    counts = torch.bincount(idx, minlength=n_r + 1).to(flat.dtype)
    return sums / counts.clamp(min=1)


def radial_profile(power: Tensor) -> tuple[Tensor, Tensor]:
    """Azimuthal mean of an unshifted power spectrum (..., H, W) over rings of width 1/min(H, W).

    Returns (freqs in cycles/px, profile (..., R)), radii 0 .. 0.5. Differentiable in ``power``.
    """
    side = min(power.shape[-2:])
    n_r = side // 2 + 1
    freqs = torch.arange(n_r, device=power.device, dtype=power.dtype) / side
    return freqs, ring_means(power)[..., :n_r]


class AzimuthalSpectrum(NamedTuple):
    freqs: Tensor  # (R,) cycles/px
    per_image: Tensor  # (B, R), channel-averaged power
    mean: Tensor  # (R,)


def azimuthal_spectrum(x: Tensor, periodic_window: bool = True) -> AzimuthalSpectrum:
    """1-D radially averaged power spectrum per image (channels averaged in power) and its batch mean.
    ``periodic_window=False`` takes numpy's symmetric Hann window (the synthetic data's slope check)."""
    check_batch(x)
    x = to_unit(x) if x.dtype == torch.uint8 else x
    freqs, prof = radial_profile(power_spectrum(x, periodic_window).mean(dim=1))
    return AzimuthalSpectrum(freqs, prof, prof.mean(dim=0))


def mean_power_spectrum(x: Tensor) -> Tensor:
    """(H, W) power averaged over batch and channels, unshifted."""
    check_batch(x)
    return power_spectrum(to_unit(x)).mean(dim=(0, 1))


def power_db(power: Tensor) -> Tensor:
    """10 log10 of a power (spectrum), finite at 0."""
    return 10 * torch.log10(power + POWER_EPS)


def mean_log_spectrum(x: Tensor) -> Tensor:
    """(H, W) fftshifted 10 log10 of the batch- and channel-mean power (DC in the centre)."""
    return torch.fft.fftshift(power_db(mean_power_spectrum(x)))


def spectral_hf_gap_db(power_gen: Tensor, power_ref: Tensor) -> float:
    """Mean over 0.375..0.5 cycles/px of 10 log10(S_gen / S_ref) minus the same over 0.05..0.2."""
    def band_db(power: Tensor) -> tuple[float, float]:
        f, s = radial_profile(power)
        db = power_db(s)
        hi = (f >= HF_BAND[0]) & (f <= HF_BAND[1])
        lo = (f >= LF_BAND[0]) & (f <= LF_BAND[1])
        return db[hi].mean().item(), db[lo].mean().item()

    (gh, gl), (rh, rl) = band_db(power_gen), band_db(power_ref)
    return (gh - rh) - (gl - rl)


def spectral_loss(fake: Tensor, real: Tensor, eps: float = 1e-8) -> Tensor:
    """Differentiable spectral regulariser (after Durall et al. 2020): the mean squared log-ratio of the
    batch-mean azimuthal spectra of fake and real images, over radii > 0. Gradients flow into ``fake``
    through torch.fft (the original's numpy spectrum passed none); ``real`` is treated as a constant.
    Both must have the same size and value range (a uint8 ``real`` is read as [0, 1]): a plain gain
    difference shows up as a constant log-ratio and is penalised too.
    """
    if fake.shape[-2:] != real.shape[-2:]:
        raise ValueError(f"spectral_loss: fake {tuple(fake.shape)} and real {tuple(real.shape)} sizes differ")
    s_fake = azimuthal_spectrum(fake).mean[1:]
    with torch.no_grad():
        real = real.to(fake.device) if real.dtype == torch.uint8 else real.to(fake)
        s_real = azimuthal_spectrum(real).mean[1:]
    return (torch.log(s_fake + eps) - torch.log(s_real + eps)).square().mean()


__all__ = [
    "half_power_sums",
    "AzimuthalSpectrum",
    "HF_BAND",
    "LF_BAND",
    "POWER_EPS",
    "RANGE_TOL",
    "UNIT_RANGE",
    "azimuthal_spectrum",
    "cached_tensors",
    "check_batch",
    "check_images",
    "check_value_range",
    "hann_window_2d",
    "mean_log_spectrum",
    "mean_power_spectrum",
    "power_db",
    "power_spectrum",
    "radial_profile",
    "ring_index",
    "ring_means",
    "spectral_hf_gap_db",
    "spectral_loss",
    "to_unit",
]
