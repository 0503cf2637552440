"""Bench row 7: sweep throughput, joblib vs sequential, and where the time goes. The real
measurement (4 GAN jobs of ~30 s) is `upsample-zoo bench --only sweep` on an idle machine; here the same code
runs with tiny jobs, and the report is checked on known numbers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from upsample_zoo.bench import measure, settings
from upsample_zoo.bench import sweep as bench_sweep
from upsample_zoo.bench.report import BenchResult, headline
from upsample_zoo.bench.workloads import compose_config
from upsample_zoo.results import RunResult


def _job(wall: float, fit: float, threads: int) -> RunResult:
    return RunResult(status="ok", torch_threads=threads, cost={"wall_s": wall, "fit_s": fit})


def test_time_split_of_a_sweep():
    seq = bench_sweep.sweep_time_split(130.0, [_job(30, 20, 2)] * 4, parallel=1)
    assert seq["job_wall_s"] == 30 and seq["job_fit_s"] == 20 and seq["threads"] == [2]
    assert seq["jobs_wall_s"] == 120 and seq["outside_jobs_s"] == pytest.approx(10)
    par = bench_sweep.sweep_time_split(100.0, [_job(45, 30, 1)] * 4, parallel=2)
    assert par["outside_jobs_s"] == pytest.approx(100 - 180 / 2) and par["threads"] == [1]


def test_report_explains_the_speedup():
    s = lambda *xs: measure.summarize(xs)  # noqa: E731
    row = {"wall_s": s(130.0), "jobs_ok": [4], "threads": [2], "job_wall_s": s(30.0), "job_fit_s": s(20.0),
           "jobs_wall_s": s(120.0), "outside_jobs_s": s(10.0)}
    par = {**row, "wall_s": s(100.0), "threads": [1], "job_wall_s": s(45.0), "jobs_wall_s": s(180.0),
           "outside_jobs_s": s(10.0)}
    seq_name, par_name = "sequential, 2 torch threads (torch default)", "joblib, n_jobs=2, 1 torch thread per job"
    sweep = {"jobs": 4, "command": "python train.py -m task=gan", "rows": {seq_name: row, par_name: par},
             "sequential": seq_name, "speedup": measure.ratio_summary([130.0], [100.0]),
             "speedup_vs_sequential_1thread": None, "speedup_jobs_only": measure.ratio_summary([120.0], [90.0]),
             "job_slowdown_1thread": measure.ratio_summary([45.0], [30.0])}
    typed = bench_sweep.Sweep(**{**sweep, "rows": {k: bench_sweep.SweepRow(**r) for k, r in sweep["rows"].items()}})
    md = "\n".join(bench_sweep.render(typed))
    assert f"| {par_name} | 100 (100–100) | 4/4 | 1 | 45.0 (45.0–45.0) | 20.0 (20.0–20.0) | 10.0" in md
    assert "÷ joblib wall: **1.30 (1.30–1.30)**" in md
    assert "takes 1.50x as long" in md and "at most 2 / 1.50 = 1.33x" in md and "1.33 (1.33–1.33)" in md
    assert headline(BenchResult(mode="full", sweep=typed))["sweep_speedup"] == 1.3


def test_sweep_row_runs_real_sweeps(tmp_path):
    s = dataclasses.replace(settings.QUICK, sweep_upsamplers=("nearest", "tconv"))
    result = bench_sweep.run(s, tmp_path)
    res = measure.to_json(result)
    assert res["jobs"] == 2 and res["command"].startswith("python train.py -m task=segmentation")
    seq, par = res["rows"][res["sequential"]], res["rows"]["joblib, n_jobs=2, 1 torch thread per job"]
    assert seq["jobs_ok"] == [2] and par["jobs_ok"] == [2]
    assert par["threads"] == [1] and seq["threads"] == [torch.get_num_threads()]
    assert 0 < seq["job_fit_s"]["median"] < seq["job_wall_s"]["median"] < seq["wall_s"]["median"]
    assert res["speedup"]["median"] == pytest.approx(seq["wall_s"]["median"] / par["wall_s"]["median"])
    assert res["job_slowdown_1thread"]["median"] > 0
    md = "\n".join(bench_sweep.render(result))
    assert "Where the time goes" in md and "| joblib, n_jobs=2, 1 torch thread per job |" in md


def test_full_mode_sweeps_gan_jobs_of_real_length(tmp_path):
    """The measurement itself (full mode): 4 GAN jobs with 2 epochs of 2,048 images and FID at n=256, not smoke."""
    s = settings.FULL
    assert len(s.sweep_upsamplers) == 4 and not any(o.startswith("debug=") for o in s.sweep_overrides)
    cfg = compose_config(list(s.sweep_overrides), tmp_path)
    assert cfg.task._target_.endswith("GANTask") and cfg.trainer.max_epochs == 2 and cfg.data.max_images == 2048
    assert cfg.metrics.fid.num_fake == cfg.metrics.fid.num_real == cfg.task.num_fake == 256
    assert s.sweep_sequential_threads == ("default",)  # the baseline: sequential at torch's default threads
