"""PASCAL VOC 2012 segmentation: the VOC facts (classes, palette), the loader, the data module. The embedded
synthetic set in the same layout: ``voc_synthetic.py``."""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.datasets import VOCSegmentation
from torchvision.transforms import v2

from upsample_zoo.constants import IMAGENET_MEAN, IMAGENET_STD, VOID
from upsample_zoo.data.epoch_sampling import make_loader
from upsample_zoo.errors import ConfigError, DataError

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def voc_palette() -> list[int]:
    """The official VOC colour map (bit-interleaved), 256 RGB entries, flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


VALID_LABELS = frozenset(range(len(VOC_CLASSES))) | {VOID}
# random_resized_crop: scale + crop + flip (the default); grid_crop: crops on the encoder's grid, exact in a
# frozen encoder's feature space (data/encoded.py)
AUGMENTS = ("random_resized_crop", "grid_crop")


def open_voc(root: str | Path, image_set: str, download: bool, year: str = "2012") -> VOCSegmentation:
    """torchvision's VOCSegmentation for the file lists (and the download), with one-line errors."""
    voc_root = Path(root) / "VOCdevkit" / f"VOC{year}"
    offline = "or use the embedded offline set with data=voc_synthetic"
    if Path(root).exists() and not Path(root).is_dir():
        raise DataError(f"data.root={root} is a file, not a folder; point data.root at the folder holding "
                        f"VOCdevkit/, {offline}")
    if not voc_root.is_dir():
        if not download:
            raise DataError(
                f"VOC {year} not found under data.root={root} (expected {voc_root}); set data.download=true "
                f"to fetch it, point data.root at a folder holding VOCdevkit/, {offline}"
            )
        try:
            VOCSegmentation(str(root), year=year, image_set=image_set, download=True)
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            raise DataError(
                f"could not download VOC {year} into data.root={root} ({type(e).__name__}: {e}); with no "
                f"network set data.download=false and data.root to a local copy, {offline}"
            ) from None
    split_file = voc_root / "ImageSets" / "Segmentation" / f"{image_set}.txt"
    if not split_file.is_file():
        raise DataError(f"VOC split file {split_file} is missing; is data.root={root} a VOC 2012 copy?")
    ds = VOCSegmentation(str(root), year=year, image_set=image_set, download=False)
    if len(ds) == 0:
        raise DataError(f"VOC split {image_set!r} under data.root={root} lists no images ({split_file} is empty)")
    return ds


