"""mIoU / pixel accuracy against an independent numpy confusion-matrix computation."""

from __future__ import annotations

import numpy as np
import torch

from upsample_zoo.metrics.segmentation import confusion_metric, scores_from_confusion


def numpy_scores(preds: list[np.ndarray], targets: list[np.ndarray], n: int, ignore: int = 255):
    cm = np.zeros((n, n), np.int64)
    for p, t in zip(preds, targets):
        keep = t != ignore
        np.add.at(cm, (t[keep], p[keep]), 1)
    ious = []
    for c in range(n):
        tp = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - tp
        if union > 0:
            ious.append(tp / union)
    return float(np.mean(ious)), float(np.trace(cm) / cm.sum())


def test_miou_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    n = 6
    preds, targets = [], []
    metric = confusion_metric(n)
    for _ in range(4):
        t = rng.integers(0, n - 1, (3, 17, 23))  # class 5 never in the targets...
        p = np.where(rng.random(t.shape) < 0.6, t, rng.integers(0, n, t.shape))  # ...but predicted
        t[rng.random(t.shape) < 0.1] = 255
        preds.append(p)
        targets.append(t)
        metric.update(torch.from_numpy(p), torch.from_numpy(t))
    scores = scores_from_confusion(metric.compute())
    miou, acc = numpy_scores(preds, targets, n)
    assert abs(float(scores["miou"]) - miou) < 1e-9
    assert abs(float(scores["pixel_acc"]) - acc) < 1e-9


def test_hand_case_absent_class_is_not_averaged_and_void_ignored():
    # 2x3 target with a void pixel; class 2 neither present nor predicted
    t = torch.tensor([[0, 0, 1], [1, 1, 255]])
    p = torch.tensor([[0, 1, 1], [1, 0, 0]])
    m = confusion_metric(3)
    m.update(p, t)
    s = scores_from_confusion(m.compute())
    # class 0: tp=1, fp=1 (pixel (1,1)), fn=1 (pixel (0,1)) -> 1/3; class 1: tp=2, fp=1, fn=1 -> 2/4
    assert torch.isclose(s["iou"][0], torch.tensor(1 / 3, dtype=torch.float64))
    assert torch.isclose(s["iou"][1], torch.tensor(0.5, dtype=torch.float64))
    assert torch.isnan(s["iou"][2])
    assert abs(float(s["miou"]) - (1 / 3 + 0.5) / 2) < 1e-12
    assert abs(float(s["pixel_acc"]) - 3 / 5) < 1e-12
