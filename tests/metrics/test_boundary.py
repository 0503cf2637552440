"""Boundary IoU (Cheng et al. 2021) and the stride-grid error map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from upsample_zoo.data.voc import pad_collate
from upsample_zoo.figures import save_grid_error_figure
from upsample_zoo.metrics.boundary import (
    BoundaryIoU,
    GridErrorMap,
    boundary_band,
    boundary_dilation,
    grid_error_contrast,
)

# ---- Boundary IoU --------------------------------------------------------------------------------


def _hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """6x6 (d = max(1, round(0.02 * 8.49)) = 1): a 4x4 square of class 1 at rows 1-4, cols 1-4, and the
    prediction shifted one column right (cols 2-5)."""
    gt = torch.zeros(6, 6, dtype=torch.long)
    gt[1:5, 1:5] = 1
    pred = torch.zeros(6, 6, dtype=torch.long)
    pred[1:5, 2:6] = 1
    return gt, pred


def test_dilation_is_two_percent_of_the_diagonal():
    assert boundary_dilation(6, 6) == 1  # 0.17 -> at least 1
    assert boundary_dilation(64, 64) == 2  # 1.81
    assert boundary_dilation(375, 500) == 12  # 12.5 rounds half to even, like the official round()
    assert boundary_dilation(120, 160) == 4


def test_boundary_iou_hand_computed():
    """Class 1: both bands are the 12-px rings of their squares; they share rows 1 and 4 at cols 2-4 (6 px):
    6 / (12 + 12 - 6) = 1/3. Class 0: every background pixel is in its band (each touches the border or the
    square): G_d = the 20-px image border ring, P_d = rows 0, 5 and cols 0-1 (20 px); shared: rows 0, 5 and
    col 0 (16 px): 16 / 24 = 2/3. Mean 1/2."""
    gt, pred = _hand_case()
    m = BoundaryIoU(num_classes=2)
    m.update(pred[None], gt[None])
    assert torch.allclose(m.per_class(), torch.tensor([2 / 3, 1 / 3], dtype=torch.float64))
    assert m.compute().item() == pytest.approx(0.5)
    assert m.intersection.tolist() == [16, 6] and m.union.tolist() == [24, 18]


def test_boundary_iou_ignores_void_and_absent_classes():
    gt, pred = _hand_case()
    # Void at (1, 2), a shared class-1 band pixel: it leaves both bands (-1 each, -1 shared), and void is
    # "not class 1", so G's interior (2, 2) and (2, 3) join G's band; (2, 2) is in P's band too (+1 shared).
    # Class 1: intersection 6 - 1 + 1 = 6, union (12 - 1 + 2) + (12 - 1) - 6 = 18.
    gt[1, 2] = 255
    m = BoundaryIoU(num_classes=4, dilation=1)
    m.update(pred[None], gt[None], sizes=[(6, 6)])
    iou = m.per_class()
    assert m.intersection[1].item() == 6 and m.union[1].item() == 18
    assert torch.isnan(iou[2:]).all()  # empty union: not averaged
    assert m.compute().item() == pytest.approx((iou[0].item() + 1 / 3) / 2)


def test_perfect_prediction_scores_one_and_logits_are_accepted():
    gt, _ = _hand_case()
    logits = torch.nn.functional.one_hot(gt, 3).permute(2, 0, 1).float()[None]
    m = BoundaryIoU(num_classes=3)
    m.update(logits, gt[None])
    assert m.compute().item() == 1.0


def _official_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """The official mask_to_boundary: pad 1 px of 0, erode d times with a 3x3 square, subtract."""
    padded = np.pad(mask, 1)
    eroded = ndimage.binary_erosion(padded, np.ones((3, 3)), iterations=d, border_value=1)[1:-1, 1:-1]
    return mask & ~eroded


def test_matches_the_official_erosion_on_random_maps():
    rng = np.random.default_rng(0)
    k, n = 4, 3
    gts, preds = [], []
    for _ in range(n):  # blobby label maps: smoothed noise, thresholded into k classes
        for store in (gts, preds):
            f = ndimage.gaussian_filter(rng.standard_normal((37, 53)), 3)
            store.append(np.digitize(f, np.quantile(f, [0.25, 0.5, 0.75])))
    gt, pred = np.stack(gts), np.stack(preds)
    gt[0, :3] = 255  # void
    inter, union = _reference_counts(gt, pred, k)
    m = BoundaryIoU(num_classes=k)
    m.update(torch.from_numpy(pred), torch.from_numpy(gt), sizes=[(37, 53)] * n)
    assert m.intersection.numpy().tolist() == inter.tolist()
    assert m.union.numpy().tolist() == union.tolist()
    assert m.compute().item() == pytest.approx(np.mean(inter / union))


def test_void_padding_is_undone():
    """pad_collate pads bottom/right with void: with the true sizes, the padded batch scores as the
    unpadded images."""
    gt, pred = _hand_case()
    a = BoundaryIoU(num_classes=2)
    a.update(pred[None], gt[None])
    gt_pad = torch.full((1, 9, 11), 255)
    gt_pad[0, :6, :6] = gt
    pred_pad = torch.ones(1, 9, 11, dtype=torch.long)  # the prediction in the padding is arbitrary
    pred_pad[0, :6, :6] = pred
    b = BoundaryIoU(num_classes=2)
    b.update(pred_pad, gt_pad, sizes=torch.tensor([[6, 6]]))
    assert torch.equal(a.intersection, b.intersection) and torch.equal(a.union, b.union)


def _blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A blobby 4-class label map: smoothed noise, thresholded at its quartiles."""
    f = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3)
    return np.digitize(f, np.quantile(f, [0.25, 0.5, 0.75]))