def load_pair(image_path: str, mask_path: str) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Read an image and its palette mask (indices kept, never converted to RGB), validating both."""
    try:
        with Image.open(image_path) as im:
            image = np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"corrupt or unreadable image {image_path}: {e}") from None
    try:
        with Image.open(mask_path) as m:
            if m.mode not in ("P", "L"):
                raise DataError(
                    f"mask {mask_path} has mode {m.mode}; VOC masks are palette ('P') PNGs holding class indices"
                )
            mask = np.array(m)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"corrupt or unreadable mask {mask_path}: {e}") from None
    bad = sorted(set(np.unique(mask).tolist()) - VALID_LABELS)
    if bad:
        raise DataError(f"mask {mask_path} holds values {bad[:10]} outside the VOC labels {{0..20, 255}}")
    if mask.shape != image.shape[:2]:
        raise DataError(f"mask {mask_path} is {mask.shape[::-1]} but its image is {image.shape[1::-1]}")
    return (
        tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
        tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64))),
    )


def class_lookup(keep_classes: Sequence[str] | None) -> tuple[list[str], torch.Tensor]:
    """Class names of the subset and a 256-entry LUT from VOC indices to subset indices.

    Classes not kept map to background; void stays 255.
    """
    lut = torch.zeros(256, dtype=torch.int64)
    lut[VOID] = VOID
    if not keep_classes:
        lut[: len(VOC_CLASSES)] = torch.arange(len(VOC_CLASSES))
        return list(VOC_CLASSES), lut
    unknown = [c for c in keep_classes if c not in VOC_CLASSES or c == "background"]
    if unknown:
        raise ConfigError(f"data.keep_classes has unknown VOC classes {unknown}; choose from {list(VOC_CLASSES[1:])}")
    names = ["background", *keep_classes]
    for new, name in enumerate(names):
        lut[VOC_CLASSES.index(name)] = new
    return names, lut


class VOCSegDataset(Dataset):
    def __init__(self, voc: VOCSegmentation, lut: torch.Tensor, transform: v2.Transform,
                 max_images: int | None = None, skip_corrupt: bool = False) -> None:
        pairs = list(zip(voc.images, voc.masks))
        self.pairs = pairs[:max_images] if max_images else pairs
        self.lut = lut
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        self.skipped: list[str] = []
        if skip_corrupt:
            self.pairs = [p for p in self.pairs if self._readable(p)]
            if not self.pairs:
                raise DataError("every image of the split is corrupt; nothing left to train on")

    def _readable(self, pair: tuple[str, str]) -> bool:
        try:
            load_pair(*pair)
            return True
        except DataError as e:
            log.warning("skipping: %s", e)
            self.skipped.append(str(e))
            return False

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = load_pair(*self.pairs[i])
        mask = tv_tensors.Mask(self.lut[mask])
        return self.transform(image, mask)


def pad_collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack images of different sizes, padding bottom/right (image 0, mask void so it is ignored).

    Returns ``(images, masks, sizes)``: sizes is an int64 (N, 2) tensor of each mask's true (h, w), so a
    metric that depends on the image extent (Boundary IoU) can undo the padding without guessing it from
    the void pixels (a genuine image may end in void rows or columns)."""
    h = max(b[0].shape[-2] for b in batch)
    w = max(b[0].shape[-1] for b in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), h, w), VOID, dtype=torch.int64)
    sizes = torch.empty(len(batch), 2, dtype=torch.int64)
    for i, (img, m) in enumerate(batch):
        images[i, :, : img.shape[-2], : img.shape[-1]] = img
        masks[i, : m.shape[-2], : m.shape[-1]] = m
        sizes[i, 0], sizes[i, 1] = m.shape[-2], m.shape[-1]
    return images, masks, sizes


