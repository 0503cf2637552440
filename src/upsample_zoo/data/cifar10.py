"""CIFAR-10 for the GAN task, through torchvision (md5-checked batches), labels dropped; the conventions of every
unlabelled image module (batches in [-1, 1], the reference set, ``describe``) are in ``image_folder.py``."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from upsample_zoo.data.image_files import ArrayImageDataset, seeded_subset
from upsample_zoo.data.image_folder import OFFLINE, _UnlabelledImageDataModule
from upsample_zoo.errors import DataError


def open_cifar10(root: str, train: bool, download: bool):
    """torchvision's CIFAR10 (it md5-checks the batches before unpickling them), with one-line errors."""
    from torchvision.datasets import CIFAR10

    offline = (f"point data.root at a copy holding cifar-10-batches-py/, {OFFLINE}, or data=image_folder "
               "data.root=<a folder of images>")
    try:
        return CIFAR10(str(root), train=train, download=download)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        if not download:
            raise DataError(
                f"CIFAR-10 not found (or corrupt) under data.root={root} (expected "
                f"{Path(root) / 'cifar-10-batches-py'}); set data.download=true to fetch it (170 MB, needs a "
                f"network), {offline}"
            ) from None
        reason = str(e).splitlines()[0] if str(e) else ""
        raise DataError(
            f"could not download CIFAR-10 into data.root={root} ({type(e).__name__}: {reason}); "
            f"with no network set data.download=false and {offline}"
        ) from None


class CIFAR10DataModule(_UnlabelledImageDataModule):
    """CIFAR-10 via ``torchvision.datasets.CIFAR10(root, train=..., download=...)``, labels dropped.
    Train = the 50k train split (capped by ``max_images``); the reference set is ``ref_split``.
    ``skip_corrupt`` is accepted for config symmetry; torchvision verifies the files' md5 instead."""

    name = "cifar10"

    def __init__(self, root: str, download: bool = False, skip_corrupt: bool = False, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        self.download = download
        self.skip_corrupt = skip_corrupt

    def prepare_data(self) -> None:
        open_cifar10(self.root, train=True, download=self.download)
        open_cifar10(self.root, train=False, download=self.download)

    def _build_sets(self) -> None:
        train = open_cifar10(self.root, train=True, download=False)
        keep = seeded_subset(len(train.data), self.max_images, self.subset_seed)
        self.train_set = ArrayImageDataset(train.data, keep, self.image_size, "cifar10/train")
        ref = train if self.ref_split == "train" else open_cifar10(self.root, train=False, download=False)
        self._ref_pool_set = ArrayImageDataset(ref.data, np.arange(len(ref.data)), self.image_size,
                                               f"cifar10/{self.ref_split}")
        self.ref_set = self._ref_pool_set.subset(seeded_subset(len(ref.data), self.max_ref_images, self.subset_seed))

    def _ref_pool(self) -> tuple[Dataset, np.ndarray]:
        return self._ref_pool_set, self.ref_set.indices
