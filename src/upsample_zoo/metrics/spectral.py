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
>= 8), ``checkerboard_amp`` (RMS amplitude of the Nyquist pattern, 8-bit levels), ``blockiness_db``
(the Nyquist contrast of the gradient-energy map |dx| + |dy|), and with real reference images
``checkerboard_db_ref`` and ``spectral_hf_gap_db`` (azimuthal spectra, Durall et al. 2020).

Inputs are checked before anything is computed: uint8, or float in the declared ``value_range`` ((0, 1)
by default; pass (-1, 1) for tanh-range images). Out of range by more than ``RANGE_TOL`` of the span, a
NaN or inf value, or an empty batch raise a one-line ValueError. The range fixes the unit of
``checkerboard_amp``: its span is 255 levels. The dB scores are ratios and do not depend on it.

Constant images have no power to compare once their mean is subtracted: when the accumulated power of a
set is zero (below ``FLAT_POWER``, in units of the range squared) its dB scores and amplitude are NaN,
with a warning, instead of a clean-looking 0 dB. The rule reads the pooled set: constant images mixed
into a set add no power, so they leave its dB scores as they are and dilute ``checkerboard_amp``.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache, wraps
from typing import NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric

from upsample_zoo.metrics.frechet import frechet_distance

MIN_SIDE = 12  # the 9x9 neighbourhood of a Nyquist bin must not wrap onto itself
MIN_GRID_SPACING = 8
HF_BAND = (0.375, 0.5)  # cycles/px
LF_BAND = (0.05, 0.2)
POWER_EPS = 1e-20  # added to powers before a log or a ratio: 0 stays finite
UNIT_RANGE = (0.0, 1.0)
RANGE_TOL = 0.1  # accepted overshoot of a float input's declared range, as a fraction of its span
FLAT_POWER = 1e-12  # mean power per bin (windowed variance, range = 1) at or below which a set is constant


# ---- inputs ---------------------------------------------------------------------------------------

def _check_value_range(value_range: tuple[float, float]) -> tuple[float, float]:
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
    lo, hi = _check_value_range(value_range)
    return x.float() if (lo, hi) == UNIT_RANGE else (x.float() - lo) / (hi - lo)


def _check_batch(x: Tensor, what: str = "images") -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (B, C, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"empty batch of {what}, shape {tuple(x.shape)}: no images, channels or pixels to score")