def _reference_counts(gts, preds, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cheng et al. 2021, independently of the module: each image at its own full size, d = round(2% of
    its diagonal) (at least 1), the official erosion (image border = contour), void excluded, per-class
    intersection and union summed over the images."""
    inter, union = np.zeros(k), np.zeros(k)
    for g, p in zip(gts, preds):
        d = max(1, int(round(0.02 * float(np.hypot(*g.shape)))))
        valid = g != 255
        for c in range(k):
            gb = _official_boundary(g == c, d) & valid
            pb = _official_boundary(p == c, d) & valid
            inter[c] += (gb & pb).sum()
            union[c] += (gb | pb).sum()
    return inter, union


def _trailing_void_case() -> tuple[np.ndarray, np.ndarray]:
    """A genuine 50x58 image whose last 3 rows and last 2 columns are void (VOC's void bands), not padding.
    Its d is round(0.02 * 76.6) = 2; cropped to the non-void 47x56 it would be round(0.02 * 73.1) = 1, and
    the border would move onto the void band."""
    rng = np.random.default_rng(1)
    gt, pred = _blobs(rng, 50, 58), _blobs(rng, 50, 58)
    gt[-3:] = 255
    gt[:, -2:] = 255
    return gt, pred


def test_trailing_void_of_a_genuine_image_is_not_cropped():
    gt, pred = _trailing_void_case()
    inter, union = _reference_counts([gt], [pred], 4)
    m = BoundaryIoU(num_classes=4)
    m.update(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None])
    assert m.intersection.numpy().tolist() == inter.tolist()
    assert m.union.numpy().tolist() == union.tolist()
    assert m.per_class().numpy() == pytest.approx(inter / union)


def test_padded_batch_with_sizes_scores_as_each_image_alone():
    """Two images of different sizes (one with its own trailing void) through pad_collate: with the sizes
    it returns, the batch gives the per-class counts of the images scored unpadded, one by one."""
    rng = np.random.default_rng(2)
    gt_a, pred_a = _trailing_void_case()
    gt_b, pred_b = _blobs(rng, 41, 67), _blobs(rng, 41, 67)
    gts, preds = [gt_a, gt_b], [pred_a, pred_b]
    _, y, sizes = pad_collate([(torch.zeros(3, *g.shape), torch.from_numpy(g)) for g in gts])
    assert sizes.tolist() == [[50, 58], [41, 67]]
    pred_pad = torch.from_numpy(rng.integers(0, 4, y.shape))  # the prediction in the padding is arbitrary
    for i, p in enumerate(preds):
        pred_pad[i, : p.shape[0], : p.shape[1]] = torch.from_numpy(p)
    batch = BoundaryIoU(num_classes=4)
    batch.update(pred_pad, y, sizes=sizes)
    alone = BoundaryIoU(num_classes=4)
    for g, p in zip(gts, preds):
        alone.update(torch.from_numpy(p)[None], torch.from_numpy(g)[None])
    assert torch.equal(batch.intersection, alone.intersection) and torch.equal(batch.union, alone.union)
    inter, union = _reference_counts(gts, preds, 4)
    assert batch.intersection.numpy().tolist() == inter.tolist()
    assert batch.union.numpy().tolist() == union.tolist()


def test_sizes_must_fit_the_batch():
    gt, pred = _hand_case()
    m = BoundaryIoU(num_classes=2)
    with pytest.raises(ValueError, match="sizes"):
        m.update(pred[None], gt[None], sizes=[(7, 6)])
    with pytest.raises(ValueError, match="sizes"):
        m.update(pred[None], gt[None], sizes=[(6, 6), (6, 6)])


def test_boundary_band_is_width_d():
    lab = torch.zeros(1, 20, 20, dtype=torch.long)
    lab[0, 5:15, 5:15] = 1
    band = boundary_band(lab, 2)
    assert band[0, 5:15, 5:15].sum() == 100 - 36  # the 10x10 square minus its eroded 6x6
    assert band[0, 10, 10].item() is False and band[0, 0, 10].item() is True  # centre no, border yes


# ---- stride-grid error map -----------------------------------------------------------------------


def _labels(n=8, h=128, w=128, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (n, h, w), generator=g), g


def _corrupt(target: torch.Tensor, mask: torch.Tensor, k: int = 5) -> torch.Tensor:
    pred = target.clone()
    pred[mask] = (target[mask] + 1) % k
    return pred


def test_period_2_errors_give_a_large_contrast():
    target, g = _labels()
    h, w = target.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    phase = ((ys % 2 == 0) & (xs % 2 == 0)).expand_as(target)  # one sub-pixel phase of four
    noise = torch.rand(target.shape, generator=g)
    pred = _corrupt(target, (noise < 0.05) | (phase & (noise < 0.4)))
    m = GridErrorMap(stride=4)
    m.update(pred, target)
    rates = m.rates()
    assert rates.shape == (4, 4)
    assert rates[::2, ::2].min() > 0.35 and rates[1::2].max() < 0.07
    assert m.compute().item() > 5


def test_uniform_errors_give_contrast_near_one():
    target, g = _labels()
    pred = _corrupt(target, torch.rand(target.shape, generator=g) < 0.2)
    target[:, :10] = 255  # void is excluded
    pred[:, :10] = 0
    m = GridErrorMap(stride=4)
    m.update(pred, target)
    assert 1.0 <= m.compute().item() < 1.15
    assert m.counts.sum().item() == 8 * 118 * 128


def test_grid_error_contrast_guards():
    assert grid_error_contrast(torch.zeros(4), torch.full((4,), 10.0)).item() == 1.0  # no errors
    # a bin without errors counts half an error: (5/10) / (0.5/10)
    assert grid_error_contrast(torch.tensor([5.0, 0.0]), torch.tensor([10.0, 10.0])).item() == pytest.approx(10)
    # bins without pixels are left out
    assert grid_error_contrast(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([10.0, 10.0, 0.0])).item() == 2.0


def test_grid_error_figure(tmp_path):
    target, g = _labels(n=2, h=32, w=32)
    pred = _corrupt(target, torch.rand(target.shape, generator=g) < 0.3)
    m = GridErrorMap(stride=16)
    m.update(pred, target)
    path = save_grid_error_figure(m.rates(), tmp_path / "grid_error.png", contrast=m.compute().item())
    assert path.stat().st_size > 1000
