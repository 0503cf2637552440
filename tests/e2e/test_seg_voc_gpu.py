"""The GPU real-VOC experiment runs end to end on CPU under debug=smoke."""

from __future__ import annotations

from upsample_zoo.data.voc_synthetic import build_voc_synthetic

from ..helpers.cli import run_in_process


def test_seg_voc_gpu_runs_with_debug_smoke_on_cpu(zoo_root, tmp_path):
    """The GPU experiment's config, on CPU: ResNet-50 (random weights: no network here), VOC layout. (The
    experiment is composed after debug=smoke, so its budget is overridden here.)"""
    root = build_voc_synthetic(tmp_path / "voc", num_train=4, num_val=2)
    results = run_in_process(["experiment=seg_voc_gpu", "debug=smoke", "trainer=cpu", "encoder.weights=null",
                              "encoder.freeze=true", f"data.root={root}", "data.num_workers=0",
                              "trainer.max_epochs=1", "data.batch_size=2"], tmp_path / "run")
    assert results["status"] == "ok", results.get("error")
    assert results["config"]["model"]["encoder"]["arch"] == "resnet50"
    assert results["cost"]["params"]["encoder"]["frozen"] == 23_508_032  # torchvision ResNet-50 minus its fc
    assert results["dataset"]["feature_cache"]["encoder_passes"] == 6
    assert {"test/miou", "test/boundary_iou"} <= set(results["metrics"])
