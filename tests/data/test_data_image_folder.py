"""Image folders and CIFAR-10: discovery, resizing, the train/test layout and reference split, seeded caps, corrupt
and missing files as one clear line, the torchvision module offline, the real CIFAR-10 JPEGs, and the floor set."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from upsample_zoo.conversions import to_uint8
from upsample_zoo.data.cifar10 import CIFAR10DataModule
from upsample_zoo.data.cifar_synthetic import (
    spectral_slope,
)
from upsample_zoo.data.image_files import ImageFileDataset, check_header, find_images
from upsample_zoo.data.image_folder import ImageFolderDataModule, _UnlabelledImageDataModule
from upsample_zoo.errors import ConfigError, DataError

from ..helpers.cli import CIFAR_JPEG
from ..helpers.data import extract_subset
from ..helpers.run_if import RunIf


def write_image(path: Path, size=(32, 32), seed=0, fmt=None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return arr


def loader_images(loader) -> torch.Tensor:
    return torch.cat(list(loader))


def test_recursive_discovery_flat_and_class_folders(tmp_path):
    flat = tmp_path / "flat"
    exts = ["png", "jpg", "JPEG", "bmp", "webp", "png"]
    for i, ext in enumerate(exts):
        write_image(flat / f"img{i}.{ext}", size=(40, 60), seed=i)
    (flat / "notes.txt").write_text("not an image")
    write_image(flat / ".hidden.png")
    write_image(flat / ".cache" / "x.png")
    files = find_images(flat)
    assert [f.name for f in files] == [f"img{i}.{ext}" for i, ext in enumerate(exts)]

    nested = tmp_path / "nested"
    for cls in ("dog", "cat"):
        for i in range(3):
            write_image(nested / cls / f"{i}.png", seed=i)
    write_image(nested / "cat" / "deeper" / "x.jpg")
    write_image(nested / "loose.png")
    rel = [f.relative_to(nested).as_posix() for f in find_images(nested)]
    assert rel == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/deeper/x.jpg", "dog/0.png", "dog/1.png",
                   "dog/2.png", "loose.png"]

    for root, n in ((flat, 6), (nested, 8)):
        dm = ImageFolderDataModule(str(root), batch_size=3, num_workers=0)
        dm.setup()
        assert dm.describe()["num_train"] == n and dm.describe()["test_dir"] is None
        b = next(iter(dm.train_dataloader()))
        assert b.shape == (3, 3, 32, 32) and -1 <= b.min() and b.max() <= 1  # 40x60 -> resize + centre crop


def test_resize_and_centre_crop(tmp_path):
    arr = np.zeros((40, 80, 3), np.uint8)  # -> 20x40, then the crop keeps the middle 20 of 40 columns
    arr[:, 16:64] = 255  # white a little beyond the crop, black outside: any off-centre crop shows black
    Image.fromarray(arr).save(tmp_path / "a.png")
    dm = ImageFolderDataModule(str(tmp_path), image_size=20, batch_size=1, num_workers=0)
    ref = dm.reference_images()
    assert ref.shape == (1, 3, 20, 20) and (ref == 255).all()


def test_train_test_layout_and_ref_split(tmp_path):
    for i in range(6):
        write_image(tmp_path / "train" / "a" / f"{i}.png", seed=i)
    for i in range(3):
        write_image(tmp_path / "test" / "b" / f"{i}.png", seed=10 + i)
    dm = ImageFolderDataModule(str(tmp_path), batch_size=2, num_workers=0, ref_split="test")
    dm.setup()
    assert len(dm.train_set) == 6 and all("train" in f.parts for f in dm.train_set.files)
    assert len(dm.ref_set) == 3 and all("test" in f.parts for f in dm.ref_set.files)
    # explicit: root is the training folder; the nested test folder is still excluded from training
    dm = ImageFolderDataModule(str(tmp_path), train_subdir=None, test_subdir="test", batch_size=2,
                               num_workers=0)
    dm.setup()
    assert len(dm.train_set) == 6
    with pytest.raises(ConfigError, match="ref_split=test"):
        ImageFolderDataModule(str(tmp_path / "train"), ref_split="test", batch_size=2, num_workers=0).setup()


def test_caps_take_a_seeded_mixed_subset(tmp_path):
    for cls in ("a", "b", "c"):
        for i in range(10):
            write_image(tmp_path / cls / f"{i:02d}.png", seed=i)
    kw = {"batch_size": 2, "num_workers": 0, "max_images": 6, "max_ref_images": 4}
    one, two = ImageFolderDataModule(str(tmp_path), **kw), ImageFolderDataModule(str(tmp_path), **kw)
    one.setup(), two.setup()
    assert one.train_set.files == two.train_set.files and len(one.train_set) == 6
    assert len({f.parent.name for f in one.train_set.files}) > 1  # not just the first class folder
    assert set(one.ref_set.files) <= set(one.train_set.files)  # nested subsets, same seed
    assert one.describe()["ref_fingerprint"] == two.describe()["ref_fingerprint"]
    write_image(one.ref_set.files[0], seed=99)  # same name and size, new pixels: a new reference set
    changed = ImageFolderDataModule(str(tmp_path), **kw)
    changed.setup()
    assert changed.describe()["ref_fingerprint"] != one.describe()["ref_fingerprint"]
    other = ImageFolderDataModule(str(tmp_path), **kw | {"subset_seed": 1})
    other.setup()
    assert other.train_set.files != one.train_set.files
    assert other.describe()["ref_fingerprint"] != one.describe()["ref_fingerprint"]


def test_corrupt_file_is_named_or_skipped(tmp_path):
    for i in range(5):
        write_image(tmp_path / f"{i}.png", seed=i)
    (tmp_path / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (tmp_path / "4.png").read_bytes()
    (tmp_path / "4.png").write_bytes(good[: len(good) // 2])  # truncated
    # not an image at all: setup fails at once, one line naming the file
    with pytest.raises(DataError, match=r"^corrupt or unreadable image .*2\.png: [^\n]*$"):
        ImageFolderDataModule(str(tmp_path), batch_size=1, num_workers=0).setup()
    # damaged after a valid header: passes the cheap check, then the read fails naming the file
    check_header(tmp_path / "4.png")
    with pytest.raises(DataError, match=r"corrupt or unreadable image .*4\.png"):
        list(ImageFileDataset([tmp_path / "4.png"], 32))
    dm = ImageFolderDataModule(str(tmp_path), batch_size=1, num_workers=0, skip_corrupt=True)
    dm.setup()
    d = dm.describe()
    assert d["num_train"] == 3 and d["num_skipped"] == 2
    assert any("2.png" in s for s in d["skipped_corrupt"]) and any("4.png" in s for s in d["skipped_corrupt"])
    assert loader_images(dm.val_dataloader()).shape == (3, 3, 32, 32)
    # caps are filled past corrupt files
    dm = ImageFolderDataModule(str(tmp_path), batch_size=1, num_workers=0, skip_corrupt=True, max_images=3)
    dm.setup()
    assert len(dm.train_set) == 3


def test_missing_or_empty_root_is_one_clear_line(tmp_path):
    with pytest.raises(DataError) as e:
        ImageFolderDataModule(str(tmp_path / "nope"), num_workers=0).setup()
    msg = str(e.value)
    assert "\n" not in msg and f"data.root={tmp_path / 'nope'}" in msg
    assert "data.download=true" in msg and "data=cifar_synthetic" in msg
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images .* found under data\.root=.*data=cifar_synthetic"):
        ImageFolderDataModule(str(tmp_path / "empty"), num_workers=0).setup()
    write_image(tmp_path / "few" / "a.png")
    with pytest.raises(DataError, match="fewer than one batch"):
        ImageFolderDataModule(str(tmp_path / "few"), batch_size=4, num_workers=0).setup()
    with pytest.raises(ConfigError):
        ImageFolderDataModule(str(tmp_path), max_images=0)


def test_cifar10_missing_without_download(tmp_path):
    dm = CIFAR10DataModule(str(tmp_path / "c10"), download=False, num_workers=0)
    with pytest.raises(DataError) as e:
        dm.prepare_data()
    msg = str(e.value)
    assert "\n" not in msg and f"data.root={tmp_path / 'c10'}" in msg and "data.download=true" in msg
    assert "data=cifar_synthetic" in msg and "data=image_folder" in msg


def test_cifar10_download_failure_offline(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    def no_network(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(CIFAR10, "download", no_network)
    with pytest.raises(DataError) as e:
        CIFAR10DataModule(str(tmp_path), download=True, num_workers=0).prepare_data()
    msg = str(e.value)
    assert "\n" not in msg and "could not download CIFAR-10" in msg and f"data.root={tmp_path}" in msg
    assert "data.download=false" in msg and "data=cifar_synthetic" in msg and "data=image_folder" in msg


def test_cifar10_module_conventions(monkeypatch):
    from upsample_zoo.data import cifar10

    rng = np.random.default_rng(0)
    fake = {True: rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8),
            False: rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)}

    class Fake:
        def __init__(self, train):
            self.data = fake[train]

    monkeypatch.setattr(cifar10, "open_cifar10", lambda root, train, download: Fake(train))
    dm = CIFAR10DataModule("unused", batch_size=8, val_batch_size=5, num_workers=0, max_images=40,
                           max_ref_images=10, ref_split="test", crop_size=64)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (8, 3, 32, 32) and b.dtype == torch.float32 and -1 <= b.min() and b.max() <= 1
    assert len(dm.train_dataloader()) == 5
    ref = dm.reference_images()
    assert ref.shape == (10, 3, 32, 32)
    idx = dm.ref_set.indices
    assert torch.equal(ref, torch.from_numpy(fake[False][idx]).permute(0, 3, 1, 2))
    assert torch.equal(to_uint8(loader_images(dm.val_dataloader())), ref)
    assert dm.describe()["name"] == "cifar10" and dm.describe()["num_ref"] == 10


@pytest.mark.slow
@RunIf(shared=CIFAR_JPEG)
def test_real_cifar10_jpeg_subset(tmp_path):
    assert extract_subset(CIFAR_JPEG, tmp_path, {"train": 40, "test": 20}) == {"train": 40, "test": 20}
    dm = ImageFolderDataModule(str(tmp_path), batch_size=8, val_batch_size=8, num_workers=0, ref_split="test")
    dm.setup()
    d = dm.describe()
    assert d["num_train"] == 40 and d["num_ref"] == 20 and d["test_dir"].endswith("test")
    batches = list(dm.train_dataloader())
    assert len(batches) == 5 and all(b.shape == (8, 3, 32, 32) for b in batches)
    ref = dm.reference_images()
    first = dm.ref_set.files[0]
    with Image.open(first) as im:
        raw = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(ref[0], raw)  # 32x32 CIFAR passes through resize/crop untouched
    assert -3.5 < spectral_slope(ref.permute(0, 2, 3, 1).numpy()) < -1.5


def test_floor_set_is_disjoint_from_the_reference_set_and_seeded(tmp_path):
    for cls in ("a", "b"):
        for i in range(15):
            write_image(tmp_path / cls / f"{i:02d}.png", seed=i + (100 if cls == "b" else 0))
    kw = {"batch_size": 2, "num_workers": 0, "max_images": 8, "max_ref_images": 10}
    dm = ImageFolderDataModule(str(tmp_path), **kw)
    dm.setup()
    floor = dm.floor_set(6)
    assert len(floor) == 6 and not set(floor.files) & set(dm.ref_set.files)
    assert set(floor.files) <= set(find_images(tmp_path))
    again = ImageFolderDataModule(str(tmp_path), **kw)
    assert again.floor_set(6).files == floor.files and again.floor_set(6).fingerprint() == floor.fingerprint()
    rest = dm.floor_set(100)  # only 20 are left once the 10 reference images are out
    assert len(rest) == 20 and set(rest.files) | set(dm.ref_set.files) == set(find_images(tmp_path))
    assert len(ImageFolderDataModule(str(tmp_path), **kw | {"max_ref_images": None}).floor_set(5)) == 0


def test_floor_set_of_cifar10_module(monkeypatch):
    from upsample_zoo.data import cifar10

    data = np.random.default_rng(1).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)

    class Fake:
        def __init__(self, train):
            self.data = data

    monkeypatch.setattr(cifar10, "open_cifar10", lambda root, train, download: Fake(train))
    dm = CIFAR10DataModule("unused", batch_size=4, num_workers=0, max_ref_images=12)
    dm.setup()
    floor = dm.floor_set(7)
    assert len(floor) == 7 and not set(floor.indices) & set(dm.ref_set.indices)
    got = torch.stack([floor.load_uint8(i) for i in range(7)])
    assert torch.equal(got, torch.from_numpy(data[floor.indices]).permute(0, 3, 1, 2))
    assert len(dm.floor_set(100)) == 18 and floor.fingerprint() != dm.ref_set.fingerprint()


def test_floor_images_are_checked_like_the_others(tmp_path):
    """The real-vs-real floor is drawn from the reference split outside the reference set, at test time. A
    corrupt file there used to fail the run after the whole fit, even with skip_corrupt=true: it is now
    skipped (and counted) with skip_corrupt, and named at once without it, when the floor is chosen."""
    for i in range(10):
        write_image(tmp_path / f"{i}.png", seed=i)
    kw = {"batch_size": 1, "num_workers": 0, "max_images": 4, "max_ref_images": 4}
    clean = ImageFolderDataModule(str(tmp_path), **kw).floor_set(6)
    assert len(clean) == 6
    # the same files as the generic draw (so the cached floor statistics of earlier runs still match)
    base = _UnlabelledImageDataModule.floor_set(ImageFolderDataModule(str(tmp_path), **kw), 6)
    assert base.files == clean.files
    bad = clean.files[2]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=rf"^corrupt or unreadable image .*{bad.name}: [^\n]*$"):
        ImageFolderDataModule(str(tmp_path), **kw).floor_set(6)
    dm = ImageFolderDataModule(str(tmp_path), skip_corrupt=True, **kw)
    floor = dm.floor_set(6)
    assert [f.name for f in floor.files] == [f.name for f in clean.files if f != bad]  # all that is left
    assert all(floor.load_uint8(i).shape == (3, 32, 32) for i in range(len(floor)))
    assert dm.describe()["num_skipped"] == 1 and bad.name in dm.describe()["skipped_corrupt"][0]


def test_a_file_where_the_root_folder_should_be_says_so(tmp_path):
    """It used to say "does not exist", which sends the user looking for a missing path."""
    from upsample_zoo.data.voc import open_voc

    f = tmp_path / "images.tar"
    f.write_text("an archive, not unpacked")
    with pytest.raises(DataError, match=r"^image folder data.root=.*images.tar is a file, not a folder; [^\n]*$"):
        ImageFolderDataModule(str(f), num_workers=0).setup()
    with pytest.raises(DataError, match=r"^data.root=.*images.tar is a file, not a folder; [^\n]*data=voc_synthetic"):
        open_voc(f, "train", download=False)
    with pytest.raises(DataError, match="does not exist"):  # a missing path still says that
        ImageFolderDataModule(str(tmp_path / "nope"), num_workers=0).setup()