def train_transform(crop_size: int, scale: tuple[float, float]) -> v2.Transform:
    # RandomResizedCrop is the random scale + crop in one op; tv_tensors.Mask makes it nearest for masks.
    return v2.Compose([
        v2.RandomResizedCrop(crop_size, scale=tuple(scale), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform() -> v2.Transform:
    # No resize: evaluation happens at the original mask resolution.
    return v2.Compose([
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class VOCDataModule(L.LightningDataModule):
    """VOC 2012 segmentation through torchvision, with a configurable subset. Test split = val split
    (VOC's test labels are not public)."""

    def __init__(
        self,
        root: str,
        download: bool = False,
        year: str = "2012",
        train_split: str = "train",
        val_split: str = "val",
        max_train: int | None = None,
        max_val: int | None = None,
        keep_classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        crop_size: int = 256,
        scale: Sequence[float] = (0.3, 1.0),
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 2,
        skip_corrupt: bool = False,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        augment: str = "random_resized_crop",
        grid: int = 32,
    ) -> None:
        super().__init__()
        if augment not in AUGMENTS:
            raise ConfigError(f"data.augment={augment} is not one of {', '.join(AUGMENTS)}")
        if augment == "grid_crop" and (grid <= 0 or crop_size % grid):
            raise ConfigError(f"data.crop_size={crop_size} must be a multiple of data.grid={grid} with "
                              "data.augment=grid_crop (the crop's window of each feature map must be whole)")
        if crop_size <= 0 or batch_size <= 0 or val_batch_size <= 0:
            raise ConfigError(
                f"data.crop_size={crop_size}, data.batch_size={batch_size}, data.val_batch_size={val_batch_size} "
                "must be positive"
            )
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        self.root = root
        self.download = download
        self.year = str(year)
        self.train_split, self.val_split = train_split, val_split
        self.max_train, self.max_val = max_train, max_val
        self.class_names, self.lut = class_lookup(list(keep_classes) if keep_classes else None)
        if num_classes is not None and int(num_classes) != len(self.class_names):
            raise ConfigError(
                f"data.num_classes={num_classes} but the class subset has {len(self.class_names)} classes "
                f"({', '.join(self.class_names)}); set data.num_classes={len(self.class_names)}"
            )
        self.crop_size, self.scale = int(crop_size), tuple(scale)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers = num_workers
        self.skip_corrupt = skip_corrupt
        self.pin_memory = pin_memory
        # Non-persistent workers are reseeded every epoch (EpochSeed), which makes resume exact;
        # persistent ones save a process start per epoch (worth it on a GPU: trainer=gpu).
        self.persistent_workers = persistent_workers
        self.augment, self.grid = augment, int(grid)
        self.feature_cache = None  # a frozen encoder's FeatureCache (use_encoder_cache)
        self.skipped: list[str] = []
        self.encoder_passes = 0  # images the encoder ran on to fill the cache, in this run
        self.train_set: VOCSegDataset | None = None
        self.val_set: VOCSegDataset | None = None

    def use_encoder_cache(self, encoder, cache_dir: str) -> None:
        """Train and evaluate on the cached features of a frozen ``encoder`` (data/encoded.py)."""
        from upsample_zoo.data.encoded import FeatureCache

        if self.augment != "grid_crop":
            raise ConfigError(f"data.augment={self.augment} is not exact in a cached encoder's feature space; "
                              "use data.augment=grid_crop, or encoder.cache=false to run the encoder every step")
        self.feature_cache = FeatureCache(encoder, cache_dir)
        self.encoder_strides = list(encoder.strides)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict:
        """What subset this run used, for results.json."""
        return {
            "root": str(self.root), "year": self.year, "train_split": self.train_split, "val_split": self.val_split,
            "num_train": len(self.train_set) if self.train_set else None,
            "num_val": len(self.val_set) if self.val_set else None,
            "max_train": self.max_train, "max_val": self.max_val, "classes": self.class_names,
            "skipped_corrupt": self.skipped, "augment": self.augment,
            **({"feature_cache": {"dir": str(self.feature_cache.dir), "size_bytes": self.feature_cache.size_bytes(),
                                  "encoder_passes": self.encoder_passes}} if self.feature_cache else {}),
        }

    def prepare_data(self) -> None:
        open_voc(self.root, self.train_split, self.download, self.year)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_voc = open_voc(self.root, self.train_split, False, self.year)
        val_voc = open_voc(self.root, self.val_split, False, self.year)
        train = VOCSegDataset(train_voc, self.lut, train_transform(self.crop_size, self.scale), self.max_train,
                              self.skip_corrupt)
        val = VOCSegDataset(val_voc, self.lut, eval_transform(), self.max_val, self.skip_corrupt)
        self.skipped = train.skipped + val.skipped
        if self.augment == "grid_crop":
            from upsample_zoo.data.encoded import GridCropDataset

            cache, strides = self.feature_cache, getattr(self, "encoder_strides", None)
            if cache is not None:
                self.encoder_passes += cache.ensure(train.pairs + val.pairs, eval_transform())
            train = GridCropDataset(train.pairs, self.lut, eval_transform(), self.crop_size, self.grid, cache, strides)
            val = GridCropDataset(val.pairs, self.lut, eval_transform(), None, self.grid, cache, strides)
        self.train_set, self.val_set = train, val

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        from upsample_zoo.data.encoded import encoded_collate

        return make_loader(ds, self, batch_size, train=shuffle, collate_fn=encoded_collate,
                           drop_last=shuffle and len(ds) > batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size, shuffle=False)
