"""GAN-task data: the procedural cifar_synthetic set (layout, determinism, content, spectrum, its data module);
the image folders and CIFAR-10 are in test_data_image_folder.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from upsample_zoo.conversions import to_uint8
from upsample_zoo.data.cifar_synthetic import (
    CHUNK,
    SyntheticImageDataModule,
    build_cifar_synthetic,
    generate_images,
    spectral_slope,
)
from upsample_zoo.errors import DataError

from ..helpers.cli import compose_cfg

SMALL = {"num_train": 64, "num_test": 16, "seed": 5}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return build_cifar_synthetic(tmp_path_factory.mktemp("d") / "cifar_synthetic", **SMALL)


def loader_images(loader) -> torch.Tensor:
    return torch.cat(list(loader))


# ----------------------------------------------------------------------------------------------
# cifar_synthetic
# ----------------------------------------------------------------------------------------------


def test_cifar_synthetic_layout(synth):
    train, test = sorted((synth / "train").iterdir()), sorted((synth / "test").iterdir())
    assert [p.name for p in train] == [f"{i:05d}.png" for i in range(64)]
    assert [p.name for p in test] == [f"{i:05d}.png" for i in range(16)]
    assert sorted(p.name for p in synth.iterdir()) == ["meta.json", "test", "train"]
    with Image.open(train[3]) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (32, 32)
        # lossless: the file holds exactly the generated pixels
        assert np.array_equal(np.array(im), generate_images(SMALL["seed"], "train", 3, 1)[0])
    # no temp dir or lock left inside the set
    assert not [p for p in synth.parent.iterdir() if ".tmp-" in p.name]


def test_cifar_synthetic_is_built_once_and_checked(synth):
    meta = synth / "meta.json"
    mtimes = (meta.stat().st_mtime_ns, (synth / "train" / "00000.png").stat().st_mtime_ns)
    assert build_cifar_synthetic(synth, **SMALL) == synth
    assert (meta.stat().st_mtime_ns, (synth / "train" / "00000.png").stat().st_mtime_ns) == mtimes
    with pytest.raises(DataError, match="other parameters"):
        build_cifar_synthetic(synth, **(SMALL | {"num_train": 65}))


@pytest.mark.slow
def test_cifar_synthetic_is_deterministic(tmp_path, synth):
    again = build_cifar_synthetic(tmp_path / "again", **SMALL)
    for name in ("train/00017.png", "test/00009.png"):
        assert np.array_equal(np.array(Image.open(synth / name)), np.array(Image.open(again / name)))
    # image i does not depend on the set's size (chunks are seeded by index): small sets are prefixes
    big = generate_images(5, "train", 0, CHUNK + 10)
    assert np.array_equal(big[:64], generate_images(5, "train", 0, 64))
    assert np.array_equal(big[CHUNK - 2 : CHUNK + 3], generate_images(5, "train", CHUNK - 2, 5))
    assert not np.array_equal(big[:8], generate_images(6, "train", 0, 8))
    assert not np.array_equal(big[:8], generate_images(5, "test", 0, 8))


def test_cifar_synthetic_content_is_varied():
    x = generate_images(0, "train", 0, 256).astype(np.float64)
    assert 60 < x.mean() < 190 and x.std() > 35
    per_image_std = x.reshape(256, -1).std(axis=1)
    assert (per_image_std > 8).mean() > 0.9  # structured, not flat
    colourful = np.abs(x - x.mean(axis=-1, keepdims=True)).mean(axis=(1, 2, 3))
    assert (colourful > 10).mean() > 0.5  # colour images, not grey
    assert len({im.tobytes() for im in x.astype(np.uint8)}) == 256


def test_spectral_slope_is_natural():
    rng = np.random.default_rng(0)
    # the estimator itself: white noise is flat, 1/f-amplitude noise reads about -2
    assert abs(spectral_slope(rng.normal(size=(64, 32, 32)))) < 0.3
    from upsample_zoo.data.noise import pink_noise

    assert -2.4 < spectral_slope(np.stack([pink_noise(rng, (32, 32)) for _ in range(64)])) < -1.6
    slope = spectral_slope(generate_images(0, "train", 0, 512))
    assert -3.0 < slope < -1.5, slope


@pytest.mark.parametrize("shape,dtype", [((24, 20), np.float64), ((3, 16, 16), np.float32)])
def test_pink_noise_is_the_filtered_draw(shape, dtype):
    # one 1/f noise for both synthetic sets: real then imaginary half-spectrum from rng, 1/f^alpha, no DC,
    # each field standardised
    from upsample_zoo.data.noise import pink_noise

    got = pink_noise(np.random.default_rng(4), shape, alpha=1.5, dtype=dtype)
    rng = np.random.default_rng(4)
    h, w = shape[-2:]
    half = (*shape[:-2], h, w // 2 + 1)
    spec = rng.standard_normal(half, dtype=dtype) + 1j * rng.standard_normal(half, dtype=dtype)
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    spec = spec / np.where(radius > 0, radius, 1.0) ** 1.5
    spec[..., 0, 0] = 0
    want = np.fft.irfft2(spec, s=(h, w))
    want = want / want.std(axis=(-2, -1), keepdims=True)
    assert got.shape == shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


@pytest.mark.slow
def test_synthetic_data_module_batches(tmp_path):
    dm = SyntheticImageDataModule(str(tmp_path / "cs"), num_train=64, num_test=16, generator_seed=5,
                                  batch_size=12, val_batch_size=4, num_workers=0, max_ref_images=10,
                                  crop_size=64)
    dm.prepare_data()
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 64 // 12  # drop_last
    for b in batches:
        assert isinstance(b, torch.Tensor) and b.shape == (12, 3, 32, 32) and b.dtype == torch.float32
        assert b.min() >= -1 and b.max() <= 1
    assert torch.cat(batches).min() < -0.9 and torch.cat(batches).max() > 0.9
    val = loader_images(dm.val_dataloader())
    assert val.shape == (10, 3, 32, 32)
    assert torch.equal(val, loader_images(dm.test_dataloader()))
    ref = dm.reference_images()
    assert ref.dtype == torch.uint8 and torch.equal(ref, to_uint8(val))
    d = dm.describe()
    assert d["name"] == "cifar_synthetic" and d["num_train"] == 64
    assert d["num_ref"] == 10 and d["ref_split"] == "train"
    assert d["generator"]["num_train"] == 64 and d["num_skipped"] == 0 and len(d["ref_fingerprint"]) == 16
    # the reference images are real files of the train split, pixel for pixel
    files = dm.ref_set.files
    assert all(f.parent.name == "train" for f in files)
    assert torch.equal(ref[0], torch.from_numpy(np.array(Image.open(files[0]))).permute(2, 0, 1))


@pytest.mark.slow
def test_smoke_config_composes_with_gan_data(tmp_path):
    """debug=smoke sets segmentation keys (crop_size, val_batch_size): the GAN data modules accept them."""
    for data in ("cifar_synthetic", "image_folder", "cifar10"):
        cfg = compose_cfg([f"data={data}", "debug=smoke", f"paths.data_dir={tmp_path}"], tmp_path / "out")
        assert cfg.data.crop_size == 64 and cfg.data.val_batch_size == 2 and cfg.data.num_workers == 0
        if data == "cifar_synthetic":
            cfg.data.num_train, cfg.data.num_test = 8, 4
        dm = instantiate(cfg.data)
        assert dm.batch_size == 2 and dm.val_batch_size == 2 and dm.image_size == 32
        assert dm.root.startswith(str(tmp_path))
        if data == "cifar_synthetic":
            dm.setup()
            assert next(iter(dm.train_dataloader())).shape == (2, 3, 32, 32)
