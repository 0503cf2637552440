"""The frozen encoder's feature cache: computed once per image, shared, keyed, and exact for grid crops."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from torchvision.datasets import VOCSegmentation

from upsample_zoo.data.encoded import FeatureCache, GridCropDataset, encoded_collate
from upsample_zoo.data.voc import class_lookup, eval_transform, load_pair
from upsample_zoo.data.voc_synthetic import build_voc_synthetic
from upsample_zoo.errors import ConfigError
from upsample_zoo.models.encoders import ResNetEncoder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[tuple[str, str]]:
    root = build_voc_synthetic(tmp_path_factory.mktemp("voc"), num_train=4, num_val=2, height=70, width=100)
    voc = VOCSegmentation(str(root), year="2012", image_set="train", download=False)
    return list(zip(voc.images, voc.masks))


def _encoder(seed: int = 0) -> ResNetEncoder:
    torch.manual_seed(seed)
    return ResNetEncoder("resnet18", weights=None, freeze=True)


def _grid_crops(pairs, tmp_path, *crops: int | None) -> tuple[ResNetEncoder, list[GridCropDataset]]:
    """``_encoder()`` with its feature cache of ``pairs`` filled, and one grid-crop dataset (grid 32) per
    ``crops`` size reading that cache."""
    enc = _encoder()
    cache = FeatureCache(enc, tmp_path)
    cache.ensure(pairs, eval_transform())
    _, lut = class_lookup(None)
    return enc, [GridCropDataset(pairs, lut, eval_transform(), crop=c, grid=32, cache=cache, strides=enc.strides)
                 for c in crops]


def test_second_job_runs_the_encoder_on_no_image(pairs, tmp_path):
    first = _encoder()
    assert FeatureCache(first, tmp_path).ensure(pairs, eval_transform()) == len(pairs)
    assert first.images_encoded == len(pairs)
    second = _encoder()  # a new process would build the same encoder from the same weights
    cache = FeatureCache(second, tmp_path)
    assert cache.ensure(pairs, eval_transform()) == 0 and second.images_encoded == 0
    image, _ = eval_transform()(*load_pair(*pairs[0]))
    for got, want in zip(cache.load(pairs[0][0]), first(image[None])):
        torch.testing.assert_close(got.float(), want[0], rtol=2e-3, atol=2e-3)  # stored as float16
    key = json.loads((cache.dir / "key.json").read_text())
    assert key["weights"] == second.weights_digest and key["dtype"] == "float16"


def test_other_weights_get_their_own_entry(pairs, tmp_path):
    a, b = FeatureCache(_encoder(0), tmp_path), FeatureCache(_encoder(1), tmp_path)
    assert a.dir != b.dir
    a.ensure(pairs[:1], eval_transform())
    assert b.ensure(pairs[:1], eval_transform()) == 1


def test_concurrent_jobs_compute_each_image_once(pairs, tmp_path):
    encoders = [_encoder(), _encoder()]
    done = []
    def job(e):
        done.append(FeatureCache(e, tmp_path).ensure(pairs, eval_transform()))

    threads = [threading.Thread(target=job, args=(e,)) for e in encoders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done) == [0, len(pairs)]
    assert sum(e.images_encoded for e in encoders) == len(pairs)
    assert len(list(FeatureCache(encoders[0], tmp_path).dir.glob("*.pt"))) == len(pairs)


def test_grid_crop_is_the_same_window_of_image_mask_and_every_map(pairs, tmp_path):
    enc, (crop, whole) = _grid_crops(pairs, tmp_path, 32, None)
    corners = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, mask, maps = crop[1]
        full_image, full_mask, full_maps = whole[1]  # 70 x 100: corners at 0 or 32 (rows), 0..64 (columns)
        top, left = next((t, lft) for t in range(0, 70, 32) for lft in range(0, 100, 32)
                         if torch.equal(full_image[..., t : t + 32, lft : lft + 32], image))
        corners.add((top, left))
        assert torch.equal(full_mask[top : top + 32, left : left + 32], mask)
        for f, full, s in zip(maps, full_maps, enc.strides):
            assert torch.equal(f, full[..., top // s : (top + 32) // s, left // s : (left + 32) // s])
    assert len(corners) > 3 and all(t % 32 == 0 and lft % 32 == 0 for t, lft in corners)


def test_collate_pads_every_level_to_the_batch(pairs, tmp_path):
    enc, (ds,) = _grid_crops(pairs, tmp_path, 64)
    images, masks, sizes, maps = encoded_collate([ds[0], ds[1]])
    # a window may run past the image's last row (70 rows, corner 32: 38 of them), never past its feature grid
    assert images.shape[-2:] == masks.shape[-2:] == (64, 64)
    assert all(h <= 64 and w <= 64 for h, w in sizes.tolist())
    for f, s in zip(maps, enc.strides):
        assert f.shape[-2:] == (64 // s, 64 // s)
        for i, (h, w) in enumerate(sizes.tolist()):  # the padding of the shorter window's maps is 0
            assert not f[i, :, -(-h // s) :].any() and not f[i, :, :, -(-w // s) :].any()


def test_augmentations_that_are_not_exact_in_feature_space_are_refused(tmp_path):
    from upsample_zoo.data.voc import VOCDataModule

    dm = VOCDataModule(root=str(tmp_path), crop_size=64)
    with pytest.raises(ConfigError, match="grid_crop"):
        dm.use_encoder_cache(_encoder(), tmp_path)
    with pytest.raises(ConfigError, match="multiple of data.grid"):
        VOCDataModule(root=str(tmp_path), crop_size=50, augment="grid_crop")


