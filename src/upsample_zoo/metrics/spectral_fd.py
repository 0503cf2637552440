"""The spectral Fréchet distance: a cheap (no Inception) distance between the spectra of real and generated
image sets, the Fréchet distance of Gaussian fits of per-image spectral shape features
(:func:`log_spectral_features`: the log azimuthal spectrum relative to its mean, and the log contrast of
the Nyquist and aliasing bins of the upsampling grid against their rings)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from upsample_zoo.metrics.frechet import frechet_distance, gaussian_from_sums
from upsample_zoo.metrics.spectrum import (
    cached_tensors,
    check_batch,
    power_spectrum,
    ring_index,
    ring_means,
    to_unit,
)

_LOG_FLOOR = 1e-10  # power floor before the log, far below 8-bit quantisation noise (~1e-6)
SPECTRAL_FD_SCALE = 8  # default upsampling factor of the aliasing grid: the DCGAN's 4x4 -> 32x32


def _check_finite(x: Tensor, what: str, who: str) -> None:
    if x.is_floating_point():
        bad = int((~torch.isfinite(x)).sum().item())
        if bad:
            raise ValueError(f"{who}: {bad} of {x.numel()} values in the {what} are not finite (NaN or inf)")


def _alias_periods(h: int, w: int, scale: int) -> list[int]:
    """Periods p > 2 of an upsampling by ``scale`` (p divides it) whose frequencies fall on DFT bins."""
    return [p for p in range(3, int(scale) + 1) if scale % p == 0 and h % p == 0 and w % p == 0]


def _nyquist_bins(h: int, w: int) -> list[tuple[int, int]]:
    """The bins (H/2, 0), (0, W/2), (H/2, W/2) that exist: an odd side has no Nyquist frequency."""
    return [(r, c) for r, c in ((h // 2, 0), (0, w // 2), (h // 2, w // 2))
            if (r == 0 or h % 2 == 0) and (c == 0 or w % 2 == 0)]


@cached_tensors(maxsize=32)
def _spectral_fd_bins(h: int, w: int, scale: int) -> tuple[Tensor, Tensor, Tensor]:
    """Flat indices (row * W + col) of the Nyquist bins, of the aliasing bins of periods > 2, and each
    aliasing bin's group (0 for the first period, ...). A bin of period p is (i H/p, j W/p) with
    gcd(i, j, p) = 1: exactly period p, not one of its divisors' (those have their own group)."""
    nyq = _nyquist_bins(h, w)
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


def _has_corner_ring(h: int, w: int) -> bool:
    """Whether any DFT bin lies beyond 0.5 cycles/px (the corner ring of :func:`ring_means`)."""
    return bool((ring_index(h, w) == min(h, w) // 2 + 1).any())


def spectral_feature_names(h: int, w: int, scale: int = SPECTRAL_FD_SCALE) -> list[str]:
    """Names of the :func:`log_spectral_features` columns for H x W images, in order."""
    side = min(h, w)
    n_r = side // 2 + 1
    names = [f"ring {r}/{side}" for r in range(1, n_r)] + (["corner ring"] if _has_corner_ring(h, w) else [])
    names += [f"nyquist ({r}, {c})" for r, c in _nyquist_bins(h, w)]
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
    check_batch(x)
    x = to_unit(x) if x.dtype == torch.uint8 else x.float()
    b, (h, w) = x.shape[0], x.shape[-2:]
    n_r = min(h, w) // 2 + 1
    power = power_spectrum(x).mean(dim=1).double()
    log_rings = torch.log(ring_means(power).clamp(min=_LOG_FLOOR))  # (B, n_r + 1)
    power = power.reshape(b, h * w)
    idx = ring_index(h, w).to(power.device)
    # rings 1 .. n_r - 1, and the corner ring n_r when there is one (always, for H, W >= 2)
    shape = log_rings[:, 1:n_r + 1] if _has_corner_ring(h, w) else log_rings[:, 1:n_r]
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
        check_batch(x, what)
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
        return gaussian_from_sums(getattr(self, f"{kind}_sum"), getattr(self, f"{kind}_outer"), n)

    def compute(self) -> Tensor:
        return frechet_distance(*self._gaussian("real"), *self._gaussian("fake"))


def spectral_fd(real: Tensor, fake: Tensor, scale: int = SPECTRAL_FD_SCALE) -> float:
    """The spectral Fréchet distance of two image batches (B, C, H, W), uint8 or float (see SpectralFD)."""
    metric = SpectralFD(scale=scale).to(fake.device)
    metric.update(real.to(fake.device), real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


__all__ = [
    "SPECTRAL_FD_SCALE",
    "SpectralFD",
    "log_spectral_features",
    "spectral_fd",
    "spectral_feature_names",
]
