"""The Hydra callbacks' checks before a run: the writable-output check on the default run folder."""

from __future__ import annotations

import warnings

import pytest
from hydra.core.hydra_config import HydraConfig

from upsample_zoo.hydra_callbacks import CheckOutputDir

from .helpers.cli import compose_train


def _default_run_config(root, monkeypatch):
    monkeypatch.setenv("UPSAMPLE_ZOO_ROOT", str(root))
    cfg = compose_train(["debug=smoke", "upsampler=tconv"])
    HydraConfig.instance().cfg = None  # as before Hydra's run_job: the callbacks run first
    return cfg


def test_default_run_dir_is_checked_without_a_warning_and_left_to_hydra(tmp_path, monkeypatch):
    """The default run dir names ${upsampler_name} (a ${hydra:...} resolver). The check used to fail to resolve
    it, so every run printed a UserWarning and the check never ran; it must resolve, check and leave no folder
    (Hydra makes the run dir itself, perhaps a second later)."""
    cfg = _default_run_config(tmp_path / "root", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CheckOutputDir().on_run_start(cfg)
    run_dir = str(cfg.hydra.run.dir)
    assert run_dir.startswith(str(tmp_path / "root" / "logs" / "segmentation" / "runs"))
    assert run_dir.endswith("_tconv_s0")
    assert not (tmp_path / "root").exists()


def test_default_run_dir_under_a_file_stops_with_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "root").write_text("a file where the project root should be")
    cfg = _default_run_config(tmp_path / "root", monkeypatch)
    with pytest.raises(SystemExit) as e:
        CheckOutputDir().on_run_start(cfg)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not writable" in err[0] and "hydra.run.dir" in err[0]
    assert (tmp_path / "root").read_text().startswith("a file")
