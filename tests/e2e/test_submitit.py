"""hydra/launcher=submitit_local: the same submitit code path as submitit_slurm, run for real on
this machine: each job in its own submitit subprocess, results.json from both, then the comparison report."""

from __future__ import annotations

import json
import re

from ..helpers.cli import run_cli


def test_submitit_local_sweep_runs_both_jobs_in_submitit_processes(zoo_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "upsampler=nearest,tconv",
                    "debug=smoke", "model.base_channels=8", f"hydra.sweep.dir={sweep}"], zoo_root, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert [(r["upsampler"], r["status"]) for r in results] == [("nearest", "ok"), ("tconv", "ok")]
    assert len({r["pid"] for r in results}) == 2  # two processes
    # submitit's own records: one folder per job, its stdout (the job's summary table) and its result pickle
    jobs = [d for d in (sweep / ".submitit").iterdir() if d.name.isdigit()]
    assert len(jobs) == 2
    ran = sorted(re.search(r"segmentation · (\w+) ·", (d / f"{d.name}_0_log.out").read_text()).group(1) for d in jobs)
    assert ran == ["nearest", "tconv"]
    assert all((d / f"{d.name}_0_result.pkl").is_file() for d in jobs)
    md = (sweep / "comparison.md").read_text()
    assert "| nearest | 1 | 0 |" in md and "| tconv | 1 | 0 |" in md
    assert "comparison written to" in proc.stdout + proc.stderr
