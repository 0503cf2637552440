"""Two sweep jobs at once (joblib, two real processes) build the data and the FID statistics once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .helpers.cli import REPO

pytestmark = pytest.mark.slow  # trains, or runs the CLI, a sweep or a browser: `make test` only


def test_two_jobs_at_once_build_shared_caches_once(tmp_path):
    root = tmp_path / "root"  # a fresh root: nothing generated or cached yet
    sweep = tmp_path / "sweep"
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         "task=gan", "debug=smoke", "seed=0,1", f"hydra.sweep.dir={sweep}", "hydra.callbacks.compare.enabled=false"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sweep.rglob("results.json")]
    assert len(results) == 2 and all(r["status"] == "ok" for r in results), [r.get("error") for r in results]
    logs = "".join(p.read_text() for p in sweep.rglob("*.log") if p.name != "error.log")
    pids = {line.split("(pid ")[1].split(")")[0] for line in logs.splitlines() if "cifar_synthetic (pid" in line}
    assert logs.count("cifar_synthetic (pid") == 1, "the synthetic set was built more than once"
    # two real image sets get Inception statistics: the reference and the real-vs-real floor, each once
    computed = [line.split("-> ")[-1] for line in logs.splitlines() if "FID real statistics:" in line]
    assert len(computed) == len(set(computed)) == 2, f"FID statistics computed more than once: {computed}"
    assert len(pids) == 1
    assert len(list((root / ".cache" / "fid_stats").glob("*.npz"))) == 2
    assert not list((root / "data").glob(".cifar_synthetic.tmp-*")), "a temp build dir was left behind"
    assert {r["seed"] for r in results} == {0, 1}
    assert len({r["pid"] for r in results}) == 2, "the two jobs ran in two processes"
