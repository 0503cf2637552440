"""The toy task (tests/toy_task, four files) sweeps from the command line and its report heads the table with
its own headline, label and direction."""

from __future__ import annotations

import csv
import json
import os

import pytest

from ..helpers.cli import REPO, run_cli

TOY = REPO / "tests" / "toy_task"


def test_a_toy_task_sweeps_and_reports_its_headline(tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    out = run_cli(["-m", "task=toy", "upsampler=nearest,bilinear", "debug=smoke", "logger=csv",
                   f"hydra.searchpath=[file://{TOY / 'configs'}]"], tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "toy" / "multiruns").iterdir()
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert [(r["task"], r["upsampler"], r["status"]) for r in results] == [("toy", "nearest", "ok"),
                                                                          ("toy", "bilinear", "ok")]
    assert all(r["declared"]["directions"] == {"test/psnr": "max"} for r in results)
    lines = (sweep / "comparison.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| upsampler | n ok"))
    assert header.split(" | ")[3] == "PSNR dB ↑"
    rows = [r for r in csv.DictReader((sweep / "comparison.csv").open()) if r["metric"] == "test/psnr"]
    assert sorted(r["upsampler"] for r in rows) == ["bilinear", "nearest"]
    assert {r["direction"] for r in rows} == {"max"}
    for r in rows:  # the table's value is the run's own test/psnr
        run = next(x for x in results if x["upsampler"] == r["upsampler"])
        assert float(r["mean"]) == pytest.approx(run["metrics"]["test/psnr"])
