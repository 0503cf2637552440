"""results.json's one record (upsample_zoo.results.RunResult): what a run starts, finishes or fails with, and a
write/read round trip that keeps every field, a newer writer's unknown keys included."""

from __future__ import annotations

import json

import pytest

from upsample_zoo.results import FILENAME, SCHEMA, RunResult


def test_a_run_starts_finishes_and_writes_what_it_has(tmp_path):
    rec = RunResult.started(task="toy", upsampler="bilinear", data="d", seed=3, config={"seed": 3})
    assert (rec.schema, rec.status, rec.ok) == (SCHEMA, "running", False)
    done = rec.finished(metrics={"test/x": 0.5}, cost={"fit_s": 1.0}, declared={"headline": ["test/x"]})
    done = done.with_cost(wall_s=2.0)
    assert rec.metrics == {} and rec.status == "running"  # the started record is not changed
    path = done.write(tmp_path)
    assert path == tmp_path / FILENAME
    d = json.loads(path.read_text())
    assert d["status"] == "ok" and d["cost"] == {"fit_s": 1.0, "wall_s": 2.0}
    assert list(d)[:3] == ["schema", "status", "task"]
    # the fields a run adds as it goes are left out until set; the first sixteen are always there
    assert "error" not in d and "spectrum" not in d and "config_hash" not in d
    assert d["git"] is None and d["resumed_from"] is None
    assert RunResult.read(tmp_path) == done == RunResult.read(path)


def test_a_failed_run_keeps_what_it_had_and_says_why(tmp_path):
    rec = RunResult.started(task="t", config_hash="abc").failed("ConfigError: no such upsampler")
    back = RunResult.read(rec.write(tmp_path))
    assert (back.status, back.error, back.config_hash, back.ok) == ("failed", "ConfigError: no such upsampler",
                                                                    "abc", False)


def test_unknown_keys_survive_a_read_and_a_write(tmp_path):
    (tmp_path / FILENAME).write_text(json.dumps({"schema": 1, "status": "ok", "task": "t", "from_the_future": [1, 2]}))
    rec = RunResult.read(tmp_path)
    assert rec.extra == {"from_the_future": [1, 2]} and rec.ok
    rec.write(tmp_path)
    assert json.loads((tmp_path / FILENAME).read_text())["from_the_future"] == [1, 2]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_corrupt_record_is_a_value_error_and_read_if_any_none(tmp_path, text):
    (tmp_path / FILENAME).write_text(text)
    with pytest.raises(ValueError):
        RunResult.read(tmp_path)
    assert RunResult.read_if_any(tmp_path) is None
    assert RunResult.read_if_any(tmp_path / "nowhere") is None