def _check_finite(x: Tensor, what: str, who: str) -> None:
    if x.is_floating_point():
        bad = int((~torch.isfinite(x)).sum().item())
        if bad:
            raise ValueError(f"{who}: {bad} of {x.numel()} values in the {what} are not finite (NaN or inf)")


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
    ``RANGE_TOL`` of its span. uint8 is always valid (0..255). One device sync for a float batch."""
    _check_batch(x, what)
    if x.dtype == torch.uint8:
        return
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a float tensor in value_range {tuple(value_range)} or uint8, got {x.dtype}")
    lo, hi = _check_value_range(value_range)
    bad, vmin, vmax = torch.stack([(~torch.isfinite(x)).sum().double(), x.amin().double(),
                                   x.amax().double()]).tolist()
    if bad:
        raise ValueError(f"{who}: {int(bad)} of {x.numel()} values in the {what} are not finite (NaN or inf)")
    tol = RANGE_TOL * (hi - lo)
    if vmin < lo - tol or vmax > hi + tol:
        raise ValueError(f"{who}: the {what} span [{vmin:.3g}, {vmax:.3g}], outside value_range ({lo:g}, {hi:g}) "
                         f"by more than {RANGE_TOL:.0%} of its span; {_range_hint(vmin, vmax)}")


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


def one_over_f_images(
    n: int,
    channels: int = 3,
    size: int | tuple[int, int] = 64,
    *,
    seed: int = 0,
    std: float = 0.15,
    beta: float = 1.0,
    quantize: bool = True,
) -> Tensor:
    """Natural-like test images: amplitude spectrum 1/f^beta with random phase, mean 0.5, given std.

    Each image and channel is independent Gaussian noise shaped in the Fourier domain (periodic, so no
    border discontinuity), clipped to [0, 1]. uint8 when ``quantize`` (8-bit, as saved images), else float.
    """
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, channels, h, w, generator=g)
    f = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float32)[:, None] ** 2
                   + torch.fft.rfftfreq(w, dtype=torch.float32)[None, :] ** 2)
    f[0, 0] = math.inf  # no DC: the mean is set below
    img = torch.fft.irfft2(torch.fft.rfft2(noise) / f**beta, s=(h, w))
    img = img - img.mean(dim=(-2, -1), keepdim=True)
    img = 0.5 + std * img / img.std(dim=(-2, -1), keepdim=True)
    img = img.clamp(0, 1)
    return (img * 255).round().to(torch.uint8) if quantize else img.float()


# ---- spectra --------------------------------------------------------------------------------------

def _cached_tensors(maxsize: int):
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


@_cached_tensors(maxsize=32)
def _hann2d_cpu(h: int, w: int) -> Tensor:
    return torch.outer(torch.hann_window(h, periodic=True, dtype=torch.float64),
                       torch.hann_window(w, periodic=True, dtype=torch.float64)).float()


def power_spectrum(x: Tensor) -> Tensor:
    """P = |FFT(w (x - mean))|^2 / sum(w^2) per image and channel, w a separable periodic Hann window.

    Differentiable; same shape as x (unshifted: DC at [0, 0]).
    """
    x = to_unit(x) if not x.is_floating_point() else x
    win = _hann2d_cpu(x.shape[-2], x.shape[-1]).to(device=x.device, dtype=x.dtype)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return torch.fft.fft2(x * win).abs().square() / win.square().sum()


def gradient_energy(x: Tensor) -> Tensor:
    """|dx| + |dy| with forward differences: (..., H-1, W-1)."""
    base = x[..., :-1, :-1]
    return (x[..., :-1, 1:] - base).abs_().add_((x[..., 1:, :-1] - base).abs_())


def _power_sum(x: Tensor) -> Tensor:
    """Sum over batch and channels of P, as (H, W). Uses rfft2 (half the work) and fills the other half
    of the spectrum from P(-k) = P(k), which holds for real inputs."""
    h, w = x.shape[-2:]
    win = _hann2d_cpu(h, w).to(device=x.device, dtype=x.dtype)
    spec = torch.fft.rfft2((x - x.mean(dim=(-2, -1), keepdim=True)) * win)
    half = (spec.real.square() + spec.imag.square()).sum(dim=(0, 1)) / win.square().sum()
    cols = torch.arange(w // 2 + 1, w, device=x.device)
    rows = (-torch.arange(h, device=x.device)) % h
    return torch.cat([half, half[rows][:, w - cols]], dim=1)


def batch_power_sums(x: Tensor, scale: int, value_range: tuple[float, float] = UNIT_RANGE,
                     what: str = "images") -> tuple[Tensor, Tensor, int]:
    """Power summed over batch and channels for the image and its gradient-energy map, and the count.
    The batch is checked first (:func:`check_images`) and mapped from ``value_range`` to [0, 1]."""
    check_images(x, value_range, what)
    x = to_unit(x, value_range)
    c, hh, ww = analysis_size(x.shape[-2], x.shape[-1], scale)
    img = x[..., c:c + hh, c:c + ww]
    # Differences of the analysed window and one extra row and column (not of the whole image: a third
    # of the cost on a segmentation window). Tiny images (c == 0) lack that row or column: zero-pad it.
    grad = gradient_energy(x[..., c:c + hh + 1, c:c + ww + 1])
    grad = torch.nn.functional.pad(grad, (0, ww - grad.shape[-1], 0, hh - grad.shape[-2]))
    return _power_sum(img), _power_sum(grad), x.shape[0] * x.shape[1]


# ---- peak contrast --------------------------------------------------------------------------------

@_cached_tensors(maxsize=1)
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
    # quantile(0.5) averages the two middle values, like numpy.median (torch.median takes the lower one).
    meds = torch.stack([torch.quantile(_gather(power, bins, s), 0.5, dim=1) for s in strips], dim=1)
    return peak, meds.max(dim=1).values


def contrast_db(power: Tensor, bins: Tensor) -> Tensor:
    peak, bg = peak_and_background(power, bins)
    return 10 * torch.log10((peak + POWER_EPS) / (bg + POWER_EPS))


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


# ---- azimuthal spectra ----------------------------------------------------------------------------

@_cached_tensors(maxsize=32)
def _ring_index(h: int, w: int) -> Tensor:
    """Ring of each DFT bin, round(r * min(H, W)); corners beyond 0.5 cycles/px go to an overflow ring.
    float64, so that radii exactly half-way between rings round the same everywhere."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    side = min(h, w)
    return torch.round(torch.sqrt(fy**2 + fx**2) * side).long().flatten().clamp(max=side // 2 + 1)


def radial_profile(power: Tensor) -> tuple[Tensor, Tensor]:
    """Azimuthal mean of an unshifted power spectrum (..., H, W) over rings of width 1/min(H, W).

    Returns (freqs in cycles/px, profile (..., R)), radii 0 .. 0.5. Differentiable in ``power``.
    """
    h, w = power.shape[-2:]
    side = min(h, w)
    n_r = side // 2 + 1
    idx = _ring_index(h, w).to(power.device)
    flat = power.reshape(*power.shape[:-2], h * w)
    sums = flat.new_zeros(*flat.shape[:-1], n_r + 1).scatter_add(-1, idx.expand_as(flat), flat)
    counts = torch.bincount(idx, minlength=n_r + 1).to(flat.dtype)
    freqs = torch.arange(n_r, device=power.device, dtype=flat.dtype) / side
    return freqs, (sums / counts)[..., :n_r]


class AzimuthalSpectrum(NamedTuple):
    freqs: Tensor  # (R,) cycles/px
    per_image: Tensor  # (B, R), channel-averaged power
    mean: Tensor  # (R,)


def azimuthal_spectrum(x: Tensor) -> AzimuthalSpectrum:
    """1-D radially averaged power spectrum per image (channels averaged in power) and its batch mean."""
    _check_batch(x)
    x = to_unit(x) if x.dtype == torch.uint8 else x
    freqs, prof = radial_profile(power_spectrum(x).mean(dim=1))
    return AzimuthalSpectrum(freqs, prof, prof.mean(dim=0))


def mean_power_spectrum(x: Tensor) -> Tensor:
    """(H, W) power averaged over batch and channels, unshifted."""
    _check_batch(x)
    return power_spectrum(to_unit(x)).mean(dim=(0, 1))


def mean_log_spectrum(x: Tensor) -> Tensor:
    """(H, W) fftshifted 10 log10 of the batch- and channel-mean power (DC in the centre)."""
    return torch.fft.fftshift(10 * torch.log10(mean_power_spectrum(x) + POWER_EPS))


def spectral_hf_gap_db(power_gen: Tensor, power_ref: Tensor) -> float:
    """Mean over 0.375..0.5 cycles/px of 10 log10(S_gen / S_ref) minus the same over 0.05..0.2."""
    def band_db(power: Tensor) -> tuple[float, float]:
        f, s = radial_profile(power)
        db = 10 * torch.log10(s + POWER_EPS)
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
    peak, bg = peak_and_background(power, nyq)
    cb = 10 * torch.log10((peak + POWER_EPS) / (bg + POWER_EPS))
    # Excess power over the 3x3 block is (h w / 9) A^2 for a pattern of RMS amplitude A (Parseval).
    amp = torch.sqrt((peak - bg).clamp(min=0).sum() * 9 / (h * w)) * 255
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
        self.value_range = _check_value_range(value_range)
        # 0-d defaults broadcast against the first (H', W') spectrum, whose size is only known then.
        for name in ("power_sum", "grad_sum", "count", "ref_power_sum", "ref_count"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool = False) -> None:
        what = "reference images (real=True)" if real else "images"
        power, grad, n = batch_power_sums(x, self.scale, self.value_range, what)
        held = self.ref_power_sum if real else self.power_sum
        if held.ndim and held.shape != power.shape:
            raise ValueError(f"CheckerboardScore: analysed size {tuple(power.shape)} differs from the earlier "
                             f"{tuple(held.shape)}; all {'reference ' if real else ''}images must share a size")
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
        return total / n

    def compute(self) -> dict[str, Tensor]:
        out = scores_from_power(self.mean_power(), self.grad_sum / self.count, self.scale)
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


# ---- spectral Fréchet distance ----------------------------------------------------------

_LOG_FLOOR = 1e-10  # power floor before the log, far below 8-bit quantisation noise (~1e-6)
SPECTRAL_FD_SCALE = 8  # default upsampling factor of the aliasing grid: the DCGAN's 4x4 -> 32x32


def _alias_periods(h: int, w: int, scale: int) -> list[int]:
    """Periods p > 2 of an upsampling by ``scale`` (p divides it) whose frequencies fall on DFT bins."""
    return [p for p in range(3, int(scale) + 1) if scale % p == 0 and h % p == 0 and w % p == 0]


@_cached_tensors(maxsize=32)
def _spectral_fd_bins(h: int, w: int, scale: int) -> tuple[Tensor, Tensor, Tensor]:
    """Flat indices (row * W + col) of the Nyquist bins, of the aliasing bins of periods > 2, and each
    aliasing bin's group (0 for the first period, ...). A bin of period p is (i H/p, j W/p) with
    gcd(i, j, p) = 1: exactly period p, not one of its divisors' (those have their own group)."""
    nyq = [(r, c) for r, c in ((h // 2, 0), (0, w // 2), (h // 2, w // 2))
           if (r == 0 or h % 2 == 0) and (c == 0 or w % 2 == 0)]
    alias, group = [], []
    for g, p in enumerate(_alias_periods(h, w, scale)):
        for i in range(p):
            for j in range(p):
                if math.gcd(math.gcd(i, j), p) == 1:
                    alias.append((i * h // p, j * w // p))
                    group.append(g)

    def flat(bins: list[tuple[int, int]]) -> Tensor:
        return torch.tensor([r * w + c for r, c in bins], dtype=torch.long)

    return flat(nyq), flat(alias), torch.tensor(group, dtype=torch.long)


def spectral_feature_names(h: int, w: int, scale: int = SPECTRAL_FD_SCALE) -> list[str]:
    """Names of the :func:`log_spectral_features` columns for H x W images, in order."""
    side = min(h, w)
    n_r = side // 2 + 1
    corner = bool((_ring_index(h, w) == n_r).any())
    names = [f"ring {r}/{side}" for r in range(1, n_r)] + (["corner ring"] if corner else [])
    names += [f"nyquist ({r}, {c})" for r, c in ((h // 2, 0), (0, w // 2), (h // 2, w // 2))
              if (r == 0 or h % 2 == 0) and (c == 0 or w % 2 == 0)]
    return names + [f"aliasing period {p}" for p in _alias_periods(h, w, scale)]


def log_spectral_features(x: Tensor, scale: int = SPECTRAL_FD_SCALE) -> Tensor:
    """Per-image spectral *shape* features (B, F), float64, natural log of the channel-averaged power
    spectrum P of :func:`power_spectrum` (mean subtracted, periodic Hann window); uint8 reads as [0, 1].

    1. Shape: the log azimuthal spectrum, rings 1 .. min(H, W)/2 plus the corner ring beyond 0.5
       cycles/px, minus its own mean over those rings. A global contrast (gain) change of an image adds
       the same constant to every log ring and vanishes; a blur or a high-frequency excess remains.
    2. Nyquist: log P at each of (H/2, 0), (0, W/2) and (H/2, W/2) minus the log mean power of the ring
       that bin lies in: one feature per bin. A stride-2 checkerboard puts its power there, and the
       azimuthal mean dilutes it over the ~100 bins of the ring.
    3. Aliasing: for each period p > 2 of the upsampling grid (p divides ``scale``, H and W; for 32x32
       and the default scale 8: p = 4 and 8), the largest bin-minus-ring log contrast among the bins
       (i H/p, j W/p) of exactly period p: one feature per period, for the patterns of the earlier x2
       stages. The largest, not the mean: a pattern need not light every bin of the grid (a diagonal
       one lights two of the twelve of period 4), and a mean would dilute it. These frequencies carry
       4x (p = 4) to 16x (p = 8) the natural power of the Nyquist corner, so only stronger patterns show.

    Every feature is unchanged by an affine intensity map a x + b (a != 0): the value range does not
    matter. For 32x32 at scale 8: 16 rings + the corner ring + 3 Nyquist + 2 aliasing = 22 features
    (names: :func:`spectral_feature_names`).
    """
    _check_batch(x)
    x = to_unit(x) if x.dtype == torch.uint8 else x.float()
    b, (h, w) = x.shape[0], x.shape[-2:]
    n_r = min(h, w) // 2 + 1
    power = power_spectrum(x).mean(dim=1).double().reshape(b, h * w)
    idx = _ring_index(h, w).to(power.device)
    sums = power.new_zeros(b, n_r + 1).scatter_add(1, idx.expand_as(power), power)
    counts = torch.bincount(idx, minlength=n_r + 1).to(power)
    log_rings = torch.log((sums / counts.clamp(min=1)).clamp(min=_LOG_FLOOR))  # (B, n_r + 1)
    # rings 1 .. n_r - 1, and the corner ring n_r when there is one (always, for H, W >= 2)
    shape = log_rings[:, 1:n_r + 1] if (counts[n_r] > 0).item() else log_rings[:, 1:n_r]
    shape = shape - shape.mean(dim=1, keepdim=True)
    nyq, alias, group = (t.to(power.device) for t in _spectral_fd_bins(h, w, int(scale)))
    log_power = torch.log(power.clamp(min=_LOG_FLOOR))

    def contrast(bins: Tensor) -> Tensor:  # log P(bin) - log mean P(its ring)
        return log_power[:, bins] - log_rings[:, idx[bins]]

    n_groups = len(_alias_periods(h, w, int(scale)))
    aliasing = power.new_full((b, n_groups), -math.inf).scatter_reduce(
        1, group.expand(b, -1), contrast(alias), reduce="amax")
    return torch.cat([shape, contrast(nyq), aliasing], dim=1)


class SpectralFD(Metric):
    """Spectral Fréchet distance: the Fréchet distance between Gaussian fits (mean, covariance) of the
    per-image spectral shape features (:func:`log_spectral_features`) of real and generated images. Cheap
    (no Inception). Shape-only: each image's log spectrum is taken relative to its own mean, so a global
    contrast change reads as no change; what it measures is the spectral shape (blur and high-frequency
    excess: the azimuthal profile) and the peaks at the Nyquist and aliasing bins of the upsampling grid
    of factor ``scale`` (checkerboards), which the azimuthal average alone dilutes.

    ``update(x, real=True|False)``: uint8 or float images, any value range (the features ignore it); NaN,
    inf and empty batches raise ValueError. All images must share a size; each set needs >= 2 images.
    States are DDP-synced sums (feature sum, outer-product sum, count), as torchmetrics' FID keeps them.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    real_sum: Tensor
    real_outer: Tensor
    real_n: Tensor
    fake_sum: Tensor
    fake_outer: Tensor
    fake_n: Tensor

    def __init__(self, scale: int = SPECTRAL_FD_SCALE, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(scale) < 1:
            raise ValueError(f"SpectralFD: scale must be >= 1, got {scale}")
        self.scale = int(scale)
        # 0-d defaults broadcast against the first batch's features, whose length is only known then.
        for kind in ("real", "fake"):
            for name in ("sum", "outer", "n"):
                self.add_state(f"{kind}_{name}", default=torch.tensor(0.0, dtype=torch.float64),
                               dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool) -> None:
        kind = "real" if real else "fake"
        what = "real images (real=True)" if real else "generated images (real=False)"
        _check_batch(x, what)
        _check_finite(x, what, "SpectralFD")
        f = log_spectral_features(x, self.scale)
        held = getattr(self, f"{kind}_sum")
        for other in ("real_sum", "fake_sum"):
            t = getattr(self, other)
            if t.ndim and t.shape[0] != f.shape[1]:
                raise ValueError(f"SpectralFD: {f.shape[1]} spectral features per image, but earlier images gave "
                                 f"{t.shape[0]}; real and generated images must share a size")
        setattr(self, f"{kind}_sum", held + f.sum(0))
        setattr(self, f"{kind}_outer", getattr(self, f"{kind}_outer") + f.T @ f)
        setattr(self, f"{kind}_n", getattr(self, f"{kind}_n") + f.shape[0])

    def _gaussian(self, kind: str) -> tuple[Tensor, Tensor]:
        n = getattr(self, f"{kind}_n")
        if n.item() < 2:
            raise RuntimeError(f"SpectralFD: need at least 2 {kind} images, got {int(n.item())}")
        mu = getattr(self, f"{kind}_sum") / n
        cov = (getattr(self, f"{kind}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu, cov

    def compute(self) -> Tensor:
        return frechet_distance(*self._gaussian("real"), *self._gaussian("fake"))


def spectral_fd(real: Tensor, fake: Tensor, scale: int = SPECTRAL_FD_SCALE) -> float:
    """The spectral Fréchet distance of two image batches (B, C, H, W), uint8 or float (see SpectralFD)."""
    metric = SpectralFD(scale=scale).to(fake.device)
    metric.update(real.to(fake.device), real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


__all__ = [
    "AzimuthalSpectrum",
    "CheckerboardScore",
    "SpectralFD",
    "analysis_size",
    "azimuthal_spectrum",
    "check_images",
    "checkerboard_score",
    "contrast_db",
    "crop_border",
    "frechet_distance",
    "log_spectral_features",
    "mean_log_spectrum",
    "mean_power_spectrum",
    "one_over_f_images",
    "power_spectrum",
    "radial_profile",
    "spectral_fd",
    "spectral_feature_names",
    "spectral_hf_gap_db",
    "spectral_loss",
]
