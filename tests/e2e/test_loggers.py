"""logger=many (csv + tensorboard + wandb) works offline with no account, and tags reach the loggers."""

from __future__ import annotations

import json

from ..helpers.cli import run_cli


def test_many_loggers_offline_run(zoo_root, tmp_path):
    run_dir = tmp_path / "run"
    env = {"WANDB_API_KEY": "", "WANDB_MODE": "", "WANDB_BASE_URL": "http://127.0.0.1:9"}  # a closed port
    proc = run_cli(["logger=many", "debug=smoke", "upsampler=tconv", "tags=[cmp_tag]", f"hydra.run.dir={run_dir}"],
                   zoo_root, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "results.json").read_text())["tags"] == ["cmp_tag"]
    assert (run_dir / "csv" / "metrics.csv").exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline wandb run per job, finished"
    blob = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"test/miou", b"val/miou", b"cmp_tag", b"tconv", b"voc_synthetic", b"segmentation"):
        assert key in blob, key
    assert list((runs[0] / "files" / "media" / "images").rglob("*.png")), "prediction grid logged as an image"
    debug_log = (runs[0] / "logs" / "debug-internal.log").read_text(errors="replace")
    assert "127.0.0.1:9" not in debug_log and "api.wandb.ai" not in debug_log
