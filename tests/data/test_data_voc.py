"""The embedded VOC-layout set, the VOC loader and its joint transforms, and data errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from upsample_zoo.data.voc import (
    VOC_CLASSES,
    VOCDataModule,
    class_lookup,
    load_pair,
    open_voc,
    pad_collate,
    train_transform,
    voc_palette,
)
from upsample_zoo.data.voc_synthetic import build_voc_synthetic
from upsample_zoo.errors import ConfigError, DataError

SMALL = dict(num_train=12, num_val=4, height=60, width=80, seed=3)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return build_voc_synthetic(tmp_path_factory.mktemp("d") / "voc_synthetic", **SMALL)


def test_synthetic_has_exact_voc_layout(synth):
    voc = synth / "VOCdevkit" / "VOC2012"
    train = (voc / "ImageSets/Segmentation/train.txt").read_text().split()
    val = (voc / "ImageSets/Segmentation/val.txt").read_text().split()
    assert len(train) == 12 and len(val) == 4 and not set(train) & set(val)
    seen = set()
    for name in train + val:
        with Image.open(voc / "JPEGImages" / f"{name}.jpg") as im:
            assert im.format == "JPEG" and im.size == (80, 60)
        with Image.open(voc / "SegmentationClass" / f"{name}.png") as m:
            assert m.format == "PNG" and m.mode == "P"
            assert m.getpalette()[: 3 * 21] == voc_palette()[: 3 * 21]
            seen |= set(np.unique(np.array(m)).tolist())
    assert 255 in seen and 0 in seen
    assert len(seen - {0, 255}) >= 3 and seen <= set(range(21)) | {255}


def test_void_band_surrounds_objects(synth):
    voc = synth / "VOCdevkit" / "VOC2012"
    m = np.array(Image.open(voc / "SegmentationClass" / "synth_train_00000.png"))
    # no object pixel touches background directly: a 255 band sits between them
    obj = (m != 0) & (m != 255)
    bg = m == 0
    horizontal = (obj[:, 1:] & bg[:, :-1]) | (obj[:, :-1] & bg[:, 1:])
    vertical = (obj[1:] & bg[:-1]) | (obj[:-1] & bg[1:])
    assert obj.any() and not horizontal.any() and not vertical.any()


def test_generation_is_deterministic_and_reused(tmp_path, synth):
    again = build_voc_synthetic(tmp_path / "other", **SMALL)
    a = np.array(Image.open(synth / "VOCdevkit/VOC2012/SegmentationClass/synth_val_00002.png"))
    b = np.array(Image.open(again / "VOCdevkit/VOC2012/SegmentationClass/synth_val_00002.png"))
    assert np.array_equal(a, b)
    mtime = (again / "meta.json").stat().st_mtime_ns
    build_voc_synthetic(tmp_path / "other", **SMALL)
    assert (again / "meta.json").stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="other parameters"):
        build_voc_synthetic(tmp_path / "other", **(SMALL | {"seed": 4}))


def test_joint_transform_keeps_image_and_mask_aligned():
    """Label each pixel by the image's own red channel, transform, and check they still agree."""
    from torchvision import tv_tensors

    torch.manual_seed(0)
    labels = torch.randint(0, 5, (6, 8)).repeat_interleave(10, 0).repeat_interleave(10, 1)  # 10-px blocks
    image = tv_tensors.Image((labels * 50).to(torch.uint8).expand(3, -1, -1).clone())
    mask = tv_tensors.Mask(labels)
    for _ in range(5):
        x, y = train_transform(32, (0.3, 1.0))(image, mask)
        assert isinstance(y, tv_tensors.Mask) and y.dtype == torch.int64 and x.dtype == torch.float32
        assert x.shape[-2:] == y.shape[-2:] == (32, 32)
        red = (x[0] * 0.229 + 0.485) * 255  # undo Normalize + ToDtype(scale)
        recovered = torch.round(red / 50).long()
        # nearest for the mask, antialiased bilinear for the image: interiors must agree
        assert (recovered == y).float().mean() > 0.75
        assert (recovered == y.flip(-1)).float().mean() < 0.6  # a misaligned pair would look like this
        assert set(y.unique().tolist()) <= set(range(5))


