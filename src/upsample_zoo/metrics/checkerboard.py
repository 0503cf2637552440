"""The checkerboard score: aliasing-peak contrast in the power spectrum, batched with torch.fft.

Definition. For a batch (B, C, H, W) made by a model of total upsampling factor s:

1. Crop c = min(max(4, s), min(H, W) // 16) border pixels, truncate H and W to multiples of s (and of 2),
   so that every aliasing frequency (i*H/s, j*W/s) falls exactly on a DFT bin.
2. Per image and channel: subtract the mean, apply a separable *periodic* Hann window w,
   P = |FFT(w x)|^2 / sum(w^2).
3. Average P over channels and batch in the power domain (colour patterns must not cancel).
4. At an aliasing bin a: peak = mean of the 3x3 block on a; bg = the largest of the medians of four
   one-bin-wide strips 2..4 bins away on both sides (horizontal, vertical, two diagonals);
   contrast = 10 log10(peak / bg).

Outputs: ``checkerboard_db`` (max over the three Nyquist bins), ``checkerboard_grid_max_db`` and
``checkerboard_grid_period`` (max over the period-p grid, p the largest period <= s with bin spacing
>= 8), ``checkerboard_amp`` (RMS amplitude, in 8-bit levels, of the whole pattern at the three Nyquist
bins: 2-D checkerboards and one-directional stripes alike; see :func:`nyquist_amplitude`), ``blockiness_db``
(the Nyquist contrast of the gradient-energy map |dx| + |dy|), and with real reference images
``checkerboard_db_ref`` and ``spectral_hf_gap_db`` (azimuthal spectra, Durall et al. 2020).

Inputs are checked as in :mod:`upsample_zoo.metrics.spectrum` (uint8, or float in the declared
``value_range``, (0, 1) by default). The range fixes the unit of ``checkerboard_amp``: its span is 255
levels. The dB scores are ratios and do not depend on it.

Constant images have no power to compare once their mean is subtracted: when the accumulated power of a
set is zero (below ``FLAT_POWER``, in units of the range squared) its dB scores and amplitude are NaN,
with a warning, instead of a clean-looking 0 dB. The rule reads the pooled set: constant images mixed
into a set add no power, so they leave its dB scores as they are and dilute ``checkerboard_amp``.
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from upsample_zoo.metrics.facts import MIN, MetricFact
from upsample_zoo.metrics.spectrum import (
    POWER_EPS,
    UNIT_RANGE,
    cached_tensors,
    check_batch,
    check_images,
    check_value_range,
    half_power_sums,
    spectral_hf_gap_db,
    to_unit,
)

MIN_SIDE = 12  # the 9x9 neighbourhood of a Nyquist bin must not wrap onto itself
MIN_GRID_SPACING = 8
FLAT_POWER = 1e-12  # mean power per bin (windowed variance, range = 1) at or below which a set is constant


# ---- the analysed window -------------------------------------------------------------------------

def crop_border(h: int, w: int, scale: int) -> int:
    """c = min(max(4, s), floor(min(H, W) / 16)): small images need a small crop."""
    return min(max(4, scale), min(h, w) // 16)


def analysis_size(h: int, w: int, scale: int) -> tuple[int, int, int]:
    """(crop, H', W'): the border crop and the analysed side, a multiple of lcm(s, 2)."""
    c = crop_border(h, w, scale)
    m = math.lcm(int(scale), 2)
    hh, ww = (h - 2 * c) // m * m, (w - 2 * c) // m * m
    if min(hh, ww) < MIN_SIDE:
        raise ValueError(
            f"checkerboard score: images of {h}x{w} leave {hh}x{ww} px after cropping {c} px and truncating to "
            f"multiples of {m}; need at least {MIN_SIDE}"
        )
    return c, hh, ww


def gradient_energy(x: Tensor, out: Tensor | None = None) -> Tensor:
    """|dx| + |dy| with forward differences: (..., H-1, W-1), written into ``out`` when given."""
    base = x[..., :-1, :-1]
    dx = torch.sub(x[..., :-1, 1:], base, out=out).abs_()
    return dx.add_((x[..., 1:, :-1] - base).abs_())


def full_spectrum(half: Tensor, w: int) -> Tensor:
    """(..., H, W//2 + 1) half-plane -> (..., H, W): the other half from P(-k) = P(k), which holds for real
    inputs. Linear, so it commutes with the sums over images: the metric keeps halves and expands once."""
    h = half.shape[-2]
    cols = torch.arange(w // 2 + 1, w, device=half.device)
    rows = (-torch.arange(h, device=half.device)) % h
    return torch.cat([half, half[..., rows, :][..., w - cols]], dim=-1)


def batch_half_power_sums(x: Tensor, scale: int, value_range: tuple[float, float] = UNIT_RANGE,
                          what: str = "images", softmax_dim: int | None = None) -> tuple[Tensor, int]:
    """(2, H', W'//2 + 1): the half-plane power of the image and of its gradient-energy map, summed over batch
    and channels, and the count. The batch is checked first (:func:`check_images`) and mapped from
    ``value_range`` to [0, 1]. ``softmax_dim``: ``x`` holds logits, and the score reads ``softmax(x,
    softmax_dim)``, which is taken (per pixel, so it commutes with the crop) on the pixels the score reads only;
    NaN or inf logits are found on the sums (a NaN probability reaches every bin), with the same error."""
    if softmax_dim is None:
        check_images(x, value_range, what)
    else:
        check_batch(x, what)
    x = x.detach()  # a score, not a loss: the buffers below are written in place
    c, hh, ww = analysis_size(x.shape[-2], x.shape[-1], scale)
    # the pixels the score reads: the analysed window and one extra row and column for the differences
    src = x[..., c:c + hh + 1, c:c + ww + 1]
    if softmax_dim is None:
        src = to_unit(src, value_range)
    else:  # probabilities are in [0, 1] by construction; NaN or inf logits give NaN ones, checked on the sums
        src = src.float().softmax(softmax_dim)
    # Both maps go into one buffer (one FFT call, no stacking copy): the analysed window, and the differences
    # of that window and the extra row and column (not of the whole image: a third of the cost on a
    # segmentation window). Tiny images (c == 0) lack that row or column: it stays zero (zero padding).
    maps = src.new_empty(2, *src.shape[:-2], hh, ww)
    maps[0].copy_(src[..., :hh, :ww])
    gh, gw = src.shape[-2] - 1, src.shape[-1] - 1
    if (gh, gw) != (hh, ww):
        maps[1].zero_()
    gradient_energy(src, out=maps[1, ..., :gh, :gw])
    sums = half_power_sums(maps)
    if softmax_dim is not None and not bool(torch.isfinite(sums).all()):
        check_images(src, UNIT_RANGE, what)  # NaN spreads to every bin: only a failure reads the window
    return sums, x.shape[0] * x.shape[1]


def batch_power_sums(x: Tensor, scale: int, value_range: tuple[float, float] = UNIT_RANGE,
                     what: str = "images") -> tuple[Tensor, Tensor, int]:
    """Power summed over batch and channels for the image and its gradient-energy map, (H', W') each, and the
    count: :func:`batch_half_power_sums`, expanded."""
    halves, n = batch_half_power_sums(x, scale, value_range, what)
    power, grad = full_spectrum(halves, even_width(halves))
    return power, grad, n


def even_width(half: Tensor) -> int:
    """W' of a half-plane spectrum: the analysed side is a multiple of lcm(s, 2), so even: 2 (W'//2 + 1 - 1)."""
    return 2 * (half.shape[-1] - 1)


# ---- peak contrast --------------------------------------------------------------------------------

@cached_tensors(maxsize=1)
def _offsets() -> tuple[Tensor, tuple[Tensor, ...]]:
    """(dy, dx) offsets of the 3x3 peak block and of the four background strips, 2..4 bins away.

    The strips are one bin wide. A spectral line (an edge, a horizon, an image border) is three bins
    wide across its length (the Hann window's kernel); the median along the line's own strip then reads
    its full level, so the line cannot beat its background. Three-bin-wide strips would read the line's
    half-power flanks instead and let a strong edge raise the score by up to 3 dB.
    """
    near, far = range(-1, 2), [*range(-4, -1), *range(2, 5)]
    block = torch.tensor([(i, j) for i in near for j in near])
    horiz = torch.tensor([(0, k) for k in far])
    vert = torch.tensor([(k, 0) for k in far])
    diag = torch.tensor([(k, k) for k in far])
    anti = torch.tensor([(k, -k) for k in far])
    return block, (horiz, vert, diag, anti)


def _gather(power: Tensor, bins: Tensor, offsets: Tensor) -> Tensor:
    h, w = power.shape[-2:]
    rows = (bins[:, None, 0] + offsets[None, :, 0].to(bins.device)) % h
    cols = (bins[:, None, 1] + offsets[None, :, 1].to(bins.device)) % w
    return power[rows, cols]  # (n_bins, n_offsets)


def peak_and_background(power: Tensor, bins: Tensor) -> tuple[Tensor, Tensor]:
    """Per bin: mean power of the 3x3 block, and the largest of the four strip medians."""
    block, strips = _offsets()
    bins = bins.to(power.device)
    peak = _gather(power, bins, block).mean(dim=1)
    # quantile(0.5) averages the two middle values, like numpy.median (torch.median takes the lower one);
    # the four strips in one call, one median per (bin, strip)
    meds = torch.quantile(_gather(power, bins, torch.cat(strips)).unflatten(1, (len(strips), -1)), 0.5, dim=2)
    return peak, meds.max(dim=1).values


@cached_tensors(maxsize=1)
def _background_model() -> tuple[Tensor, Tensor]:
    """(dy, dx) of the 72 bins 2..4 bins away from a Nyquist bin (Chebyshev distance), and the (9, 72) map
    from their log power to the log power a fit predicts on the 3x3 block: least squares of
    log P = a + b |dy| + c |dx| + d |dy| |dx| over those bins, evaluated at the block's offsets."""
    ring = [(i, j) for i in range(-4, 5) for j in range(-4, 5) if max(abs(i), abs(j)) >= 2]
    near = [(i, j) for i in range(-1, 2) for j in range(-1, 2)]

    def design(offsets: list[tuple[int, int]]) -> Tensor:
        return torch.tensor([[1, abs(i), abs(j), abs(i) * abs(j)] for i, j in offsets], dtype=torch.float64)

    return torch.tensor(ring), design(near) @ torch.linalg.pinv(design(ring))


def nyquist_amplitude(power: Tensor) -> Tensor:
    """RMS amplitude (in units of the value range) of the whole pattern at the three Nyquist bins (H'/2, 0),
    (0, W'/2) and (H'/2, W'/2) of a batch-mean power spectrum (H', W'): one-directional stripes and 2-D
    checkerboards alike. sqrt(9 / (H' W') * sum over the bins of max(0, peak - bg)): peak is the mean power
    of the 3x3 block on the bin, which holds all of an on-bin pattern's power, and by Parseval a pattern
    of RMS amplitude A adds (H' W' / 9) A^2 to it; bg is the mean power the block would hold without the
    pattern, the exp of a log-linear V fit (a + b |dy| + c |dx| + d |dy||dx|) to the bins 2..4 away.

    The spectrum is symmetric about every Nyquist bin, and photos fall steeply towards it: a bin there sits
    at the bottom of a V, most of all on the axes, where horizontal and vertical edges draw a bright line.
    The strip medians of :func:`peak_and_background` read that line 2..4 bins up the V, up to 4x the
    level at the bin, and hid a +-2-level (-1)^y pattern on CIFAR-10 (amp 0); the fit follows the V down.
    A +-a square wave on any Nyquist bin reads a; clean CIFAR-10 and 1/f images read about 0.3-0.4."""
    h, w = power.shape[-2:]
    block, _ = _offsets()
    ring, to_block = (t.to(power.device) for t in _background_model())
    nyq = grid_bins(h, w, 2).to(power.device)
    p = power.double()
    peak = _gather(p, nyq, block).mean(dim=1)
    log_ring = torch.log(_gather(p, nyq, ring) + POWER_EPS)  # (3, 72)
    bg = torch.exp(log_ring @ to_block.T).mean(dim=1)
    return torch.sqrt((peak - bg).clamp(min=0).sum() * 9 / (h * w)).to(power.dtype)


def _ratio_db(peak: Tensor, bg: Tensor) -> Tensor:
    return 10 * torch.log10((peak + POWER_EPS) / (bg + POWER_EPS))


def contrast_db(power: Tensor, bins: Tensor) -> Tensor:
    return _ratio_db(*peak_and_background(power, bins))


def grid_bins(h: int, w: int, period: int) -> Tensor:
    """All aliasing bins (i H/p, j W/p), (i, j) != (0, 0)."""
    return torch.tensor([(i * h // period, j * w // period)
                         for i in range(period) for j in range(period) if i or j])


def grid_period(h: int, w: int, scale: int) -> int:
    """The largest period p <= s (dividing the analysed side) whose bin spacing is >= 8 bins; else 2."""
    m = math.lcm(int(scale), 2)
    ok = [p for p in range(2, m + 1) if m % p == 0 and p <= max(scale, 2)
          and min(h, w) // p >= MIN_GRID_SPACING]
    return max(ok, default=2)


# ---- scores from the accumulated spectra ----------------------------------------------------------

def is_flat(power: Tensor) -> bool:
    """True when a batch-mean spectrum holds no power: its mean over the bins (the windowed variance, by
    Parseval, in units of the value range squared) is at most ``FLAT_POWER``, i.e. an RMS deviation below
    1e-6 of the range, far below one 8-bit level (float32 round-off of a constant image is ~1e-14)."""
    return bool(power.double().mean().item() <= FLAT_POWER)


def _warn_flat(what: str, outputs: str) -> None:
    warnings.warn(f"checkerboard score: the {what} are constant (no variance once each image's mean is "
                  f"subtracted, in the analysed window); {outputs} NaN, not a clean 0 dB", UserWarning, stacklevel=3)


def scores_from_power(power: Tensor, grad_power: Tensor, scale: int) -> dict[str, float]:
    """All single-set outputs from batch-mean spectra of the image and of its gradient-energy map.

    A set of constant images (no power) gives NaN for every score, and a warning; a set whose
    gradient-energy maps are constant (e.g. pure ramps) gives NaN for ``blockiness_db``.
    """
    h, w = power.shape[-2:]
    nyq = grid_bins(h, w, 2)
    p = grid_period(h, w, scale)
    if is_flat(power):
        _warn_flat("images", "all checkerboard scores are")
        nan = math.nan
        return {"checkerboard_db": nan, "checkerboard_grid_max_db": nan, "checkerboard_grid_period": float(p),
                "checkerboard_amp": nan, "blockiness_db": nan}
    cb = contrast_db(power, nyq)
    amp = nyquist_amplitude(power) * 255
    if is_flat(grad_power):
        _warn_flat("gradient-energy maps |dx| + |dy|", "blockiness_db is")
        blockiness = math.nan
    else:
        blockiness = contrast_db(grad_power, nyq).max().item()
    return {
        "checkerboard_db": cb.max().item(),
        "checkerboard_grid_max_db": contrast_db(power, grid_bins(h, w, p)).max().item(),
        "checkerboard_grid_period": float(p),
        "checkerboard_amp": amp.item(),
        "blockiness_db": blockiness,
    }


class CheckerboardScore(Metric):
    """The checkerboard score as a torchmetrics Metric (DDP-synced running spectra).

    ``update(x)`` adds generated/predicted images; ``update(x, real=True)`` adds reference images, which
    adds ``checkerboard_db_ref`` and ``spectral_hf_gap_db`` to ``compute()``. All images of one kind
    must share a size. ``compute()`` returns a dict of 0-d float tensors.

    Images are uint8 (0..255) or float in ``value_range`` (default (0, 1): images, probability maps;
    (-1, 1) for tanh outputs); floats beyond it by more than ``RANGE_TOL`` of the span, NaN, inf and empty
    batches are rejected in ``update`` (ValueError). Constant sets give NaN scores and a warning.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    facts: ClassVar[dict[str, MetricFact]] = {
        "checkerboard_db": MetricFact(MIN, "checkerboard dB", "grid-peak contrast of the mean power spectrum of "
                                      "the maps and their gradients at the period of the scale (module doc)"),
        "checkerboard_db_vs_ref": MetricFact(MIN, "checkerboard dB − real", "checkerboard_db − checkerboard_db_ref"),
        "checkerboard_amp": MetricFact(MIN, "checkerboard amplitude"),
        "blockiness_db": MetricFact(MIN, "blockiness dB"),
        "spectral_hf_gap_db": MetricFact(MIN, "spectral HF gap dB"),
    }

    power_sum: Tensor
    grad_sum: Tensor
    count: Tensor
    ref_power_sum: Tensor
    ref_count: Tensor

    def __init__(self, scale: int = 2, value_range: tuple[float, float] = UNIT_RANGE, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(scale) < 1:
            raise ValueError(f"CheckerboardScore: scale must be >= 1, got {scale}")
        self.scale = int(scale)
        self.value_range = check_value_range(value_range)
        # 0-d defaults broadcast against the first (H', W') spectrum, whose size is only known then.
        for name in ("power_sum", "grad_sum", "count", "ref_power_sum", "ref_count"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool = False, softmax_dim: int | None = None) -> None:
        """Add a batch (B, C, H, W) in ``value_range``, or of logits whose ``softmax(x, softmax_dim)`` the
        score reads (class-probability maps; the softmax is taken on the pixels the score reads only)."""
        what = "reference images (real=True)" if real else "images"
        halves, n = batch_half_power_sums(x, self.scale, self.value_range, what, softmax_dim)
        power, grad = halves
        held = self.ref_power_sum if real else self.power_sum
        if held.ndim and held.shape != power.shape:
            size = lambda t: (t.shape[-2], even_width(t))  # noqa: E731
            raise ValueError(f"CheckerboardScore: analysed size {size(power)} differs from the earlier "
                             f"{size(held)}; all {'reference ' if real else ''}images must share a size")
        # the states hold rfft2 half-planes (the full spectrum is their mirror image): expanded once, when read
        if real:
            self.ref_power_sum = self.ref_power_sum + power
            self.ref_count = self.ref_count + n
        else:
            self.power_sum = self.power_sum + power
            self.grad_sum = self.grad_sum + grad
            self.count = self.count + n

    def mean_power(self, real: bool = False) -> Tensor:
        """(H', W') batch- and channel-mean power spectrum (unshifted) of the generated or reference set."""
        total, n = (self.ref_power_sum, self.ref_count) if real else (self.power_sum, self.count)
        if n.item() == 0:
            raise RuntimeError("CheckerboardScore: no " + ("reference " if real else "") + "images added")
        return full_spectrum(total / n, even_width(total))

    def compute(self) -> dict[str, Tensor]:
        grad = self.grad_sum / self.count
        out = scores_from_power(self.mean_power(), full_spectrum(grad, even_width(grad)), self.scale)
        if self.ref_count.item() > 0:
            ref = self.mean_power(real=True)
            h, w = ref.shape[-2:]
            if is_flat(ref):
                _warn_flat("reference images", "checkerboard_db_ref and spectral_hf_gap_db are")
                out["checkerboard_db_ref"] = out["spectral_hf_gap_db"] = math.nan
            else:
                out["checkerboard_db_ref"] = contrast_db(ref, grid_bins(h, w, 2)).max().item()
                gen_flat = math.isnan(out["checkerboard_db"])
                out["spectral_hf_gap_db"] = math.nan if gen_flat else spectral_hf_gap_db(self.mean_power(), ref)
        return {k: torch.tensor(v) for k, v in out.items()}


def checkerboard_score(x: Tensor, scale: int = 2, ref: Tensor | None = None,
                       value_range: tuple[float, float] = UNIT_RANGE) -> dict[str, float]:
    """The checkerboard score of one batch (B, C, H, W), uint8 or float in ``value_range`` (default
    [0, 1]), with optional reference images ``ref`` (same rules); see the module doc."""
    metric = CheckerboardScore(scale=scale, value_range=value_range).to(x.device)
    metric.update(x)
    if ref is not None:
        metric.update(ref.to(x.device), real=True)
    return {k: float(v) for k, v in metric.compute().items()}


__all__ = [
    "FLAT_POWER",
    "MIN_GRID_SPACING",
    "MIN_SIDE",
    "CheckerboardScore",
    "analysis_size",
    "batch_half_power_sums",
    "batch_power_sums",
    "checkerboard_score",
    "contrast_db",
    "crop_border",
    "even_width",
    "full_spectrum",
    "gradient_energy",
    "grid_bins",
    "grid_period",
    "is_flat",
    "nyquist_amplitude",
    "peak_and_background",
    "scores_from_power",
]
