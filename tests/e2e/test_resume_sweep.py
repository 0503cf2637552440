"""resume=true: a killed sweep, re-run into its sweep dir, runs only what is missing; finished
jobs are skipped untouched and still counted in the report; checkpointed jobs continue; a changed config never
passes for a finished job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from upsample_zoo import sweep_resume
from upsample_zoo.hydra_callbacks import ResumeNeedsTheSweepDir

from ..helpers.cli import REPO, compose_cfg, run_cli, run_in_process

UPSAMPLERS = ["nearest", "bilinear", "tconv", "pixel_shuffle"]
SWEEP = ["-m", f"upsampler={','.join(UPSAMPLERS)}", "debug=smoke", "model.base_channels=8", "hydra/launcher=basic"]


def _results(sweep: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in sweep.glob("*/results.json")}


def test_killed_sweep_resumes_only_the_missing_jobs(zoo_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = [*SWEEP, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(zoo_root)}
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while len(_results(sweep)) < 2:
        assert proc.poll() is None, f"the sweep ended before 2 jobs finished: {proc.stderr.read()[-2000:]}"
        assert time.time() - t0 < 300, "2 jobs never finished"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher's whole process group
    proc.wait(timeout=30)
    finished = _results(sweep)
    assert len(finished) == 2 and not (sweep / "comparison.md").exists()
    before = {name: p.read_bytes() for name, p in finished.items()}
    ckpt_times = {name: (p.parent / "checkpoints" / "last.ckpt").stat().st_mtime_ns for name, p in finished.items()}
    assert all(json.loads(b)["pid"] == proc.pid for b in before.values())

    again = run_cli([*args, "resume=true"], zoo_root, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _results(sweep)
    assert len(after) == 4
    for name, data in before.items():  # skipped: not a byte rewritten, not a checkpoint touched
        assert after[name].read_bytes() == data
        assert (after[name].parent / "checkpoints" / "last.ckpt").stat().st_mtime_ns == ckpt_times[name]
    rerun = {name: json.loads(p.read_text()) for name, p in after.items() if name not in before}
    assert len(rerun) == 2 and all(r["status"] == "ok" for r in rerun.values())
    pids = {r["pid"] for r in rerun.values()}
    assert len(pids) == 1 and proc.pid not in pids  # both ran in the resumed sweep process
    assert again.stdout.count("resume: skipped") == 2
    md = (sweep / "comparison.md").read_text()
    for up in UPSAMPLERS:  # the report of the whole sweep: 4 rows, as if nothing had been killed
        assert f"| {up} | 1 | 0 |" in md
    assert "Failed or incomplete runs" not in md


def test_resume_continues_a_checkpointed_job_and_restarts_a_changed_one(zoo_root, tmp_path, monkeypatch):
    from upsample_zoo.tasks.segmentation import SegmentationTask

    steps: list[int] = []  # training steps taken by the runs below (a count, not a wall time)
    train_step = SegmentationTask.training_step
    monkeypatch.setattr(SegmentationTask, "training_step",
                        lambda self, *a, **k: steps.append(1) or train_step(self, *a, **k))
    args = ["debug=smoke", "model.base_channels=8", "trainer.max_epochs=2", "seed=3", "upsampler=tconv"]
    first = run_in_process(args, tmp_path)
    assert first["status"] == "ok" and first["resumed_from"] is None
    first_steps = len(steps)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert sweep_resume.checkpoint_config_hash(last) == first["config_hash"]  # written by the real callback
    # preempted after its last checkpoint: a failed results.json next to a last.ckpt of the same config
    (tmp_path / "results.json").write_text(json.dumps({**first, "status": "failed", "error": "preempted (SIGTERM)"}))
    steps.clear()
    resumed = run_in_process([*args, "resume=true"], tmp_path)
    assert resumed["status"] == "ok" and resumed["resumed_from"] == str(last)
    assert resumed["metrics"] == first["metrics"]  # the same weights, tested again
    # continued, not restarted: fewer steps than the whole run (a run from scratch, deterministic, would match the
    # metrics too). Lightning saves last.ckpt at validation end, before its epoch counts as done, so the resumed
    # run repeats that last epoch: 2 of the 4 steps, measured; the same weights come out.
    assert 0 < len(steps) < first_steps
    assert json.loads((tmp_path / "results.previous.json").read_text())["status"] == "failed"
    # another epoch count: not the finished job, and its checkpoint is not continued
    steps.clear()
    changed = run_in_process([*args[:2], "trainer.max_epochs=3", *args[3:], "resume=true"], tmp_path)
    assert changed["status"] == "ok" and changed["resumed_from"] is None and changed["cost"]["epochs"] == 3
    assert len(steps) == 3 * first_steps // 2  # all 3 epochs, from the start
    assert changed["config_hash"] != first["config_hash"]


def _resolved(overrides: list[str], out: Path) -> dict:
    return OmegaConf.to_container(compose_cfg(overrides, out), resolve=True)


def test_config_hash_ignores_paths_and_resume_but_not_settings(zoo_root, tmp_path, monkeypatch):
    base = _resolved(["upsampler=tconv"], tmp_path / "a")
    h = sweep_resume.config_hash(base)
    same = _resolved(["upsampler=tconv", "resume=true", "ckpt_path=last"], tmp_path / "a")
    assert sweep_resume.config_hash(same) == h
    # the sweep folder's name is not the job's config: a sweep started before `sweep_name` existed resumes
    named = _resolved(["upsampler=tconv", "sweep_name=seg_ablation"], tmp_path / "a")
    assert named["sweep_name"] == "seg_ablation" and sweep_resume.config_hash(named) == h
    assert sweep_resume.config_hash({k: v for k, v in base.items() if k != "sweep_name"}) == h
    moved = _resolved(["upsampler=tconv"], tmp_path / "elsewhere" / "b")  # another run dir: output paths differ
    assert moved["callbacks"]["model_checkpoint"]["dirpath"] != base["callbacks"]["model_checkpoint"]["dirpath"]
    assert sweep_resume.config_hash(moved) == h
    monkeypatch.setenv("UPSAMPLE_ZOO_ROOT", str(tmp_path / "other_root"))  # data, caches, logs all moved
    assert sweep_resume.config_hash(_resolved(["upsampler=tconv"], tmp_path / "a")) == h
    for change in ("trainer.max_epochs=9", "seed=1", "upsampler=nearest", "data.max_train=10", "tags=[x]",
                   "data.root=/somewhere/else"):
        assert sweep_resume.config_hash(_resolved(["upsampler=tconv", change], tmp_path / "a")) != h, change
    assert sweep_resume.config_hash(json.loads(json.dumps(base))) == h  # as read back from results.json


def test_plan_skip_resume_or_run(zoo_root, tmp_path):
    cfg = _resolved(["upsampler=tconv"], tmp_path)
    h = sweep_resume.config_hash(cfg)
    assert sweep_resume.plan_job(cfg, tmp_path).action == "run"  # nothing there
    (tmp_path / "checkpoints").mkdir()
    torch.save({"callbacks": {"ConfigHashCallback": {"config_hash": h}}}, tmp_path / "checkpoints" / "last.ckpt")
    plan = sweep_resume.plan_job(cfg, tmp_path)
    assert plan.action == "resume" and plan.ckpt_path == str(tmp_path / "checkpoints" / "last.ckpt")
    (tmp_path / "results.json").write_text(json.dumps({"status": "failed", "config": cfg}))
    assert sweep_resume.plan_job(cfg, tmp_path).action == "resume"  # failed (preempted) with a checkpoint
    (tmp_path / "results.json").write_text(json.dumps({"status": "ok", "config": cfg, "metrics": {"val/miou": 0.5}}))
    plan = sweep_resume.plan_job(cfg, tmp_path)
    assert plan.action == "skip" and plan.previous.metrics == {"val/miou": 0.5}
    other = _resolved(["upsampler=tconv", "trainer.max_epochs=1"], tmp_path)
    assert sweep_resume.plan_job(other, tmp_path).action == "run"  # finished, and checkpointed, under another config
    torch.save({"callbacks": {}}, tmp_path / "checkpoints" / "last.ckpt")  # a checkpoint from before the hash
    (tmp_path / "results.json").unlink()
    assert sweep_resume.plan_job(cfg, tmp_path).action == "run"
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"truncated")
    assert sweep_resume.plan_job(cfg, tmp_path).action == "run"


def test_resume_without_the_sweep_dir_warns(tmp_path, capsys):
    cb = ResumeNeedsTheSweepDir()
    cfg = OmegaConf.create({"resume": True, "hydra": {"sweep": {"dir": str(tmp_path / "new")}}})
    cb.on_multirun_start(cfg)
    assert "hydra.sweep.dir=<the earlier sweep dir>" in capsys.readouterr().out
    (tmp_path / "old" / "0_tconv_s0" / ".hydra").mkdir(parents=True)
    cb.on_multirun_start(OmegaConf.create({"resume": True, "hydra": {"sweep": {"dir": str(tmp_path / "old")}}}))
    cb.on_multirun_start(OmegaConf.create({"resume": False, "hydra": {"sweep": {"dir": str(tmp_path / "new")}}}))
    assert capsys.readouterr().out == ""


def _ckpt(path: Path, config_hash: str | None, mtime: int) -> Path:
    torch.save({"callbacks": {"ConfigHashCallback": {"config_hash": config_hash}} if config_hash else {}}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_resume_from_the_newest_last_checkpoint_and_keep_one_stale_generation(zoo_root, tmp_path):
    """A job re-run from scratch writes last-v1.ckpt next to the stale last.ckpt; killed again, resume=true must
    continue last-v1.ckpt (it used to look at last.ckpt only, and start over), and the stale generation is set
    aside once, never piled up."""
    cfg = _resolved(["upsampler=tconv"], tmp_path)
    h = sweep_resume.config_hash(cfg)
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    _ckpt(ckpts / "last.ckpt", "another-config", 1_000)
    _ckpt(ckpts / "epoch_000.ckpt", "another-config", 1_000)
    newest = _ckpt(ckpts / "last-v1.ckpt", h, 2_000)
    best = _ckpt(ckpts / "epoch_001-v1.ckpt", h, 2_000)
    plan = sweep_resume.plan_job(cfg, tmp_path)
    assert plan.action == "resume" and plan.ckpt_path == str(newest)
    sweep_resume.set_aside_previous(tmp_path, plan)
    assert sorted(p.name for p in ckpts.iterdir()) == sorted([newest.name, best.name])  # its own, untouched
    assert sorted(p.name for p in (tmp_path / "checkpoints.previous").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    # a re-run from scratch (a changed config) moves everything aside, replacing the older stale generation
    other = _resolved(["upsampler=tconv", "trainer.max_epochs=1"], tmp_path)
    plan = sweep_resume.plan_job(other, tmp_path)
    assert plan.action == "run" and "last-v1.ckpt" in plan.reason
    sweep_resume.set_aside_previous(tmp_path, plan)
    assert list(ckpts.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "checkpoints.previous").iterdir()) == sorted([newest.name, best.name])
    # two equally valid checkpoints of the config: the newer one wins, whatever the names
    _ckpt(ckpts / "last.ckpt", h, 5_000)
    _ckpt(ckpts / "last-v2.ckpt", h, 4_000)
    assert sweep_resume.plan_job(cfg, tmp_path).ckpt_path == str(ckpts / "last.ckpt")
