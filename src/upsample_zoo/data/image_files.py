"""Image files and in-memory image arrays as datasets: finding and decoding files (a corrupt file raises a
DataError naming it), the geometry and [-1, 1] transforms, seeded subsets, and the datasets' fingerprints.
The data modules built on them: :mod:`upsample_zoo.data.image_folder`, :mod:`upsample_zoo.data.cifar10`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import v2

from upsample_zoo.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# what PIL raises on a file that is not a readable image, or one too large to decode safely
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def find_images(folder: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Every image file under ``folder``, recursively, sorted by relative path (deterministic).

    Class subfolders are optional. Hidden files and folders (``.DS_Store``, ``._x.jpg``, ``.cache``)
    are skipped; so is ``exclude`` (a test folder nested inside the train folder).
    """
    folder = Path(folder)
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and (excluded is None or Path(dirpath, d).resolve() != excluded)
        )
        found += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode one image file to uint8 (3, H, W) RGB; a corrupt file raises DataError naming it."""
    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("RGB"))
    except UNREADABLE as e:
        raise DataError(f"corrupt or unreadable image {path}: {e}") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def check_header(path: str | os.PathLike) -> None:
    """Cheap eager check (reads only the header): a file that is not an image at all (empty, an HTML
    error page, a half-written download) raises DataError naming it, in the main process, before any
    DataLoader worker would wrap the message. Damage past the header shows when the file is decoded."""
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header is parsed by open(); touch it for clarity
    except UNREADABLE as e:
        raise DataError(f"corrupt or unreadable image {path}: {e}") from None


def geometry_transform(image_size: int) -> v2.Transform:
    """Resize the shorter side to ``image_size``, then centre-crop a square (a no-op on 32x32 CIFAR)."""
    return v2.Compose([v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)])


# uint8 [0, 255] -> float32 [-1, 1]
TO_FLOAT = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])


def seeded_subset(n: int, k: int | None, seed: int) -> np.ndarray:
    """Indices of a deterministic random subset of ``k`` of ``n`` items, in ascending order; all when
    ``k`` is None. Nested: the subset of size k is contained in the one of size k+1."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


class ImageFileDataset(Dataset):
    """Image files -> float32 (3, S, S) in [-1, 1]. ``load_uint8`` gives the same image before scaling."""

    def __init__(self, files: list[Path], image_size: int, base: Path | None = None) -> None:
        self.files = list(files)
        self.base = base
        self.image_size = image_size
        self.geometry = geometry_transform(image_size)
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: np.ndarray) -> ImageFileDataset:
        return ImageFileDataset([self.files[int(i)] for i in indices], self.image_size, self.base)

    def load_uint8(self, i: int) -> torch.Tensor:
        return self.geometry(load_image(self.files[i]))

    def __getitem__(self, i: int) -> torch.Tensor:
        return TO_FLOAT(self.load_uint8(i))

    def fingerprint(self) -> str:
        """Hash of the files' relative paths and bytes, and the output size: changes whenever the images do."""
        if self._fingerprint is None:
            h = hashlib.sha1(f"image_size={self.image_size}\n".encode())
            for f in self.files:
                rel = f.relative_to(self.base).as_posix() if self.base else f.name
                h.update(f"{rel}\0".encode())
                h.update(hashlib.sha1(f.read_bytes()).digest())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


class ArrayImageDataset(Dataset):
    """In-memory uint8 (N, H, W, 3) images (CIFAR-10's arrays) -> float32 (3, S, S) in [-1, 1]."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, image_size: int, tag: str) -> None:
        self.data = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2)  # a view, no copy
        self.indices = np.asarray(indices)
        self.image_size = image_size
        self.geometry = geometry_transform(image_size)
        self.tag = tag

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, indices: np.ndarray) -> ArrayImageDataset:
        ds = ArrayImageDataset.__new__(ArrayImageDataset)
        ds.__dict__.update(self.__dict__, indices=self.indices[np.asarray(indices, dtype=np.int64)])
        return ds

    def load_uint8(self, i: int) -> torch.Tensor:
        return self.geometry(self.data[int(self.indices[i])].contiguous())

    def __getitem__(self, i: int) -> torch.Tensor:
        return TO_FLOAT(self.load_uint8(i))

    def fingerprint(self) -> str:
        """Hash of the source (md5-checked by torchvision), the chosen indices and the output size."""
        h = hashlib.sha1(f"{self.tag}\nimage_size={self.image_size}\n".encode())
        h.update(np.ascontiguousarray(self.indices, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]
