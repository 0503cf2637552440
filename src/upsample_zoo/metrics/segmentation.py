"""Dataset-level segmentation scores from a torchmetrics confusion matrix.

Protocol (the PASCAL VOC one): accumulate one confusion matrix over every evaluated pixel of the
split, ignoring void (255); IoU_c = TP / (TP + FP + FN); mIoU is the mean over classes whose union
is non-empty (classes "present" in the ground truth or the prediction); pixel accuracy = trace / sum.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from upsample_zoo.metrics.facts import MAX, MetricFact


class SegmentationConfusion(MulticlassConfusionMatrix):
    """The split's confusion matrix (counts), whose scores are :func:`scores_from_confusion`'s."""

    facts: ClassVar[dict[str, MetricFact]] = {
        "miou": MetricFact(MAX, "mIoU", "one confusion matrix over every evaluated pixel of the split, void ignored; "
                           "IoU_c = TP/(TP+FP+FN); mean over classes with a non-empty union"),
        "iou": MetricFact(MAX, "IoU", "per class, from the same confusion matrix"),
        "pixel_acc": MetricFact(MAX, "pixel acc", "trace / sum of the same confusion matrix"),
    }

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__(num_classes=num_classes, ignore_index=ignore_index, normalize=None)


def confusion_metric(num_classes: int, ignore_index: int = 255) -> SegmentationConfusion:
    return SegmentationConfusion(num_classes, ignore_index)


def scores_from_confusion(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """``cm[t, p]`` counts pixels of true class t predicted as p."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    return {
        "iou": iou,
        "miou": iou.nanmean(),
        "pixel_acc": tp.sum() / cm.sum().clamp(min=1),
    }
