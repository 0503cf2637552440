"""Crash and resume, preemption, atomic checkpoints, determinism (issue: reliability)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ..helpers.cli import REPO, run_cli, run_in_process

RESUMABLE = ["debug=smoke", "trainer.max_epochs=3", "trainer.limit_train_batches=6", "trainer.deterministic=true",
             "seed=5", "upsampler=tconv", "+logger.csv.flush_logs_every_n_steps=1"]  # a CSV row per step


def _popen(args: list[str], root: Path) -> subprocess.Popen:
    """train.py as a terminal's foreground command: Ctrl-C's SIGINT at its default. A test run started in the
    background (``cmd &`` in a script) ignores SIGINT, its children inherit that, and Python then never raises
    KeyboardInterrupt: the Ctrl-C test would wait on a run that cannot hear it."""
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root)}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _error_line_on_exit(proc: subprocess.Popen, returncode: int) -> str:
    """The run, stopped by a signal, exits with ``returncode``, no traceback and one error line: that line."""
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == returncode, err[-2000:]
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("upsample-zoo: error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


def _wait_until(ready, what: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"run ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.time() - t0 < timeout, f"{what} never happened"
        time.sleep(0.02)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    _wait_until(path.exists, f"{path} appeared", proc)


def _wait_for_epoch(metrics_csv: Path, epoch: int, proc: subprocess.Popen) -> None:
    """Until the per-step CSV log has a row of ``epoch``: that epoch has run at least one training step."""
    _wait_until(lambda: metrics_csv.exists() and any(line.startswith(f"{epoch},") for line in
                                                     metrics_csv.read_text().splitlines()[1:]),
                f"epoch {epoch} began", proc)


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_sigkill_mid_epoch_then_resume_gives_identical_metrics(zoo_root, tmp_path):
    # the reference goes through the same CLI, in a fresh process like the crashed run: the thread count
    # sets the float summation order, and this test process's may have been changed by earlier tests
    straight = tmp_path / "straight"
    proc = run_cli([*RESUMABLE, f"hydra.run.dir={straight}"], zoo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = _results(straight)

    crashed = tmp_path / "crashed"
    proc = _popen([*RESUMABLE, f"hydra.run.dir={crashed}"], zoo_root)
    _wait_for_epoch(crashed / "csv" / "metrics.csv", 1, proc)  # epoch 0 saved, epoch 1 under way
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (crashed / "results.json").exists()
    last = torch.load(crashed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 6  # killed mid-epoch 1: its steps are lost

    proc = run_cli([*RESUMABLE, "ckpt_path=last", f"hydra.run.dir={crashed}"], zoo_root)  # the same command
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Restored all states from the checkpoint" in proc.stdout + proc.stderr
    resumed = _results(crashed)
    assert resumed["status"] == "ok", resumed.get("error")
    assert abs(resumed["metrics"]["test/miou"] - ref["metrics"]["test/miou"]) <= 1e-6
    assert resumed["metrics"]["test/pixel_acc"] == pytest.approx(ref["metrics"]["test/pixel_acc"], abs=1e-6)


def test_sigterm_saves_a_checkpoint_and_exits_143(zoo_root, tmp_path):
    run_dir = tmp_path / "pre"
    proc = _popen(["debug=smoke", "trainer.max_epochs=200", "trainer.limit_train_batches=50",
                   f"hydra.run.dir={run_dir}"], zoo_root)
    _wait_for(run_dir / "csv" / "metrics.csv", proc)  # training has started
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    line = _error_line_on_exit(proc, 143)
    assert "SIGTERM" in line and "ckpt_path=last" in line
    res = _results(run_dir)
    assert res["status"] == "failed" and "SIGTERM" in res["error"]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] > 0 and "state_dict" in ckpt


def test_checkpoint_write_is_atomic(smoke_run, monkeypatch):
    """A crash while writing a new checkpoint leaves the previous last.ckpt intact and loadable. The checkpoint is
    the one of the segmentation smoke run of bilinear (test_train.py::test_smoke_run_every_upsampler[bilinear])."""
    import fsspec.implementations.local as local

    run_dir, res = smoke_run(["upsampler=bilinear", "debug=smoke", "seed=1"])
    assert res["status"] == "ok"
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    from lightning.fabric.utilities.cloud_io import _atomic_save

    real_write = local.LocalFileOpener.write

    def crash_midway(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(local.LocalFileOpener, "write", crash_midway)
    with pytest.raises(OSError, match="simulated"):
        _atomic_save({"state_dict": {"w": torch.zeros(1000)}}, last)
    monkeypatch.undo()
    assert last.read_bytes() == before
    torch.load(last, map_location="cpu", weights_only=True)


# the smoke runs of pixel_shuffle that test_train.py and test_gan.py check (seeds 1 and 0), and another seed
SAME_SEED = {"segmentation": (["upsampler=pixel_shuffle", "debug=smoke", "seed=1"], "seed=2"),
             "gan": (["task=gan", "debug=smoke", "upsampler=pixel_shuffle"], "seed=1")}


@pytest.mark.parametrize("task", ["segmentation", "gan"])
def test_same_seed_gives_bit_identical_metrics(smoke_run, tmp_path, task):
    """A run repeated in this process, later, gives the same numbers (run a is the session's smoke run of the
    same overrides, so whatever ran in between must not matter either); another seed gives others."""
    args, other_seed = SAME_SEED[task]
    _, a = smoke_run(args)
    b = run_in_process(args, tmp_path / "b")
    assert a["status"] == b["status"] == "ok"
    assert a["task"] == b["task"] == task and a["seed"] == b["seed"]
    assert a["metrics"] == b["metrics"]  # exact equality, every metric
    assert a["torch_threads"] == torch.get_num_threads()  # recorded: it sets the float summation order
    c = run_in_process([*(o for o in args if not o.startswith("seed=")), other_seed], tmp_path / "c")
    assert c["seed"] != a["seed"]
    assert c["metrics"] != a["metrics"]  # and the seed does matter


def test_ctrl_c_stops_the_whole_sweep_and_says_how_to_resume_it(zoo_root, tmp_path):
    """Ctrl-C used to abort the current job only: the next job started and the sweep exited 0, with the single
    run's advice. It must stop the sweep (exit 130) with one line: resume=true and the sweep folder."""
    sweep = tmp_path / "sweep"
    proc = _popen(["-m", "upsampler=nearest,bilinear", "debug=smoke", "trainer.max_epochs=200",
                   "trainer.limit_train_batches=50", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"], zoo_root)
    _wait_until(lambda: any(sweep.glob("0_*/csv/metrics.csv")), "the first job began training", proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    line = _error_line_on_exit(proc, 130)
    assert "Ctrl-C" in line and f"resume=true hydra.sweep.dir={sweep}" in line, line
    assert not any(sweep.glob("1_*")), "the next job started after Ctrl-C"
    assert json.loads(next(sweep.glob("0_*/results.json")).read_text())["status"] == "failed"
