"""The spectral Fréchet distance: a cheap (no Inception) distance between the spectra of real and generated
image sets, in two parts that read different things (docs/spectral_metrics.md has the definition and a
calibration on CIFAR-10):

- ``shape``: the Fréchet distance of Gaussian fits of the per-image log azimuthal spectrum relative to its
  mean, the artifact bins left out. It reads blur and high-frequency excess or deficit.
- ``artifact``: the same for the per-image log(1 + contrast) of every artifact bin against its ring: the
  Nyquist bins and the aliasing bins of every period an upsampling by ``scale`` can leave (periods 2, 4 and 8 for
  the DCGAN's three x2 stages). It reads checkerboards and other periodic patterns.

Both come from the same features (:func:`log_spectral_features`) of the same images, in one Metric."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from upsample_zoo.metrics.facts import MIN, MetricFact
from upsample_zoo.metrics.frechet import frechet_distance, gaussian_from_sums
from upsample_zoo.metrics.spectrum import cached_tensors, check_batch, power_spectrum, ring_index, to_unit

_LOG_FLOOR = 1e-10  # power floor before the log, far below 8-bit quantisation noise (~1e-6)
SPECTRAL_FD_SCALE = 8  # default upsampling factor of the artifact grid: the DCGAN's 4x4 -> 32x32
PARTS = ("shape", "artifact")


def _check_finite(x: Tensor, what: str, who: str) -> None:
    if x.is_floating_point():
        bad = int((~torch.isfinite(x)).sum().item())
        if bad:
            raise ValueError(f"{who}: {bad} of {x.numel()} values in the {what} are not finite (NaN or inf)")


def artifact_periods(scale: int) -> list[int]:
    """The periods whose bins the artifact part reads: 2 (the Nyquist bins: a pixel-level checkerboard, from
    any stride-2 step) and every p > 2 dividing ``scale``. Scale 8: [2, 4, 8]."""
    return [p for p in range(2, max(int(scale), 2) + 1) if p == 2 or int(scale) % p == 0]


@lru_cache(maxsize=32)
def artifact_bins(h: int, w: int, scale: int) -> tuple[tuple[int, int, int], ...]:
    """(period, row, col) of each artifact bin of an H x W spectrum: (i H/p, j W/p) with gcd(i, j, p) = 1
    (exactly period p, not one of its divisors') that falls on a DFT bin, one of each conjugate pair
    (k and -k hold the same power for real images). 32x32 at scale 8: 3 + 6 + 24 = 33 bins."""
    out, seen = [], set()
    for p in artifact_periods(scale):
        for i in range(p):
            for j in range(p):
                if math.gcd(math.gcd(i, j), p) != 1 or (i * h) % p or (j * w) % p:
                    continue
                r, c = i * h // p, j * w // p
                conj = ((-r) % h, (-c) % w)
                if (r, c) not in seen and conj not in seen:
                    seen.add((r, c))
                    out.append((p, r, c))
    return tuple(out)


@cached_tensors(maxsize=32)
def _layout(h: int, w: int, scale: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(flat index of each artifact bin, the ring slot of every bin with the artifact bins moved to a spare
    slot R + 1, the shape rings kept, the ring slot each artifact bin is compared against).

    Rings 1 .. R - 1 and the corner ring R (R = min(H, W) // 2 + 1, :func:`ring_index`) are kept when any
    bin is left in them once the artifact bins are out (always, unless the image is tiny). An artifact
    bin is compared against its ring without artifact bins, or against the whole ring (slot R + 2 + ring)
    when that ring holds nothing else."""
    n_r = min(h, w) // 2 + 1
    idx = ring_index(h, w)
    bins = torch.tensor([r * w + c for _, r, c in artifact_bins(h, w, scale)], dtype=torch.long)
    masked = idx.clone()
    conj = torch.tensor([((-r) % h) * w + (-c) % w for _, r, c in artifact_bins(h, w, scale)], dtype=torch.long)
    masked[bins] = n_r + 1
    masked[conj] = n_r + 1  # the conjugates of the artifact bins hold the same power
    left = torch.bincount(masked, minlength=n_r + 2)[:n_r + 1] > 0
    keep = torch.arange(1, n_r + 1)[left[1:]]
    ring = idx[bins]
    against = torch.where(left[ring], ring, n_r + 2 + ring)
    return bins, masked, keep, against


def spectral_feature_names(h: int, w: int, scale: int = SPECTRAL_FD_SCALE) -> dict[str, list[str]]:
    """Names of the :func:`log_spectral_features` columns of each part for H x W images, in order."""
    side, n_r = min(h, w), min(h, w) // 2 + 1
    keep = _layout(h, w, int(scale))[2].tolist()
    shape = [f"ring {r}/{side}" if r < n_r else "corner ring" for r in keep]
    return {"shape": shape, "artifact": [f"period {p} ({r}, {c})" for p, r, c in artifact_bins(h, w, int(scale))]}


def log_spectral_features(x: Tensor, scale: int = SPECTRAL_FD_SCALE) -> dict[str, Tensor]:
    """Per-image spectral features of each part, ``{"shape": (B, F_s), "artifact": (B, F_a)}``, float64,
    natural logs of the channel-averaged power spectrum P of :func:`power_spectrum` (mean subtracted,
    periodic Hann window); uint8 reads as [0, 1].

    - shape: log of the ring means of P (rings 1 .. min(H, W)/2 and the corner ring beyond 0.5 cycles/px,
      the artifact bins left out), minus their own mean over the rings. A global contrast change adds the
      same constant to every ring and vanishes; a blur or a high-frequency excess remains.
    - artifact: log(1 + c), c = P at an artifact bin (:func:`artifact_bins`) over the mean of P on the rest
      of its ring: one feature per bin, so that a pattern at any one bin moves its own feature, whatever
      the natural level of that bin (CIFAR-10's horizontal and vertical bins hold 1.3-1.8x their ring's
      power, the diagonal ones ~0.6x; a max over the bins of a period, the old feature, was always won by
      an axis bin and missed a diagonal period-4 pattern). The 1 + drops the long tail of log c below 0
      (a bin's power is close to an exponential variable), which is noise and no pattern, since a pattern
      only adds power: it cut the real-vs-real floor 8x on CIFAR-10 and raised every pattern's ratio to
      it. An isotropic blur moves a bin and its ring alike and leaves c as it is.

    Every feature is unchanged by an affine intensity map a x + b (a != 0): the value range does not
    matter. For 32x32 at scale 8: 17 shape features and 33 artifact features (names:
    :func:`spectral_feature_names`)."""
    check_batch(x)
    x = to_unit(x) if x.dtype == torch.uint8 else x.float()
    b, (h, w) = x.shape[0], x.shape[-2:]
    n_r = min(h, w) // 2 + 1
    bins, masked, keep, against = (t.to(x.device) for t in _layout(h, w, int(scale)))
    if not len(bins):
        raise ValueError(f"spectral FD: {h}x{w} images have no Nyquist or aliasing bin on their DFT grid at scale "
                         f"{scale}; use images whose sides are even (multiples of a period dividing the scale)")
    if not len(keep):
        raise ValueError(f"spectral FD: {h}x{w} images at scale {scale} have no spectrum ring outside the artifact "
                         f"bins; use images larger than 2 x scale a side, or a smaller scale")
    power = power_spectrum(x).mean(dim=1).double().reshape(b, h * w)
    # slots 0 .. n_r: rings without the artifact bins; n_r + 1: the artifact bins; then the whole rings
    slots = torch.cat([masked, ring_index(h, w).to(x.device) + n_r + 2])
    sums = power.new_zeros(b, 2 * n_r + 3).scatter_add(1, slots.expand(b, -1), power.repeat(1, 2))
    means = sums / torch.bincount(slots, minlength=2 * n_r + 3).clamp(min=1).to(sums)
    shape = torch.log(means[:, keep].clamp(min=_LOG_FLOOR))
    artifact = torch.log1p(power[:, bins] / means[:, against].clamp(min=_LOG_FLOOR))
    return {"shape": shape - shape.mean(dim=1, keepdim=True), "artifact": artifact}


class SpectralFD(Metric):
    """Spectral Fréchet distance in two parts: the Fréchet distance between Gaussian fits (mean, covariance)
    of the real and generated images' features of each part (:func:`log_spectral_features`). Cheap (no
    Inception) and blind to contrast and brightness. ``compute()`` returns ``{"shape": ..., "artifact":
    ...}``: ``shape`` reads the azimuthal spectrum (blur, high-frequency excess), ``artifact`` the Nyquist
    and aliasing bins of an upsampling by ``scale`` (checkerboards and other periodic patterns).

    ``update(x, real=True|False)``: uint8 or float images, any value range (the features ignore it); NaN,
    inf and empty batches raise ValueError. All images must share a size; each set needs >= 2 images.
    States are DDP-synced sums (feature sum, outer-product sum, count) of both parts' features together,
    as torchmetrics' FID keeps them.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    facts: ClassVar[dict[str, MetricFact]] = {
        "spectral_fd_shape": MetricFact(MIN, "spectral FD shape (blur)", "Fréchet distance of the log azimuthal "
                                        "spectra: how the power falls off (blur)"),
        "spectral_fd_artifact": MetricFact(MIN, "spectral FD artifact", "Fréchet distance of log(1 + P / ring "
                                           "mean) at the Nyquist and aliasing bins of the strides (checkerboards)"),
        "spectral_fd": MetricFact(MIN, "spectral FD (one number, older runs)", "before the split in two parts"),
    }

    real_sum: Tensor
    real_outer: Tensor
    real_n: Tensor
    fake_sum: Tensor
    fake_outer: Tensor
    fake_n: Tensor

    def __init__(self, scale: int = SPECTRAL_FD_SCALE, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(scale) < 1:
            raise ValueError(f"SpectralFD: scale must be >= 1, got {scale}; pass the total upsampling factor")
        self.scale = int(scale)
        self.n_shape: int | None = None  # the first n_shape columns are the shape part, known at the first batch
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
        parts = log_spectral_features(x, self.scale)
        f = torch.cat([parts["shape"], parts["artifact"]], dim=1)
        for other in ("real_sum", "fake_sum"):
            t = getattr(self, other)
            if t.ndim and t.shape[0] != f.shape[1]:
                raise ValueError(f"SpectralFD: {f.shape[1]} spectral features per image, but earlier images gave "
                                 f"{t.shape[0]}; real and generated images must share a size")
        self.n_shape = parts["shape"].shape[1]
        setattr(self, f"{kind}_sum", getattr(self, f"{kind}_sum") + f.sum(0))
        setattr(self, f"{kind}_outer", getattr(self, f"{kind}_outer") + f.T @ f)
        setattr(self, f"{kind}_n", getattr(self, f"{kind}_n") + f.shape[0])

    def _gaussian(self, kind: str) -> tuple[Tensor, Tensor]:
        n = getattr(self, f"{kind}_n")
        if n.item() < 2:
            raise RuntimeError(f"SpectralFD: need at least 2 {kind} images, got {int(n.item())}")
        return gaussian_from_sums(getattr(self, f"{kind}_sum"), getattr(self, f"{kind}_outer"), n)

    def compute(self) -> dict[str, Tensor]:
        (mu1, s1), (mu2, s2) = self._gaussian("real"), self._gaussian("fake")
        out = {}
        for part, cols in (("shape", slice(0, self.n_shape)), ("artifact", slice(self.n_shape, None))):
            out[part] = frechet_distance(mu1[cols], s1[cols, cols], mu2[cols], s2[cols, cols])
        return out


def spectral_fd(real: Tensor, fake: Tensor, scale: int = SPECTRAL_FD_SCALE) -> dict[str, float]:
    """Both parts of the spectral Fréchet distance of two image batches (B, C, H, W), uint8 or float, as
    ``{"shape": ..., "artifact": ...}`` (see SpectralFD)."""
    metric = SpectralFD(scale=scale).to(fake.device)
    metric.update(real.to(fake.device), real=True)
    metric.update(fake, real=False)
    return {k: float(v) for k, v in metric.compute().items()}


__all__ = [
    "PARTS",
    "SPECTRAL_FD_SCALE",
    "SpectralFD",
    "artifact_bins",
    "artifact_periods",
    "log_spectral_features",
    "spectral_fd",
    "spectral_feature_names",
]
