"""End to end: compose the real configs, train under debug=smoke, read results.json; and the real CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from upsample_zoo.models.build import build_model

from ..helpers.cli import SHARED_DATA, compose_cfg, run_cli, run_in_process
from ..helpers.run_if import RunIf
from ..helpers.zoo import ZOO


@pytest.mark.parametrize("name", ZOO)
def test_smoke_run_every_upsampler(smoke_run, name):
    run_dir, res = smoke_run([f"upsampler={name}", "debug=smoke", "seed=1"])  # shared: test_reliability reads it
    assert res["status"] == "ok", res.get("error")
    assert res["upsampler"] == name and res["task"] == "segmentation" and res["data"] == "voc_synthetic"
    miou = res["metrics"]["test/miou"]
    assert 0.0 <= miou <= 1.0 and math.isfinite(miou)
    assert 0.0 <= res["metrics"]["test/pixel_acc"] <= 1.0
    assert math.isfinite(res["metrics"]["test/checkerboard_db"]) and res["metrics"]["test/checkerboard_amp"] >= 0
    assert "skipped: 0" in res["protocol"]["checkerboard"]
    cost = res["cost"]
    assert 0 < cost["params_upsamplers"] < cost["params_total"]
    assert cost["train_img_per_s"] > 0 and cost["wall_s"] > 0
    assert res["config"]["upsampler"]["_target_"].startswith("upsample_zoo.upsamplers.")
    assert res["dataset"]["classes"][0] == "background"
    assert (run_dir / "predictions.png").stat().st_size > 1000
    assert (run_dir / "csv" / "metrics.csv").read_text().count("\n") > 1
    assert not list(run_dir.glob(".results.json.*"))  # atomic write left no temp file


def test_upsampler_params_match_model_structure(zoo_root, tmp_path):
    """The decoder of depth 4 holds 4 upsamplers; params_upsamplers counts exactly them."""
    cfg = compose_cfg(["upsampler=tconv"], tmp_path)
    model = build_model(cfg)
    widths = [32 * 2**i for i in range(5)]
    want = sum(widths[i + 1] * widths[i] * 16 + widths[i] for i in range(4))
    from upsample_zoo.upsamplers import upsampler_parameters

    assert upsampler_parameters(model) == want


def test_unet_handles_odd_sizes_for_every_upsampler(zoo_root, tmp_path):
    import torch

    for name in ZOO:
        cfg = compose_cfg([f"upsampler={name}", "model.base_channels=4", "model.num_classes=3"], tmp_path)
        model = build_model(cfg).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 75, 50)).shape == (1, 3, 75, 50)


def test_cli_unknown_upsampler_lists_choices(zoo_root):
    proc = run_cli(["upsampler=nope"], zoo_root)
    assert proc.returncode != 0
    for name in ZOO:
        assert name in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_smoke_writes_results_and_exits_zero(zoo_root, tmp_path):
    proc = run_cli(["upsampler=pixel_shuffle_icnr", "debug=smoke", f"hydra.run.dir={tmp_path}"], zoo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "ok" and 0 <= res["metrics"]["test/miou"] <= 1
    assert "test/miou" in proc.stdout  # the rich summary table


def test_cli_failure_is_one_line_and_recorded(zoo_root, tmp_path):
    proc = run_cli(["debug=smoke", "model.base_channels=0", f"hydra.run.dir={tmp_path}"], zoo_root)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("upsample-zoo: error:")]
    assert len(err) == 1 and "model.base_channels" in err[0]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "failed" and "base_channels" in res["error"]
    assert "Traceback" in (tmp_path / "error.log").read_text()  # nothing lost: the trace is on disk


VOC_SAMPLE = SHARED_DATA / "voc2012-sample"


@RunIf(shared=VOC_SAMPLE)
def test_real_voc_sample_full_resolution_with_void(zoo_root, tmp_path):
    res = run_in_process(["data=voc", f"data.root={VOC_SAMPLE}", "data.download=false", "debug=smoke",
                          "upsampler=tconv_k3"], tmp_path)
    assert res["status"] == "ok", res.get("error")
    assert res["dataset"]["num_train"] == 4 and res["dataset"]["num_val"] == 1
    assert 0 <= res["metrics"]["test/miou"] <= 1
    # genuine files: a 500-px-wide image evaluated at its own size, void present and ignored
    import numpy as np
    from PIL import Image

    val_id = (VOC_SAMPLE / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split()[0]
    m = np.array(Image.open(VOC_SAMPLE / f"VOCdevkit/VOC2012/SegmentationClass/{val_id}.png"))
    assert 255 in m and max(m.shape) == 500
    assert res["protocol"]["test_pixels"] == int((m != 255).sum())
    assert Path(tmp_path / "predictions.png").exists()


def test_an_exception_becomes_one_line_in_one_place():
    from hydra.errors import InstantiationException

    from upsample_zoo.errors import ConfigError, one_line

    ours = ConfigError("upsampler.scale=3 is not supported;\n  use 2 or 4")
    try:
        try:
            raise ours
        except ConfigError as e:
            raise InstantiationException("Error in call to target 'X':\nConfigError(...)") from e
    except InstantiationException as wrapped:
        assert one_line(wrapped) == "upsampler.scale=3 is not supported; use 2 or 4"  # ours, unwrapped
    assert one_line(RuntimeError("shape\n   mismatch")) == "RuntimeError: shape mismatch"
    assert one_line(KeyError()) == "KeyError"
