"""A third task from four files (tests/toy_task: LightningModule, model, data, config): it trains, sweeps and
reaches the report with its own headline metric, label and direction, with no change to the package."""

from __future__ import annotations

import csv
import json
import os

import pytest

from upsample_zoo.report.comparison import summarize
from upsample_zoo.report.runs import load_runs
from upsample_zoo.tasks.declarations import TaskDeclaration, declared

from .helpers.cli import REPO, run_cli

TOY = REPO / "tests" / "toy_task"


def test_the_toy_task_is_four_files():
    files = sorted(p.relative_to(TOY).as_posix() for p in TOY.rglob("*") if p.is_file()
                   and p.name != "__init__.py" and "__pycache__" not in p.parts)
    assert files == ["configs/task/toy.yaml", "data.py", "model.py", "task.py"]


def test_a_declaration_survives_results_json():
    decl = TaskDeclaration("toy", ("test/a", "test/b"), references={"test/a": "test/a_real"},
                           labels={"test/a": "A"}, directions={"test/a": "min", "test/b": "max"})
    rec = json.loads(json.dumps(decl.record()))
    back = declared("toy", rec)
    assert back.record() == rec
    assert (back.headline, back.label("test/a"), back.label("test/b")) == (("test/a", "test/b"), "A", "test/b")
    assert (back.direction("test/a"), back.direction("test/b")) == ("min", "max")
    assert declared("segmentation").headline[0] == "test/miou"  # runs written before `declared`: the package's


def _write_run(folder, upsampler, seed, value, declared_rec):
    folder.mkdir(parents=True)
    res = {"status": "ok", "task": "toy", "data": "d", "upsampler": upsampler, "seed": seed,
           "metrics": {"test/score": value, "test/other": 1.0}, "cost": {}, "declared": declared_rec}
    (folder / "results.json").write_text(json.dumps(res))


def test_the_report_takes_headline_label_and_direction_from_the_runs(tmp_path):
    """A metric the package has never heard of, declared lower-is-better by its runs: the report puts it first,
    labels it, and marks a significantly lower value as better."""
    rec = TaskDeclaration("toy", ("test/score",), labels={"test/score": "score"},
                          directions={"test/score": "min"}).record()
    for seed in range(6):
        _write_run(tmp_path / f"b{seed}", "bilinear", seed, 10.0 + 0.01 * seed, rec)
        _write_run(tmp_path / f"n{seed}", "nearest", seed, 5.0 + 0.02 * seed, rec)
    cmp = summarize(load_runs([tmp_path]))
    (section,) = cmp.sections
    assert section.headline == ["test/score"]
    assert section.label_dir("test/score") == "score ↓"
    row = cmp.row(section, "nearest", "test/score")
    assert row["direction"] == "min" and row["significant"] == "yes" and row["diff_mean"] < 0


@pytest.mark.slow
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
