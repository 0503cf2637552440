"""mIoU / pixel accuracy against an independent numpy confusion-matrix computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


def _task():
    from functools import partial

    from upsample_zoo.models.unet import UNet
    from upsample_zoo.tasks.segmentation import SegmentationTask
    from upsample_zoo.zoo import upsampler_factory

    torch.manual_seed(0)
    model = UNet(upsampler_factory("tconv"), base_channels=4, depth=2, num_classes=5)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(15):  # a few steps towards "class = the first channel's quintile": a pixel-dependent map
        x = torch.randn(4, 3, 32, 32)
        quintile = torch.bucketize(x[:, 0].contiguous(), torch.tensor([-0.84, -0.25, 0.25, 0.84]))
        loss = F.cross_entropy(model(x), quintile)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return SegmentationTask(model, optimizer=partial(torch.optim.SGD, lr=0.1), num_classes=5,
                            checkerboard_window=12).eval()


def test_evaluation_is_per_image_whatever_the_batch():
    """VOC images differ in size; pad_collate pads a batch to its largest. Each image must be scored from its
    own forward at its true size, so the confusion matrix of a padded batch equals that of the images one by
    one (the old code ran the padded batch: the small image's border saw the padding, and it took the padded
    size's path through the decoder)."""
    from upsample_zoo.data.voc import pad_collate

    rng = np.random.default_rng(0)
    pairs = [(torch.randn(3, h, w), torch.from_numpy(rng.integers(0, 5, (h, w)))) for h, w in ((21, 13), (32, 32))]
    batched, alone = _task(), _task()
    with torch.no_grad():
        batched.test_step(pad_collate(pairs), 0)
        for i, pair in enumerate(pairs):
            alone.test_step(pad_collate([pair]), i)
    cm_batched, cm_alone = batched.test_cm.compute(), alone.test_cm.compute()
    assert int((cm_alone.sum(0) > 0).sum()) >= 3  # the predictions vary: a constant map would hide the bug
    assert int(cm_batched.sum()) == 21 * 13 + 32 * 32  # every true pixel once, no padding
    assert torch.equal(cm_batched, cm_alone)
    # and the checkerboard score reads each image at its own size: both images fit the 12 px window
    assert int(batched.test_checkerboard.count) == int(alone.test_checkerboard.count) == 2 * 5  # maps


@pytest.mark.parametrize("sizes", [[(20, 17)] * 3, [(20, 17), (14, 13), (10, 30)]])
def test_checkerboard_reads_each_images_centre_window(sizes):
    """Equal sizes: the windows are one view of the padded batch (no copy); mixed sizes: stacked, and an image
    smaller than the window is skipped. Either way, image by image: rows (h - 12) // 2 .., cols (w - 12) // 2 ..."""
    from upsample_zoo.metrics.checkerboard import CheckerboardScore

    task = _task()
    logits = torch.randn(len(sizes), 5, 20, 30, generator=torch.Generator().manual_seed(3))
    task.score_checkerboard(logits, sizes)
    corners = {(20, 17): (4, 2), (14, 13): (1, 0)}  # (10, 30) is shorter than the 12 px window
    windows = [logits[i, :, top:top + 12, left:left + 12] for i, s in enumerate(sizes) if s in corners
               for top, left in [corners[s]]]
    expected = CheckerboardScore(scale=task.test_checkerboard.scale)
    expected.update(torch.stack(windows).softmax(1))
    assert task.checkerboard_skipped == len(sizes) - len(windows)
    assert int(task.test_checkerboard.count) == 5 * len(windows)
    torch.testing.assert_close(task.test_checkerboard.power_sum, expected.power_sum, rtol=1e-5, atol=0)
    torch.testing.assert_close(task.test_checkerboard.grad_sum, expected.grad_sum, rtol=1e-5, atol=0)
