"""Grid-aligned crops and a frozen encoder's features, computed once per image and cached on disk.

``data.augment=grid_crop`` trains on random crops whose corner sits on the encoder's coarsest grid
(``data.grid`` px, 32 for every encoder here), with no rescaling and no flip. Such a crop of the image
and the same window of the full image's feature maps are exactly what the network would compute on the
whole image, so a cached feature map serves every epoch without changing what is learnt: the one
augmentation that is exact in feature space. (A flip or a rescale is not: the Inception's kernels are
not symmetric, and its features of a rescaled image are not a rescaled feature map.)

The cache (:class:`FeatureCache`) lives under ``<paths.cache_dir>/encoder_features/<key>/``, one float16
file per image named by the digest of the image file's bytes. The key, like the FID statistics', is
everything that decides the features: the encoder, its weights' digest, channels and strides, the input
transform, the storage dtype and the library versions. A sweep's jobs share it: the first job to need an
image computes it under a file lock (with a progress bar), every file is written atomically, and a
second job finds them all and runs the encoder on no image.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from filelock import FileLock
from torch.utils.data import Dataset

from upsample_zoo.atomic import atomic_write_bytes, atomic_write_json
from upsample_zoo.data.voc import load_pair, pad_collate

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
INPUT = "full image, ImageNet-normalised float32 (data/voc.py eval_transform), no resize"


def file_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:20]


class FeatureCache:
    """One frozen encoder's features of whole images, on disk (float16: half the disk of float32, and the
    same rounding for every operator's run)."""

    def __init__(self, encoder: torch.nn.Module, cache_dir: str | Path) -> None:
        import torchvision

        self.encoder = encoder
        self.key = {"format": CACHE_FORMAT, **encoder.describe(), "input": INPUT, "dtype": "float16",
                    "torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0]}
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(cache_dir) / "encoder_features" / f"{encoder.name}-{digest}"
        self._names: dict[str, str] = {}

    def path(self, image_path: str) -> Path:
        if image_path not in self._names:
            self._names[image_path] = file_digest(image_path)
        return self.dir / f"{self._names[image_path]}.pt"

    def ensure(self, pairs: list[tuple[str, str]], transform) -> int:
        """Compute the features of every image of ``pairs`` not cached yet; returns how many were computed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "key.json").exists():
            atomic_write_json(self.dir / "key.json", self.key)
        if all(self.path(img).exists() for img, _ in pairs):
            return 0
        from tqdm.auto import tqdm

        with FileLock(str(self.dir / ".lock")):
            missing = [(img, m) for img, m in pairs if not self.path(img).exists()]  # another job may have done them
            for img, m in tqdm(missing, desc=f"encoder features ({self.encoder.name}, once)", unit="img",
                               disable=not missing):
                image, _ = transform(*load_pair(img, m))
                maps = self.encoder(image[None])
                buf = io.BytesIO()
                torch.save([f[0].to(torch.float16).contiguous() for f in maps], buf)
                atomic_write_bytes(self.path(img), buf.getvalue())
        if missing:
            log.info("encoder features: %d images computed into %s (%.1f MB on disk)", len(missing), self.dir,
                     self.size_bytes() / 1e6)
        return len(missing)

    def load(self, image_path: str) -> list[torch.Tensor]:
        """The image's maps, memory-mapped: a crop reads only its window from disk."""
        return torch.load(self.path(image_path), mmap=True, weights_only=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.pt"))


class GridCropDataset(Dataset):
    """(image, mask[, features]) of a VOC split: whole images for evaluation; for training a random
    ``crop`` x ``crop`` window whose corner is a multiple of ``grid`` px (shorter at an image's edge, where
    :func:`encoded_collate` pads it). ``cache`` adds the window of each level's cached feature map."""

    def __init__(self, pairs: list[tuple[str, str]], lut: torch.Tensor, transform, crop: int | None,
                 grid: int = 32, cache: FeatureCache | None = None, strides: list[int] | None = None) -> None:
        self.pairs, self.lut, self.transform = pairs, lut, transform
        self.crop, self.grid, self.cache, self.strides = crop, grid, cache, strides or []

    def __len__(self) -> int:
        return len(self.pairs)

    def _corner(self, n: int) -> int:
        cells = math.ceil(n / self.grid) - self.crop // self.grid  # grid positions a window can start at, - 1
        return self.grid * int(torch.randint(0, cells + 1, ()).item()) if cells > 0 else 0

    def __getitem__(self, i: int):
        image, mask = load_pair(*self.pairs[i])
        image, mask = self.transform(image, self.lut[mask])
        maps = self.cache.load(self.pairs[i][0]) if self.cache is not None else None
        if self.crop:
            top, left = self._corner(mask.shape[-2]), self._corner(mask.shape[-1])
            image = image[..., top : top + self.crop, left : left + self.crop]
            mask = mask[..., top : top + self.crop, left : left + self.crop]
            if maps is not None:
                maps = [f[..., top // s : (top + self.crop) // s, left // s : (left + self.crop) // s]
                        for f, s in zip(maps, self.strides)]
        if maps is None:
            return image, mask
        return image, mask, [f.float() for f in maps]


def encoded_collate(batch: list[tuple]) -> tuple:
    """:func:`upsample_zoo.data.voc.pad_collate`, plus each level's feature maps padded (0) to the batch's
    largest: ``(images, masks, sizes, features)``."""
    images, masks, sizes = pad_collate([b[:2] for b in batch])
    if len(batch[0]) == 2:
        return images, masks, sizes
    levels = []
    for maps in zip(*(b[2] for b in batch)):
        h, w = max(f.shape[-2] for f in maps), max(f.shape[-1] for f in maps)
        levels.append(torch.stack([F.pad(f, (0, w - f.shape[-1], 0, h - f.shape[-2])) for f in maps]))
    return images, masks, sizes, levels


def crop_features(features: list[torch.Tensor], i: int, h: int, w: int, strides: list[int]) -> list[torch.Tensor]:
    """Image i's own maps out of a padded batch, for an image of true size (h, w)."""
    return [f[i : i + 1, :, : math.ceil(h / s), : math.ceil(w / s)] for f, s in zip(features, strides)]
