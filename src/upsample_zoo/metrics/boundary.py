"""Segmentation metrics that look where upsamplers differ: at object boundaries and on the stride grid.

**Boundary IoU** (Cheng et al., CVPR 2021). For a class c with ground-truth mask G and predicted mask P,
G_d is the set of pixels of G within distance d of G's contour (the image border counts as contour), i.e.
``G - erode(G, d)`` with a (2d+1) x (2d+1) square, as in the official ``mask_to_boundary``; d = 2% of the
image diagonal, rounded, at least 1. Boundary IoU_c = |G_d n P_d| / |G_d u P_d|, with intersection and
union summed over the whole dataset per class, void (255) pixels excluded; the score is the mean over
classes with a non-empty union (the mIoU protocol). Erosion is max-pooling (separable, CPU or GPU).
The border and d are those of each image's true size: a void-padded batch (``pad_collate``) must pass the
sizes it returns; the metric never guesses the extent from void pixels, since a genuine image may end in
void rows or columns (VOC's void bands), and cropping those would move the border and change d.

**Stride-grid error map.** The error rate of the valid pixels binned by (y mod p, x mod p), p the decoder's
total stride (2^depth for the U-Net). A decoder that upsamples unevenly (a checkerboarding tconv) makes
more mistakes at some sub-pixel phases than at others; a smooth one (bilinear) does not.
``grid_error_contrast`` = max bin rate / min bin rate (1 = flat). A bin without errors counts half an
error, so the contrast stays finite; no errors at all gives 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from upsample_zoo.constants import VOID
from upsample_zoo.metrics.facts import MAX, MIN, MetricFact


def boundary_dilation(h: int, w: int, ratio: float = 0.02) -> int:
    """d = round(ratio * image diagonal), at least 1 (the official mask_to_boundary)."""
    return max(1, int(round(ratio * math.sqrt(h * h + w * w))))


def boundary_band(label: Tensor, dilation: int) -> Tensor:
    """Pixels of a label map (..., H, W) with another label, or the image border, within Chebyshev distance
    ``dilation``: for every class c at once, ``band & (label == c)`` is c's inner boundary G_d of width d.

    A pixel lies in its own window, so "some other label within d" is "window max != window min". The
    border is a sentinel -1 (below every label). Separable max-pooling, in float32 (labels <= 255 are exact).
    """
    if dilation < 1:
        raise ValueError(f"boundary_band: dilation must be >= 1, got {dilation}")
    shape = label.shape
    x = label.reshape(-1, 1, *shape[-2:]).float()
    x = F.pad(x, (dilation,) * 4, value=-1.0)
    k = 2 * dilation + 1

    def maxpool(t: Tensor) -> Tensor:
        return F.max_pool2d(F.max_pool2d(t, (k, 1), stride=1), (1, k), stride=1)

    return (maxpool(x) != -maxpool(-x)).reshape(shape)


def _as_labels(preds: Tensor) -> Tensor:
    return preds.argmax(dim=1) if preds.ndim == 4 else preds


class BoundaryIoU(Metric):
    """Boundary IoU for semantic segmentation, accumulated per class over the dataset (see module doc).

    ``update(preds, target)``: preds (N, H, W) labels or (N, K, H, W) logits, target (N, H, W) with void
    ``ignore_index``. ``sizes`` (N, 2) gives each image's true (h, w) inside a padded batch (top-left
    corner; ``pad_collate`` returns it): the image is cropped to it, and its border and d (unless
    ``dilation`` fixes d) come from that size. Without ``sizes`` every image is taken at the full (H, W) of
    the target, i.e. unpadded; trailing void rows or columns are never cropped (they may be the image's own).
    ``compute()`` is the mean over classes with a non-empty union; :meth:`per_class` has them all (NaN
    where the union is empty).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    facts: ClassVar[dict[str, MetricFact]] = {
        "boundary_iou": MetricFact(MAX, "boundary IoU", "Cheng et al. 2021: IoU of the inner boundary bands of "
                                   "width max(1, round(0.02 x diagonal)), summed per class over the split"),
    }

    intersection: Tensor
    union: Tensor

    def __init__(self, num_classes: int, ignore_index: int = VOID, dilation_ratio: float = 0.02,
                 dilation: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(num_classes) <= 0:
            raise ValueError(f"BoundaryIoU: num_classes must be positive, got {num_classes}")
        if dilation is not None and int(dilation) < 1:
            raise ValueError(f"BoundaryIoU: dilation must be >= 1, got {dilation}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.dilation_ratio = float(dilation_ratio)
        self.dilation = None if dilation is None else int(dilation)
        self.add_state("intersection", default=torch.zeros(self.num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("union", default=torch.zeros(self.num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor,
               sizes: Tensor | Sequence[tuple[int, int]] | None = None) -> None:
        preds = _as_labels(preds)
        if preds.shape != target.shape or target.ndim != 3:
            raise ValueError(f"BoundaryIoU: preds {tuple(preds.shape)} and target {tuple(target.shape)} must both "
                             "be (N, H, W) (or preds (N, K, H, W) logits)")
        n, full_h, full_w = target.shape
        if sizes is None:
            hw = [(full_h, full_w)] * n
        else:
            hw = [(int(h), int(w)) for h, w in (sizes.tolist() if isinstance(sizes, Tensor) else sizes)]
            if len(hw) != n or any(not (0 <= h <= full_h and 0 <= w <= full_w) for h, w in hw):
                raise ValueError(f"BoundaryIoU: sizes {hw} must give one (h, w) per image, each within the "
                                 f"target's ({full_h}, {full_w})")
        k = self.num_classes
        for i, (h, w) in enumerate(hw):
            if h == 0 or w == 0:
                continue
            t, p = target[i, :h, :w].long(), preds[i, :h, :w].long()
            d = self.dilation or boundary_dilation(h, w, self.dilation_ratio)
            valid = t != self.ignore_index
            bad = valid & ((t < 0) | (t >= k))
            if bad.any():
                raise ValueError(f"BoundaryIoU: target labels outside [0, {k}) other than {self.ignore_index}: "
                                 f"{t[bad].unique().tolist()[:5]}")
            gb = boundary_band(t, d) & valid
            pb = boundary_band(p, d) & valid & (p >= 0) & (p < k)
            inter = torch.bincount(t[gb & pb & (t == p)], minlength=k)
            union = torch.bincount(t[gb], minlength=k) + torch.bincount(p[pb], minlength=k) - inter
            self.intersection += inter.to(self.intersection)
            self.union += union.to(self.union)

    def per_class(self) -> Tensor:
        u = self.union
        return torch.where(u > 0, self.intersection / u.clamp(min=1), torch.full_like(u, float("nan")))

    def compute(self) -> Tensor:
        iou = self.per_class()
        return iou.nanmean() if torch.isfinite(iou).any() else torch.tensor(float("nan"), dtype=iou.dtype)


# ---- stride-grid error map -------------------------------------------------------------------------

def grid_error_contrast(errors: Tensor, counts: Tensor) -> Tensor:
    """max / min of the per-bin error rates over bins with pixels; a bin without errors counts half an
    error (rate 0.5 / n) so that the ratio stays finite; 1 when there are no errors at all."""
    errors, counts = errors.double().flatten(), counts.double().flatten()
    keep = counts > 0
    if not keep.any() or errors.sum() == 0:
        return torch.tensor(1.0, dtype=torch.float64)
    e, n = errors[keep], counts[keep]
    rate = torch.maximum(e, torch.full_like(e, 0.5)) / n
    return rate.max() / rate.min()


class GridErrorMap(Metric):
    """Segmentation error rate binned by (y mod stride, x mod stride), void excluded; see the module doc.

    ``compute()`` returns ``grid_error_contrast``; :meth:`rates` returns the (stride, stride) rate map
    (NaN for bins without pixels). Bins are phases from the image's top-left pixel, where the encoder's
    pooling grid starts.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    facts: ClassVar[dict[str, MetricFact]] = {
        "grid_error_contrast": MetricFact(MIN, "grid error contrast", "max / min error rate over the (y mod "
                                          "stride, x mod stride) bins of the decoder's total stride"),
    }

    errors: Tensor
    counts: Tensor

    def __init__(self, stride: int, ignore_index: int = VOID, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(stride) < 1:
            raise ValueError(f"GridErrorMap: stride must be >= 1, got {stride}")
        self.stride = int(stride)
        self.ignore_index = int(ignore_index)
        self.add_state("errors", default=torch.zeros(self.stride**2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(self.stride**2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        preds = _as_labels(preds)
        if preds.shape != target.shape:
            raise ValueError(f"GridErrorMap: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        h, w = target.shape[-2:]
        s = self.stride
        ys = torch.arange(h, device=target.device) % s
        xs = torch.arange(w, device=target.device) % s
        idx = (ys[:, None] * s + xs[None, :]).expand_as(target)
        valid = target != self.ignore_index
        wrong = valid & (preds != target)
        self.counts += torch.bincount(idx[valid], minlength=s * s).to(self.counts)
        self.errors += torch.bincount(idx[wrong], minlength=s * s).to(self.errors)

    def rates(self) -> Tensor:
        r = self.errors / self.counts.clamp(min=1)
        return torch.where(self.counts > 0, r, torch.full_like(r, float("nan"))).view(self.stride, self.stride)

    def compute(self) -> Tensor:
        return grid_error_contrast(self.errors, self.counts)


__all__ = [
    "BoundaryIoU",
    "GridErrorMap",
    "boundary_band",
    "boundary_dilation",
    "grid_error_contrast",
]
