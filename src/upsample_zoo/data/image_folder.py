"""Unlabelled image data for the GAN task: any folder of images (CIFAR-10 through torchvision: ``cifar10.py``).

One convention for every module here:
- **Batches are plain image tensors** ``(B, 3, S, S)``, float32 in ``[-1, 1]`` (the range of the
  generator's tanh), with ``S = image_size``. No labels.
- ``train_dataloader`` shuffles and drops the last partial batch (BatchNorm in G and D sees full batches).
- ``val_dataloader`` and ``test_dataloader`` yield the **real reference images** for FID and for the
  real-image checkerboard baseline: the ``ref_split`` ("train" or "test"), capped at ``max_ref_images``,
  in a fixed order, not shuffled, nothing dropped.
- ``reference_images()`` returns the same reference set as one uint8 ``(N, 3, S, S)`` tensor (what
  torchmetrics FID takes), independent of Lightning's ``limit_val_batches``.
- ``describe()`` says what the run used (for results.json), including ``ref_fingerprint``: a hash of the
  reference set's identity, for keying cached FID statistics.
- Caps (``max_images``, ``max_ref_images``) take a seeded random subset (``subset_seed``), never the first
  N sorted files, which in class-folder layouts would all be one class.

Nothing read from a data folder is ever unpickled: folders are decoded as images by PIL, and
torchvision's CIFAR-10 batches are only unpickled after torchvision has checked their official md5.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from upsample_zoo.data.epoch_sampling import make_loader
from upsample_zoo.data.image_files import (
    IMAGE_EXTENSIONS,
    ImageFileDataset,
    check_header,
    find_images,
    load_image,
    seeded_subset,
)
from upsample_zoo.errors import ConfigError, DataError

log = logging.getLogger(__name__)

OFFLINE = "or use the offline data=cifar_synthetic"
NO_IMAGES_HINT = ("point data.root at a folder of images, set data=cifar10 data.download=true to fetch "
                  f"CIFAR-10 (needs a network), {OFFLINE}")


# ----------------------------------------------------------------------------------------------
# Data modules
# ----------------------------------------------------------------------------------------------


class _UnlabelledImageDataModule(L.LightningDataModule):
    """Loaders, caps, ``describe`` and ``reference_images`` shared by the image-folder and CIFAR-10 modules.
    Subclasses build ``self.train_set`` and ``self.ref_set`` in ``_build_sets``."""

    name = "images"

    def __init__(self, root: str, image_size: int = 32, ref_split: str = "train", batch_size: int = 64,
                 val_batch_size: int | None = None, num_workers: int = 2, max_images: int | None = None,
                 max_ref_images: int | None = None, subset_seed: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False,
                 crop_size: int | None = None) -> None:
        super().__init__()
        val_batch_size = batch_size if val_batch_size is None else val_batch_size
        if image_size <= 0 or batch_size <= 0 or val_batch_size <= 0:
            raise ConfigError(
                f"data.image_size={image_size}, data.batch_size={batch_size}, "
                f"data.val_batch_size={val_batch_size} must be positive"
            )
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        for key, value in (("max_images", max_images), ("max_ref_images", max_ref_images)):
            if value is not None and value <= 0:
                raise ConfigError(f"data.{key} must be positive or null (all), got {value}")
        if ref_split not in ("train", "test"):
            raise ConfigError(f"data.ref_split must be 'train' or 'test', got {ref_split!r}")
        self.root = str(root)
        self.image_size = int(image_size)
        self.ref_split = ref_split
        self.batch_size, self.val_batch_size = int(batch_size), int(val_batch_size)
        self.num_workers = int(num_workers)
        self.max_images, self.max_ref_images = max_images, max_ref_images
        self.subset_seed = int(subset_seed)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        # crop_size is the segmentation task's key (debug=smoke sets it for every task); accepted so that
        # configs compose, and ignored: GAN images are always image_size (the generator's output size).
        self.ignored_crop_size = crop_size
        self.train_set: Dataset | None = None
        self.ref_set: Dataset | None = None
        self.skipped: list[str] = []

    def _build_sets(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._build_sets()
        if len(self.train_set) < self.batch_size:
            raise DataError(
                f"data.root={self.root} gives {len(self.train_set)} training images (data.max_images="
                f"{self.max_images}), fewer than one batch (data.batch_size={self.batch_size}); lower "
                "data.batch_size or add images"
            )

    def _loader(self, ds: Dataset, batch_size: int, train: bool) -> DataLoader:
        return make_loader(ds, self, batch_size, train=train, drop_last=train)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.ref_set, self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.ref_set, self.val_batch_size, train=False)

    def reference_images(self, limit: int | None = None) -> torch.Tensor:
        """The real reference images (``ref_split``, at most ``max_ref_images``, then at most ``limit``) as
        one uint8 (N, 3, S, S) tensor, in the same order as ``val_dataloader``."""
        self.setup()
        n = len(self.ref_set) if limit is None else min(limit, len(self.ref_set))
        if n == 0:
            return torch.zeros(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.stack([self.ref_set.load_uint8(i) for i in range(n)])

    def _ref_pool(self) -> tuple[Dataset, np.ndarray]:  # pragma: no cover - abstract
        """The whole reference split as a dataset, and the indices into it of the reference set."""
        raise NotImplementedError

    def floor_set(self, n: int) -> Dataset:
        """Up to ``n`` real images of the reference split that are not in the reference set: a seeded subset
        of the rest of that split (``subset_seed + 1``). Scored against the reference statistics like a
        generator's samples, they give the real-vs-real FID floor at that n. Fewer than ``n`` (all that is left)
        when the rest of the split is smaller, empty when nothing is left: callers must read ``len()`` and say so
        (GANTask scores the floor at that n, warns, and records it as protocol.real_floor_n)."""
        self.setup()
        pool, taken = self._ref_pool()
        rest = np.setdiff1d(np.arange(len(pool)), taken)
        return pool.subset(rest[seeded_subset(len(rest), n, self.subset_seed + 1)])

    def describe(self) -> dict:
        """What this run used, for results.json and for keying cached reference statistics."""
        return {
            "name": self.name, "root": self.root, "image_size": self.image_size,
            "num_train": len(self.train_set) if self.train_set is not None else None,
            "ref_split": self.ref_split,
            "num_ref": len(self.ref_set) if self.ref_set is not None else None,
            "ref_fingerprint": self.ref_set.fingerprint() if self.ref_set is not None else None,
            "max_images": self.max_images, "max_ref_images": self.max_ref_images,
            "subset_seed": self.subset_seed,
            "num_skipped": len(self.skipped), "skipped_corrupt": list(self.skipped),
        }


def _subdir(root: Path, option: str | None, name: str, absent: Path | None) -> Path | None:
    """data.train_subdir / data.test_subdir: "auto" is ``root/name`` when it exists, else ``absent``; none, ""
    or "." is ``absent``; anything else is that folder under the root."""
    if option == "auto":
        return root / name if (root / name).is_dir() else absent
    if option in (None, "", "."):
        return absent
    return root / option


class ImageFolderDataModule(_UnlabelledImageDataModule):
    """Any folder of images (jpg/jpeg/png/bmp/webp), searched recursively; class subfolders optional.

    Splits, relative to ``root``:
    - ``train_subdir="auto"`` (default): ``root/train`` if that folder exists, else ``root`` itself.
      ``None``/``""``/``"."``: ``root`` itself. Any other string: that subfolder.
    - ``test_subdir="auto"`` (default): ``root/test`` if it exists, else none. ``None``: none.
      A test folder inside the train folder is excluded from training.
    So the CIFAR-10 JPEG layout (``train/<class>/*.jpg``, ``test/<class>/*.jpg``) and a flat folder of
    photos both work without settings. ``ref_split="test"`` needs a test folder.

    Corrupt files: by default ``setup`` reads every selected file's header (~30 us each) and a file that is
    not an image fails there with a one-line DataError naming it; damage past the header fails when the
    file is decoded (also naming it, though a DataLoader worker prefixes its own lines). With
    ``skip_corrupt=True`` every selected file is fully decoded once in ``setup``; unreadable ones are
    skipped with a warning (replaced by others to fill the caps) and listed in ``describe()``.
    """

    name = "image_folder"

    def __init__(self, root: str, train_subdir: str | None = "auto", test_subdir: str | None = "auto",
                 skip_corrupt: bool = False, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        self.train_subdir, self.test_subdir = train_subdir, test_subdir
        self.skip_corrupt = skip_corrupt
        self.train_dir: Path | None = None
        self.test_dir: Path | None = None
        self._floors: dict[int, ImageFileDataset] = {}

    def _resolve_dirs(self) -> tuple[Path, Path | None]:
        root = Path(self.root)
        hint = NO_IMAGES_HINT
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DataError(f"image folder data.root={root} {what}; {hint}")
        train = _subdir(root, self.train_subdir, "train", absent=root)  # no train/: the root holds the images
        test = _subdir(root, self.test_subdir, "test", absent=None)  # no test/: split off the train images
        for key, folder in (("train_subdir", train), ("test_subdir", test)):
            if folder is not None and not folder.is_dir():
                raise DataError(f"data.{key}: {folder} is not a folder under data.root={root}; {hint}")
        if test is None and self.ref_split == "test":
            raise ConfigError(
                f"data.ref_split=test but data.root={root} has no test folder; set data.test_subdir "
                "or data.ref_split=train"
            )
        return train, test

    def _select(self, files: list[Path], cap: int | None, seed: int | None = None) -> list[Path]:
        """The seeded subset of ``files``; with skip_corrupt, decode each and refill past corrupt ones."""
        seed = self.subset_seed if seed is None else seed
        if not self.skip_corrupt:
            chosen = [files[i] for i in seeded_subset(len(files), cap, seed)]
            for f in chosen:
                check_header(f)
            return chosen
        # the same permutation as seeded_subset, walked until `cap` readable files are found
        order = (np.random.default_rng(seed).permutation(len(files))
                 if cap is not None and cap < len(files) else np.arange(len(files)))
        good = []
        for i in order:
            if cap is not None and len(good) >= cap:
                break
            try:
                load_image(files[i])
                good.append(int(i))
            except DataError as e:
                if str(e) not in self.skipped:
                    log.warning("skipping: %s", e)
                    self.skipped.append(str(e))
        return [files[i] for i in sorted(good)]

    def _build_sets(self) -> None:
        train_dir, test_dir = self._resolve_dirs()
        self.train_dir, self.test_dir = train_dir, test_dir
        train_files = find_images(train_dir, exclude=test_dir)
        if not train_files:
            where = "" if train_dir == Path(self.root) else f" in {train_dir}"
            exts = "/".join(IMAGE_EXTENSIONS)
            raise DataError(f"no images ({exts}) found under data.root={self.root}{where}; {NO_IMAGES_HINT}")
        base = Path(self.root)
        train = self._select(train_files, self.max_images)
        if self.ref_split == "train":
            ref_files = train_files
        else:
            ref_files = find_images(test_dir)
            if not ref_files:
                raise DataError(f"no images found in the test folder {test_dir} (data.ref_split=test)")
        ref = self._select(ref_files, self.max_ref_images)
        position = {f: i for i, f in enumerate(ref_files)}
        self._ref_files, self._ref_taken = ref_files, np.array(sorted(position[f] for f in ref), dtype=np.int64)
        if not train:
            raise DataError(f"every image under data.root={self.root} is corrupt; nothing left to train on")
        self.train_set = ImageFileDataset(train, self.image_size, base)
        self.ref_set = ImageFileDataset(ref, self.image_size, base)

    def _ref_pool(self) -> tuple[Dataset, np.ndarray]:
        return ImageFileDataset(self._ref_files, self.image_size, Path(self.root)), self._ref_taken

    def floor_set(self, n: int) -> Dataset:
        """As the base class's (the same files when none is corrupt), chosen like the training and reference
        images: headers checked, or with skip_corrupt every file decoded and a corrupt one skipped (counted in
        ``describe()``) and replaced, so the test-time floor never fails after the whole fit."""
        self.setup()
        if n not in self._floors:  # chosen when the run is built, read again at test time: decode once
            taken = set(self._ref_taken.tolist())
            rest = [f for i, f in enumerate(self._ref_files) if i not in taken]
            self._floors[n] = ImageFileDataset(self._select(rest, n, seed=self.subset_seed + 1), self.image_size,
                                               Path(self.root))
        return self._floors[n]

    def describe(self) -> dict:
        return {**super().describe(), "train_dir": str(self.train_dir) if self.train_dir else None,
                "test_dir": str(self.test_dir) if self.test_dir else None}
