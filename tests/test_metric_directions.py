"""Each metric's better direction is recorded once (metrics/directions.py), agrees with what the torchmetrics
classes that compute it declare, and is what the report shows."""

from __future__ import annotations

import pytest
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchmetrics.image.fid import FrechetInceptionDistance

from upsample_zoo.metrics.boundary import BoundaryIoU, GridErrorMap
from upsample_zoo.metrics.checkerboard import CheckerboardScore
from upsample_zoo.metrics.directions import direction
from upsample_zoo.metrics.spectral_fd import SpectralFD
from upsample_zoo.report.comparison import label_dir


@pytest.mark.parametrize("name, metric_class", [
    ("test/miou", MulticlassJaccardIndex), ("test/pixel_acc", MulticlassAccuracy),
    ("test/fid", FrechetInceptionDistance), ("test/checkerboard_db", CheckerboardScore),
    ("test/spectral_fd", SpectralFD), ("test/boundary_iou", BoundaryIoU),
    ("test/grid_error_contrast", GridErrorMap)])
def test_direction_agrees_with_the_metric_class(name, metric_class):
    assert direction(name) == ("max" if metric_class.higher_is_better else "min")
    assert direction(name.replace("test/", "val/")) == direction(name)


def test_families_costs_and_unlisted_metrics():
    assert direction("test/iou/aeroplane") == "max"  # per-class IoU
    assert direction("cost/train_img_per_s") == "max" and direction("cost/wall_s") == "min"
    # counts and diagnostics have no better side, and a name is never guessed from its substrings
    for name in ("cost/params_total", "cost/epochs", "test/checkerboard_grid_period", "test/my_fid_like_score"):
        assert direction(name) is None
    assert label_dir("test/miou") == "mIoU ↑" and label_dir("test/fid") == "FID ↓"
    assert label_dir("cost/params_total") == "params (total)"
