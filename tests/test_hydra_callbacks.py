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


def _sweep_cfg(sweep):
    from omegaconf import OmegaConf

    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})


def test_a_sweep_folder_held_by_a_live_sweep_is_refused_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    import os
    import subprocess
    import sys

    from upsample_zoo.hydra_callbacks import SweepLock

    sweep = tmp_path / "sweep"
    # another live process holds the folder (as a running sweep's main process does)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, "
        "fcntl.LOCK_EX); os.write(fd, b'pid %d on testhost' % os.getpid()); print('held', flush=True); "
        "time.sleep(60)"), str(sweep / SweepLock.NAME)], stdout=subprocess.PIPE, text=True)
    try:
        sweep.mkdir()
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as e:
            SweepLock().on_multirun_start(_sweep_cfg(sweep))
        assert e.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid} on testhost" in err[0] and "hydra.sweep.dir" in err[0]
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock is gone with it, and the next sweep takes the folder
    lock = SweepLock()
    lock.on_multirun_start(_sweep_cfg(sweep))
    assert (sweep / SweepLock.NAME).read_text().startswith(f"pid {os.getpid()} on ")
    with pytest.raises(SystemExit):  # held by this one now: a second sweep in this process is refused too
        SweepLock().on_multirun_start(_sweep_cfg(sweep))
    lock.on_multirun_end(_sweep_cfg(sweep))
    SweepLock().on_multirun_start(_sweep_cfg(sweep))  # released at the end: free again


@pytest.mark.parametrize("overrides,name", [
    (["upsampler=custom", "upsampler._target_=a/b"], "'a/b'"),
    (["upsampler=tconv", "model.stage_upsamplers={last: x/y}"], "'tconv+last:x/y'"),
])
def test_a_run_name_with_a_path_separator_is_one_line_before_any_folder(tmp_path, monkeypatch, capsys, overrides,
                                                                        name):
    """The run's name is its folder's: 'a/b' used to nest the run dir (runs/<time>_a/b_s0)."""
    from upsample_zoo.errors import ConfigError
    from upsample_zoo.zoo import upsampler_name

    monkeypatch.setenv("UPSAMPLE_ZOO_ROOT", str(tmp_path / "root"))
    cfg = compose_train(["debug=smoke", *overrides])
    HydraConfig.instance().cfg = None
    with pytest.raises(SystemExit) as e:
        CheckOutputDir().on_run_start(cfg)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"upsampler name {name} holds a path separator" in err[0]
    assert not (tmp_path / "root").exists()
    with pytest.raises(ConfigError, match="path separator"):
        upsampler_name("custom", "a\\b")
