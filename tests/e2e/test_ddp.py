"""DDP for real on CPU: `trainer=ddp_cpu trainer.devices=2` starts two gloo processes through
the real CLI; rank 0 alone writes; metrics are reduced across ranks, so they equal a single-process evaluation
of the same checkpoint on the same split; a multirun's child ranks run their own job, never the sweep."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from upsample_zoo import distributed
from upsample_zoo.train import build

from ..helpers.cli import compose_cfg, run_cli

PROBE = "+callbacks.probe._target_=tests.ddp_probe.CountScored"  # counts what reached each test metric, all ranks
# the whole test split (smoke scores 1 batch), of a size that splits evenly: no rank repeats an image
DDP = ["trainer=ddp_cpu", "trainer.devices=2", "debug=smoke", "trainer.limit_test_batches=1.0", PROBE]
SEG = ["task=segmentation", "model.base_channels=8", "data.max_val=4"]  # 4 test images, 2 per rank
GAN = ["task=gan", "seed=1", "task.sample_bn_batches=2"]  # 16 real images and 16 samples: 8 per rank
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # as Lightning gives each of 2 ranks on 2 cores; the reference uses 1 too


def _single_process_test(overrides: list[str], ckpt: Path, out_dir: Path) -> dict[str, float]:
    """Test the checkpoint in this process, one device: the reference the DDP metrics must equal."""
    one_device = [o for o in overrides if not o.startswith(("trainer=", "trainer.devices="))] + ["trainer=cpu"]
    cfg = compose_cfg(one_device, out_dir)
    assert cfg.trainer.devices == 1 and "strategy" not in cfg.trainer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        parts = build(cfg)
        parts["trainer"].test(parts["task"], datamodule=parts["datamodule"], ckpt_path=str(ckpt), weights_only=True,
                              verbose=False)
        return {k: float(v) for k, v in parts["trainer"].callback_metrics.items()}
    finally:
        torch.set_num_threads(threads)


def _one_writer(run_dir: Path) -> dict:
    """Rank 0 wrote everything once: one results.json (by the CLI's own process), one log, the checkpoints once."""
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "ok", res.get("error")
    assert res["world_size"] == 2
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log"]  # no per-rank log files
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    rows = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    assert len(rows) == len(set(rows))  # no metric row logged twice
    return res


def _summary_tables(stdout: str) -> int:
    return len(re.findall(r"┃ metric ", stdout))  # the rich table that rank 0 prints at the end of a job


def test_ddp_cpu_segmentation_multirun(zoo_root, tmp_path):
    """Two DDP jobs in one sweep process (basic launcher): each job's child rank runs that job and not the
    sweep, and the second job starts its own ranks (the first one's environment and process group are gone)."""
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", *DDP, *SEG, "upsampler=nearest,tconv", f"hydra.sweep.dir={sweep}"], zoo_root, timeout=420,
                   env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distributed_backend=gloo" in proc.stdout + proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_nearest_s0", "1_tconv_s0"]  # no sweep re-launched by a child rank
    assert len(list(sweep.rglob("results.json"))) == 2 and len(list(sweep.rglob("multirun.yaml"))) == 1
    assert "| tconv | 1 | 0 |" in (sweep / "comparison.md").read_text()
    assert _summary_tables(proc.stdout) == 2  # one per job: the child ranks print nothing
    for job in jobs:
        res = _one_writer(job)
        scored = json.loads((job / "scored.json").read_text())
        assert scored["world_size"] == 2 and scored["test_batches"] == 2  # 1 batch of 2 images per rank
        ref = _single_process_test([*DDP, *SEG, f"upsampler={res['upsampler']}"], job / "checkpoints" / "last.ckpt",
                                   tmp_path / f"single_{job.name}")
        assert abs(res["metrics"]["test/miou"] - ref["test/miou"]) <= 1e-6
        assert res["metrics"]["test/pixel_acc"] == pytest.approx(ref["test/pixel_acc"], abs=1e-6)
        single = json.loads((tmp_path / f"single_{job.name}" / "scored.json").read_text())
        assert {k: v for k, v in scored.items() if k != "world_size"} == \
            {"checkerboard_fake": 4, "checkerboard_real": 0, "test_batches": 2}
        assert single["checkerboard_fake"] == 4  # the same 4 probability maps, once each
    pids = {json.loads((j / "results.json").read_text())["pid"] for j in jobs}
    assert len(pids) == 1  # both written by the sweep process itself (rank 0), not by a child rank