def test_loader_reads_palette_indices_and_subset(synth):
    dm = VOCDataModule(root=str(synth), keep_classes=["bird", "person"], num_classes=3, crop_size=32,
                       batch_size=2, val_batch_size=3, num_workers=0)
    dm.setup()
    x, y, sizes = next(iter(dm.val_dataloader()))
    assert x.shape == (3, 3, 60, 80) and y.shape == (3, 60, 80)  # original resolution, no resize
    assert sizes.tolist() == [[60, 80]] * 3
    assert set(y.unique().tolist()) <= {0, 1, 2, 255}
    raw = np.array(Image.open(dm.val_set.pairs[0][1]))
    names, lut = class_lookup(["bird", "person"])
    assert torch.equal(y[0], lut[torch.from_numpy(raw.astype(np.int64))])
    assert names == ["background", "bird", "person"]


def test_pad_collate_pads_masks_with_void_and_returns_true_sizes():
    a = (torch.ones(3, 4, 5), torch.zeros(4, 5, dtype=torch.int64))
    b = (torch.ones(3, 6, 3), torch.ones(6, 3, dtype=torch.int64))
    x, y, sizes = pad_collate([a, b])
    assert x.shape == (2, 3, 6, 5) and y.shape == (2, 6, 5)
    assert sizes.dtype == torch.int64 and sizes.tolist() == [[4, 5], [6, 3]]  # each image's true (h, w)
    assert (y[0, 4:] == 255).all() and (y[1, :, 3:] == 255).all() and (x[1, :, :, 3:] == 0).all()


def test_missing_dataset_names_root_download_and_offline_option(tmp_path):
    with pytest.raises(DataError) as e:
        open_voc(tmp_path / "nowhere", "train", download=False)
    msg = str(e.value)
    assert "data.root" in msg and "data.download" in msg and "data=voc_synthetic" in msg


def test_mask_with_invalid_values_names_file_and_values(tmp_path):
    img = tmp_path / "a.jpg"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img)
    bad = tmp_path / "a.png"
    m = Image.fromarray(np.array([[0, 1, 30, 255]] * 4, np.uint8), mode="P")
    m.putpalette(voc_palette())
    m.save(bad)
    with pytest.raises(DataError, match=r"a\.png.*\[30\]"):
        load_pair(str(img), str(bad))


def test_corrupt_image_names_file(tmp_path):
    img = tmp_path / "b.jpg"
    img.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"b\.jpg"):
        load_pair(str(img), str(img))


def test_num_classes_mismatch_is_a_config_error(synth):
    with pytest.raises(ConfigError, match="data.num_classes=21"):
        VOCDataModule(root=str(synth), keep_classes=["cat"], num_classes=21)
    assert len(VOC_CLASSES) == 21


def test_data_modules_declare_their_extras_as_protocols():
    """train.py and the tasks ask the data modules' Protocols (data/extras.py), not hasattr: each module offers
    exactly what it implements."""
    from upsample_zoo.data import (
        CIFAR10DataModule,
        ImageFolderDataModule,
        SyntheticImageDataModule,
        SyntheticVOCDataModule,
        VOCDataModule,
    )
    from upsample_zoo.data.extras import CachesEncoderFeatures, Describes, HasReferenceImages

    def offers(cls):
        dm = cls.__new__(cls)  # no data needed: the Protocols read the methods
        return {p.__name__ for p in (Describes, HasReferenceImages, CachesEncoderFeatures) if isinstance(dm, p)}

    assert offers(VOCDataModule) == offers(SyntheticVOCDataModule) == {"Describes", "CachesEncoderFeatures"}
    for cls in (CIFAR10DataModule, ImageFolderDataModule, SyntheticImageDataModule):
        assert offers(cls) == {"Describes", "HasReferenceImages"}, cls.__name__
    assert not isinstance(object(), Describes)
