"""The frozen-encoder feature cache across a real two-job sweep: computed once, shared, kept out of checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..helpers.cli import run_cli


def test_inception_unet_trains_scores_and_shares_the_cache_across_a_sweep(zoo_root, tmp_path):
    """Two jobs (one guided) on the frozen FID Inception: the first computes the features, the second none;
    both score mIoU and boundary IoU; the frozen weights are counted and stay out of the checkpoints."""
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "encoder=inception_v3", "upsampler=bilinear,fade", "debug=smoke", "data.max_train=4",
                    "data.max_val=2", f"hydra.sweep.dir={sweep}", "hydra.callbacks.compare.enabled=false"],
                   zoo_root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert [r["upsampler"] for r in results] == ["bilinear", "fade"]
    assert [r["dataset"]["feature_cache"]["encoder_passes"] for r in results] == [6, 0]
    for r in results:
        assert r["status"] == "ok" and {"test/miou", "test/boundary_iou"} <= set(r["metrics"])
        assert r["cost"]["params"]["encoder"] == {"trainable": 0, "frozen": 21_768_352}
        assert r["cost"]["params"]["upsamplers"]["trainable"] == r["cost"]["params_upsamplers"]
        ckpt = torch.load(Path(r["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
        assert ckpt["state_dict"] and not any(".encoder." in k for k in ckpt["state_dict"])