def test_ddp_cpu_gan_scores_every_sample_once(zoo_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli([*DDP, *GAN, f"hydra.run.dir={run_dir}"], zoo_root, timeout=420, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = _one_writer(run_dir)
    assert _summary_tables(proc.stdout) == 1
    # FID and the checkerboard score saw the 16 samples and the 16 real images once, over both ranks together
    scored = json.loads((run_dir / "scored.json").read_text())
    assert scored == {"checkerboard_fake": 16, "checkerboard_real": 16, "fid_fake": 16, "fid_real": 16,
                      "test_batches": 8, "world_size": 2}
    ref = _single_process_test([*DDP, *GAN], run_dir / "checkpoints" / "last.ckpt", tmp_path / "single")
    single = json.loads((tmp_path / "single" / "scored.json").read_text())
    assert {k: v for k, v in single.items() if k != "world_size"} == {k: v for k, v in scored.items()
                                                                      if k != "world_size"}
    m = res["metrics"]
    # measured: FID and spectral FD equal, the dB values within 7e-7 (float32 sums in another order)
    assert m["test/fid"] == pytest.approx(ref["test/fid"], rel=1e-6)
    for k in ("test/spectral_fd_shape", "test/spectral_fd_artifact"):
        assert m[k] == pytest.approx(ref[k], rel=1e-6), k
    for k in ("test/checkerboard_db", "test/checkerboard_db_ref", "test/spectral_hf_gap_db"):
        assert m[k] == pytest.approx(ref[k], abs=1e-5), k
    assert res["protocol"]["fid"] and "n_fake=16" in json.dumps(res["protocol"])


def test_job_scope_swaps_the_child_command_and_restores_the_process(monkeypatch):
    """The Lightning hooks the scope replaces exist (an upgrade that renames them fails here, not in a sweep),
    are ours inside the scope and Lightning's again afterwards, and the DDP environment is put back."""
    from lightning.pytorch.strategies.launchers import subprocess_script as launcher

    original = launcher._hydra_subprocess_cmd, launcher._launch_process_observer
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_PORT", "12345")
    threads = torch.get_num_threads()
    with distributed.job_scope(["resume=false"]) as job:
        assert launcher._hydra_subprocess_cmd is not original[0]
        assert launcher._launch_process_observer == job.observe
        os.environ.update(LOCAL_RANK="0", MASTER_PORT="999", WORLD_SIZE="2")  # what Lightning's launcher sets
        torch.set_num_threads(1)
    assert (launcher._hydra_subprocess_cmd, launcher._launch_process_observer) == original
    assert "LOCAL_RANK" not in os.environ and "WORLD_SIZE" not in os.environ and os.environ["MASTER_PORT"] == "12345"
    assert torch.get_num_threads() == threads


def test_child_command_runs_the_job_not_the_sweep(zoo_root, tmp_path, monkeypatch):
    """In a multirun job: no -m, the job's own overrides (the swept value, not the list), its run dir."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    cfg = compose_cfg(["upsampler=tconv", "seed=1", "resume=true"], tmp_path)
    hc = HydraConfig.get()
    with read_write(hc), open_dict(hc):
        hc.runtime.output_dir = str(tmp_path / "3_tconv_s1")
        hc.overrides.hydra = ["hydra.mode=MULTIRUN", "hydra.sweep.dir=/x", "hydra/launcher=joblib",
                              "hydra.job.chdir=false", "hydra.searchpath=[file:///my/conf]"]
    monkeypatch.setattr("sys.argv", ["train.py", "-m", "upsampler=nearest,tconv", "seed=0,1"])
    cmd, cwd = distributed.child_command(1, ["resume=false", "ckpt_path=null"])
    assert cfg is not None and cmd[1:3] == ["-m", "upsample_zoo.train"] and "-m" not in cmd[3:]
    assert "upsampler=tconv" in cmd and "seed=1" in cmd and "resume=true" not in cmd
    assert cmd.count("resume=false") == 1 and "ckpt_path=null" in cmd
    assert f"hydra.run.dir='{tmp_path / '3_tconv_s1'}'" in cmd and "hydra.output_subdir=null" in cmd
    assert "hydra.job.chdir=false" in cmd and not any("sweep" in c or "launcher" in c for c in cmd)
    assert "hydra.searchpath=[file:///my/conf]" in cmd  # a user's own config dir still composes the job
    assert cwd == hc.runtime.cwd


@pytest.mark.parametrize("task,strategy", [("segmentation", "ddp"), ("gan", "ddp_find_unused_parameters_true")])
def test_ddp_trainer_configs(zoo_root, tmp_path, task, strategy):
    """trainer=ddp_cpu: CPU processes in fp32 (gloo, Lightning's default backend on CPU); trainer=ddp stays the GPU
    one. The GAN's discriminator step leaves the generator without gradients: DDP must expect unused parameters."""
    cpu = compose_cfg([f"task={task}", "trainer=ddp_cpu"], tmp_path).trainer
    assert (cpu.accelerator, cpu.devices, cpu.precision, cpu.strategy, cpu.sync_batchnorm) == \
        ("cpu", 2, "32-true", strategy, False)
    gpu = compose_cfg([f"task={task}", "trainer=ddp"], tmp_path).trainer
    assert (gpu.accelerator, gpu.strategy, gpu.precision) == ("gpu", strategy, "bf16-mixed")
