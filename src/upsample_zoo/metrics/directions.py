"""Which way each logged metric is better: recorded once, here, for every metric the tasks log.

Keys are metric names without their split prefix (``test/``, ``val/``, ``train/``); per-class metrics such as
``test/iou/<class>`` use their family (``iou``); costs keep their ``cost/`` prefix. A metric that is not
listed has no better direction (counts, periods, diagnostics), and the report shows no arrow for it. The
torchmetrics classes' own ``higher_is_better`` agree with this table (tests/test_report_golden.py).
"""

from __future__ import annotations

MAX, MIN = "max", "min"
SPLITS = ("test", "val", "train")

DIRECTIONS: dict[str, str] = {
    # segmentation
    "miou": MAX, "iou": MAX, "pixel_acc": MAX, "boundary_iou": MAX, "grid_error_contrast": MIN,
    # generation
    "fid": MIN, "fid_real_floor": MIN,
    "kid": MIN, "kid_real_floor": MIN,  # kid_se: no direction (an uncertainty, not a score)
    "precision": MAX, "recall": MAX, "density": MAX, "coverage": MAX,
    "precision_real_floor": MAX, "recall_real_floor": MAX, "density_real_floor": MAX, "coverage_real_floor": MAX,
    "spectral_fd_shape": MIN, "spectral_fd_shape_real_floor": MIN,
    "spectral_fd_artifact": MIN, "spectral_fd_artifact_real_floor": MIN,
    "spectral_fd": MIN, "spectral_fd_real_floor": MIN,  # before the split into shape and artifact: older runs
    "spectral_hf_gap_db": MIN,
    # artefacts, both tasks
    "checkerboard_db": MIN, "checkerboard_db_ref": MIN, "checkerboard_db_vs_ref": MIN, "checkerboard_amp": MIN,
    "blockiness_db": MIN,
    # training
    "loss": MIN, "loss_g": MIN, "loss_d": MIN,
    # cost
    "cost/train_img_per_s": MAX, "cost/wall_s": MIN, "cost/fit_s": MIN,
}


def direction(metric: str) -> str | None:
    """'max', 'min' or None (no better/worse) for a logged metric name such as 'test/miou'."""
    split, _, rest = metric.partition("/")
    name = rest if split in SPLITS and rest else metric
    return DIRECTIONS.get(name) or DIRECTIONS.get(name.partition("/")[0] if split in SPLITS else name)
