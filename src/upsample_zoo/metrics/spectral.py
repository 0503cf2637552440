"""The checkerboard score: aliasing-peak contrast in the power spectrum, batched with torch.fft.

Definition (issue 5). For a batch (B, C, H, W) made by a model of total upsampling factor s:

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache, wraps
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric

MIN_SIDE = 12  # the 9x9 neighbourhood of a Nyquist bin must not wrap onto itself
MIN_GRID_SPACING = 8
HF_BAND = (0.375, 0.5)  # cycles/px
LF_BAND = (0.05, 0.2)
_EPS = 1e-20


# ---- inputs ---------------------------------------------------------------------------------------

def to_unit(x: Tensor) -> Tensor:
    """uint8 -> float in [0, 1]; floating tensors pass through as float32 (assumed in [0, 1])."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1] or uint8, got {x.dtype}")
    return x.float()


def _check_batch(x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (B, C, H, W), got {tuple(x.shape)}")


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


def batch_power_sums(x: Tensor, scale: int) -> tuple[Tensor, Tensor, int]:
    """Power summed over batch and channels for the image and its gradient-energy map, and the count."""
    _check_batch(x)
    x = to_unit(x)
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
    return 10 * torch.log10((peak + _EPS) / (bg + _EPS))


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
    return torch.fft.fftshift(10 * torch.log10(mean_power_spectrum(x) + _EPS))


def spectral_hf_gap_db(power_gen: Tensor, power_ref: Tensor) -> float:
    """Mean over 0.375..0.5 cycles/px of 10 log10(S_gen / S_ref) minus the same over 0.05..0.2."""
    def band_db(power: Tensor) -> tuple[float, float]:
        f, s = radial_profile(power)
        db = 10 * torch.log10(s + _EPS)
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

def scores_from_power(power: Tensor, grad_power: Tensor, scale: int) -> dict[str, float]:
    """All single-set outputs from batch-mean spectra of the image and of its gradient-energy map."""
    h, w = power.shape[-2:]
    nyq = grid_bins(h, w, 2)
    peak, bg = peak_and_background(power, nyq)
    cb = 10 * torch.log10((peak + _EPS) / (bg + _EPS))
    # Excess power over the 3x3 block is (h w / 9) A^2 for a pattern of RMS amplitude A (Parseval).
    amp = torch.sqrt((peak - bg).clamp(min=0).sum() * 9 / (h * w)) * 255
    p = grid_period(h, w, scale)
    return {
        "checkerboard_db": cb.max().item(),
        "checkerboard_grid_max_db": contrast_db(power, grid_bins(h, w, p)).max().item(),
        "checkerboard_grid_period": float(p),
        "checkerboard_amp": amp.item(),
        "blockiness_db": contrast_db(grad_power, nyq).max().item(),
    }


class CheckerboardScore(Metric):
    """The checkerboard score as a torchmetrics Metric (DDP-synced running spectra).

    ``update(x)`` adds generated/predicted images; ``update(x, real=True)`` adds reference images, which
    adds ``checkerboard_db_ref`` and ``spectral_hf_gap_db`` to ``compute()``. All images of one kind
    must share a size. ``compute()`` returns a dict of 0-d float tensors.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    power_sum: Tensor
    grad_sum: Tensor
    count: Tensor
    ref_power_sum: Tensor
    ref_count: Tensor

    def __init__(self, scale: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(scale) < 1:
            raise ValueError(f"CheckerboardScore: scale must be >= 1, got {scale}")
        self.scale = int(scale)
        # 0-d defaults broadcast against the first (H', W') spectrum, whose size is only known then.
        for name in ("power_sum", "grad_sum", "count", "ref_power_sum", "ref_count"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool = False) -> None:
        power, grad, n = batch_power_sums(x, self.scale)
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
            out["checkerboard_db_ref"] = contrast_db(ref, grid_bins(h, w, 2)).max().item()
            out["spectral_hf_gap_db"] = spectral_hf_gap_db(self.mean_power(), ref)
        return {k: torch.tensor(v) for k, v in out.items()}


def checkerboard_score(x: Tensor, scale: int = 2, ref: Tensor | None = None) -> dict[str, float]:
    """The checkerboard score of one batch (B, C, H, W), float in [0, 1] or uint8; see the module doc."""
    metric = CheckerboardScore(scale=scale).to(x.device)
    metric.update(x)
    if ref is not None:
        metric.update(ref.to(x.device), real=True)
    return {k: float(v) for k, v in metric.compute().items()}


# ---- figures --------------------------------------------------------------------------------------

def save_spectrum_figure(power2d: Tensor, path: str | Path, title: str = "mean log-power spectrum") -> Path:
    """The 2-D mean power spectrum (linear, unshifted, e.g. ``metric.mean_power()``) as fftshifted dB."""
    import matplotlib.pyplot as plt

    from upsample_zoo.figures import save_figure

    db = torch.fft.fftshift(10 * torch.log10(power2d.detach().double().cpu() + _EPS)).numpy()
    h, w = db.shape
    fy, fx = (torch.fft.fftshift(torch.fft.fftfreq(n, dtype=torch.float64)).tolist() for n in (h, w))
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(db, cmap="magma", origin="lower", extent=(
        fx[0] - 0.5 / w, fx[-1] + 0.5 / w, fy[0] - 0.5 / h, fy[-1] + 0.5 / h))
    ax.set_xlabel("f_x (cycles/px)")
    ax.set_ylabel("f_y (cycles/px)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="dB")
    return save_figure(fig, path)


def save_azimuthal_figure(curves: Mapping[str, tuple[Tensor, Tensor]], path: str | Path,
                          title: str = "azimuthal power spectrum") -> Path:
    """1-D spectra {label: (freqs, power)} on one plot, power in dB."""
    import matplotlib.pyplot as plt

    from upsample_zoo.figures import save_figure

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, (f, s) in curves.items():
        f, s = torch.as_tensor(f).detach().cpu(), torch.as_tensor(s).detach().double().cpu()
        ax.plot(f[1:].numpy(), (10 * torch.log10(s[1:] + _EPS)).numpy(), label=label, lw=1.2)
    for edge in (*LF_BAND, HF_BAND[0]):
        ax.axvline(edge, color="0.8", lw=0.8, ls="--")
    ax.set_xlabel("radius (cycles/px)")
    ax.set_ylabel("power (dB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


__all__ = [
    "AzimuthalSpectrum",
    "CheckerboardScore",
    "analysis_size",
    "azimuthal_spectrum",
    "checkerboard_score",
    "contrast_db",
    "crop_border",
    "mean_log_spectrum",
    "mean_power_spectrum",
    "one_over_f_images",
    "power_spectrum",
    "radial_profile",
    "save_azimuthal_figure",
    "save_spectrum_figure",
    "spectral_hf_gap_db",
    "spectral_loss",
]


# ---- spectral Fréchet distance (issue 9) ----------------------------------------------------------

_LOG_FLOOR = 1e-10  # power floor before the log, far below 8-bit quantisation noise (~1e-6)


def log_spectral_features(x: Tensor) -> Tensor:
    """Per-image log azimuthal spectrum (B, R) in float64: rings 1 .. min(H, W)/2 of
    :func:`azimuthal_spectrum` (DC dropped: the mean is subtracted), plus the corner ring beyond 0.5
    cycles/px, where the diagonal Nyquist bin (0.5, 0.5) of a (-1)^(x+y) checkerboard lies.

    Natural log of the channel-averaged power; uint8 images read as [0, 1], float ones as they are.
    """
    _check_batch(x)
    x = to_unit(x) if x.dtype == torch.uint8 else x.float()
    h, w = x.shape[-2:]
    n_r = min(h, w) // 2 + 1
    power = power_spectrum(x).mean(dim=1).double().reshape(x.shape[0], h * w)
    idx = _ring_index(h, w).to(power.device)
    sums = power.new_zeros(x.shape[0], n_r + 1).scatter_add(1, idx.expand_as(power), power)
    counts = torch.bincount(idx, minlength=n_r + 1).to(power)
    rings = sums / counts
    if (counts[n_r] == 0).item():  # no corner ring (cannot happen for H, W >= 2; kept for safety)
        rings = rings[:, :n_r]
    return torch.log(rings[:, 1:].clamp(min=_LOG_FLOOR))


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), in float64.

    Tr (S1 S2)^1/2 = Tr (S1^1/2 S2 S1^1/2)^1/2 (same eigenvalues), computed with symmetric eigensolvers,
    so it is stable for the rank-deficient covariances of small sample sets. Clamped at 0.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    diff = mu1 - mu2
    evals, evecs = torch.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    m = root1 @ sigma2 @ root1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return (diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean).clamp(min=0)


class SpectralFD(Metric):
    """Spectral Fréchet distance: the Fréchet distance between Gaussian fits (mean, covariance) of the
    per-image log azimuthal spectra (:func:`log_spectral_features`) of real and generated images. Cheap (no
    Inception), and sensitive to upsampling artifacts, which live at the high frequencies.

    ``update(x, real=True|False)``; all images must share a size; each set needs >= 2 images. States are
    DDP-synced sums (feature sum, outer-product sum, count), as torchmetrics' FID keeps them.
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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # 0-d defaults broadcast against the first batch's features, whose length is only known then.
        for kind in ("real", "fake"):
            for name in ("sum", "outer", "n"):
                self.add_state(f"{kind}_{name}", default=torch.tensor(0.0, dtype=torch.float64),
                               dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool) -> None:
        f = log_spectral_features(x)
        kind = "real" if real else "fake"
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


def spectral_fd(real: Tensor, fake: Tensor) -> float:
    """The spectral Fréchet distance of two image batches (B, C, H, W), uint8 or float in [0, 1]."""
    metric = SpectralFD().to(fake.device)
    metric.update(real.to(fake.device), real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


__all__ += ["SpectralFD", "frechet_distance", "log_spectral_features", "spectral_fd"]
