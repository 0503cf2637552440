"""A third task from four files (tests/toy_task: LightningModule, model, data, config): its files, and its
declaration, which reaches the report with its own headline metric, label and direction, with no change to the
package (tests/e2e/test_toy_task_sweep.py sweeps it)."""

from __future__ import annotations

import json

from upsample_zoo.report.comparison import summarize
from upsample_zoo.report.runs import load_runs
from upsample_zoo.tasks.declarations import TaskDeclaration, declared

from ..helpers.cli import REPO

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


