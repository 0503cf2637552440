"""`upsample-zoo rescore`: the test phase again from each job's checkpoint, with the metric code as it is now."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ..helpers.cli import REPO

NEW = ("test/kid", "test/kid_se", "test/precision", "test/recall", "test/density", "test/coverage")


def _rescore(root, *args):
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "upsample_zoo.cli", "rescore", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_rescore_adds_new_metrics_reproduces_the_old_ones_and_survives_a_missing_checkpoint(gan_pair_sweep, tmp_path):
    """A 2-job GAN smoke sweep whose results.json lack KID and the k-NN metrics (as written by older code):
    rescore adds them, reproduces every earlier test metric exactly, keeps the training metrics, stamps the
    rescore and re-renders the report. A job whose checkpoint is gone is one line, and the other goes on."""
    root, shared, proc = gan_pair_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    shutil.copytree(shared, sweep)  # the shared sweep stays as it was
    paths = sorted(sweep.rglob("results.json"))
    assert len(paths) == 2
    written = {}
    for p in paths:  # what a run of older code wrote: no KID, no precision/recall
        res = json.loads(p.read_text())
        assert res["status"] == "ok" and set(NEW) <= set(res["metrics"])
        res["metrics"] = {k: v for k, v in res["metrics"].items() if not any(k.startswith(n) for n in NEW)}
        p.write_text(json.dumps(res))
        written[p] = res
    report = sweep / "comparison.md"
    report.write_text("stale")

    proc = _rescore(root, sweep, "--jobs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 of 2 jobs rescored" in proc.stdout
    for p in paths:
        old, res = written[p], json.loads(p.read_text())
        for k, v in old["metrics"].items():  # test/ metrics reproduced bit for bit, the others untouched
            assert res["metrics"][k] == v, k
        assert all(res["metrics"][k] == res["metrics"][k] for k in NEW)  # present and not NaN
        assert res["metrics"]["test/kid_se"] > 0 and 0 <= res["metrics"]["test/precision"] <= 1
        assert res["previous_metrics"] == old["metrics"]
        assert res["cost"] == old["cost"] and res["config"] == old["config"]
        stamp = res["rescored"]
        assert stamp["checkpoint"].endswith("last.ckpt") and stamp["date"][:4].isdigit() and stamp["version"]
    assert "KID" in report.read_text() or "kid" in report.read_text()

    # one job's checkpoint gone: one line for it, the other is rescored again, the originals are kept
    gone = paths[0].parent / "checkpoints" / "last.ckpt"
    gone.unlink()
    proc = _rescore(root, sweep, "--jobs", "1", "--no-report")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "upsample-zoo rescore:" in line]
    assert len(lines) == 1 and str(gone) in lines[0] and "re-run the job" in lines[0]
    assert "1 of 2 jobs rescored" in proc.stdout
    again = json.loads(paths[1].read_text())
    assert again["previous_metrics"] == written[paths[1]]["metrics"]
    assert all(again["metrics"][k] == v for k, v in written[paths[1]]["metrics"].items())


def test_rescore_of_a_folder_without_results_is_one_line(tmp_path):
    proc = _rescore(tmp_path, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no ok job's results.json" in proc.stderr
