"""``data=cifar_synthetic``: the offline default of the GAN task.

Procedurally generated 32x32 RGB images with CIFAR-like statistics: a colour gradient over 1/f noise as
background, then a few occluding shapes (discs, rectangles, triangles) whose sizes follow a power law,
each filled with a flat colour, a gradient, stripes or 1/f noise. Anti-aliased edges and occlusion at
many scales give a roughly natural spectrum: the radially averaged power falls as about 1/f^2 (see
``spectral_slope``). The set is written once as lossless PNGs under ``root/{train,test}/`` by
``ensure_built`` (file lock + temp dir + rename) and then read by the plain ``ImageFolderDataModule``.

Images are generated in fixed chunks, each with its own seed (``seed``, split, chunk index), so image
``i`` of a split does not depend on ``num_train``/``num_test``: a small set is a prefix of a big one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from upsample_zoo.data.generated import ensure_built
from upsample_zoo.data.image_folder import ImageFolderDataModule
from upsample_zoo.data.noise import pink_noise
from upsample_zoo.metrics.spectrum import azimuthal_spectrum

SIZE = 32
CHUNK = 256  # images per seeded chunk; part of the format (changing it changes every image)
MAX_SHAPES = 6
SPLIT_IDS = {"train": 0, "test": 1}


class _Rng:
    """A numpy Generator whose floats are float32 (half the memory traffic of float64; the images end
    as uint8 anyway)."""

    def __init__(self, seed: list[int]) -> None:
        self.g = np.random.default_rng(seed)

    def uniform(self, lo: float, hi: float, shape) -> np.ndarray:
        return self.g.uniform(lo, hi, shape).astype(np.float32)

    def standard_normal(self, shape) -> np.ndarray:
        return self.g.standard_normal(shape, dtype=np.float32)

    def integers(self, lo: int, hi: int, shape) -> np.ndarray:
        return self.g.integers(lo, hi, shape)


def _random_colours(rng: _Rng, n: int) -> np.ndarray:
    """(n, 3) RGB in [0, 1], mostly muted like photographs, sometimes saturated."""
    c = rng.uniform(0, 1, (n, 3))
    grey = c.mean(axis=1, keepdims=True)
    sat = rng.uniform(0.2, 1.0, (n, 1))
    return np.clip(grey + sat * (c - grey), 0, 1)


def _coverage(signed_dist: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (positive inside)."""
    return np.clip(signed_dist + 0.5, 0.0, 1.0)


def _shape_sdf(rng: _Rng, n: int, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W) approximate signed distances of one random shape per image: disc, rotated rectangle
    or triangle, with a power-law size distribution (many small shapes, few large ones)."""
    kind = rng.integers(0, 3, n)
    # log-uniform radius between 1.5 px and ~half the image: scale-invariant, like the dead-leaves model
    r = np.exp(rng.uniform(np.log(1.5), np.log(size * 0.5), n))[:, None, None]
    cx = rng.uniform(-0.1, 1.1, n)[:, None, None] * size
    cy = rng.uniform(-0.1, 1.1, n)[:, None, None] * size
    dx, dy = xx[None] - cx, yy[None] - cy
    disc = r - np.sqrt(dx**2 + dy**2)
    th = rng.uniform(0, np.pi, n)[:, None, None]
    u = dx * np.cos(th) + dy * np.sin(th)
    v = -dx * np.sin(th) + dy * np.cos(th)
    aspect = rng.uniform(0.3, 1.0, n)[:, None, None]
    rect = np.minimum(r - np.abs(u), r * aspect - np.abs(v))
    # triangle: three vertices on a circle of radius r, edges as inward-facing half-planes
    angles = rng.uniform(0, 2 * np.pi, (n, 1)) + np.sort(rng.uniform(0, 2 * np.pi, (n, 3)), axis=1)
    vx, vy = np.cos(angles) * r[:, 0], np.sin(angles) * r[:, 0]  # (n, 3), counter-clockwise
    tri = np.full_like(disc, np.float32(np.inf))
    for k in range(3):
        ax, ay = vx[:, k, None, None], vy[:, k, None, None]
        bx, by = vx[:, (k + 1) % 3, None, None], vy[:, (k + 1) % 3, None, None]
        ex, ey = bx - ax, by - ay
        norm = np.sqrt(ex**2 + ey**2) + 1e-6
        tri = np.minimum(tri, (ex * (dy - ay) - ey * (dx - ax)) / norm)
    return np.select([kind[:, None, None] == 0, kind[:, None, None] == 1], [disc, rect], tri)


def _fill(rng: _Rng, n: int, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W, 3) fills in about [0, 1] between two colours c0 and c1: flat, a linear gradient, stripes
    (period 3-12 px) or 1/f noise; every fill carries a faint 1/f texture."""
    kind = rng.integers(0, 4, n)[:, None, None]
    c0, c1 = _random_colours(rng, n)[:, None, None], _random_colours(rng, n)[:, None, None]
    th = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    ramp = ((xx - size / 2) * np.cos(th) + (yy - size / 2) * np.sin(th)) / size + 0.5
    period = rng.uniform(3.0, 12.0, n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (ramp * size) / period + phase)
    t = np.select([kind == 1, kind == 2], [np.clip(ramp, 0, 1), wave], np.float32(0))
    amp = np.where(kind == 3, np.float32(0.12), np.float32(0.02)) * pink_noise(rng.g, (n, size, size), dtype=np.float32)
    tint = rng.uniform(0.5, 1.5, (n, 1, 1, 3))
    return c0 + t[..., None] * (c1 - c0) + amp[..., None] * tint


def generate_images(seed: int, split: str, start: int, count: int, size: int = SIZE) -> np.ndarray:
    """Images ``start .. start+count-1`` of ``split`` as uint8 (count, size, size, 3)."""
    out = []
    first, last = start // CHUNK, (start + count - 1) // CHUNK
    for chunk in range(first, last + 1):
        out.append(_generate_chunk(seed, SPLIT_IDS[split], chunk, size))
    images = np.concatenate(out) if out else np.zeros((0, size, size, 3), np.uint8)
    off = start - first * CHUNK
    return images[off : off + count]


def _generate_chunk(seed: int, split_id: int, chunk: int, size: int) -> np.ndarray:
    rng = _Rng([int(seed), split_id, chunk])
    n = CHUNK
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    # background: a colour gradient under 1/f noise (a sky, a wall, grass)
    img = _fill(rng, n, yy, xx, size)
    texture = pink_noise(rng.g, (n, size, size), dtype=np.float32)[..., None]
    img = img + np.float32(0.08) * texture * rng.uniform(0.3, 1.5, (n, 1, 1, 1))
    n_shapes = rng.integers(1, MAX_SHAPES + 1, n)
    for k in range(MAX_SHAPES):
        alpha = _coverage(_shape_sdf(rng, n, yy, xx, size)) * (k < n_shapes)[:, None, None]
        fill = _fill(rng, n, yy, xx, size)
        img = img * (1 - alpha[..., None]) + fill * alpha[..., None]
    # global illumination and a little sensor noise
    img = img * rng.uniform(0.6, 1.2, (n, 1, 1, 1)) + np.float32(0.01) * rng.standard_normal(img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _build(tmp: Path, params: dict) -> None:
    for split, count in (("train", params["num_train"]), ("test", params["num_test"])):
        folder = tmp / split
        folder.mkdir(parents=True)
        for start in range(0, count, CHUNK):
            batch = generate_images(params["seed"], split, start, min(CHUNK, count - start), params["size"])
            for i, im in enumerate(batch):
                # compress_level=1: the files are tiny and ~3x faster to write; still lossless
                Image.fromarray(im).save(folder / f"{start + i:05d}.png", compress_level=1)


def build_cifar_synthetic(root: str | os.PathLike, num_train: int = 10000, num_test: int = 2000,
                          seed: int = 0) -> Path:
    """Generate (once) ``root/{train,test}/NNNNN.png`` and ``root/meta.json``; returns ``root``."""
    params = {"kind": "cifar_synthetic", "version": 1, "num_train": int(num_train), "num_test": int(num_test),
              "seed": int(seed), "size": SIZE, "chunk": CHUNK}
    return ensure_built(Path(root), params, _build)


def spectral_slope(images: np.ndarray, fmin: float = 2 / 32, fmax: float = 0.4) -> float:
    """Log-log slope of the radially averaged power spectrum of (N, H, W[, 3]) images, read on their
    luminance (Rec. 601) with numpy's symmetric Hann window, so the image border adds no spurious 1/f^2
    cross; natural images read about -2."""
    x = np.asarray(images, np.float64)
    if x.ndim == 4:
        x = x @ np.array([0.299, 0.587, 0.114])
    spectrum = azimuthal_spectrum(torch.from_numpy(x)[:, None], periodic_window=False)
    f = spectrum.freqs
    keep = (f > 0) & (f >= fmin) & (f <= fmax)
    return float(np.polyfit(np.log(f[keep].numpy()), np.log(spectrum.mean[keep].numpy()), 1)[0])


class SyntheticImageDataModule(ImageFolderDataModule):
    """The GAN task's offline default: builds the set once under ``root``, then reads it exactly like
    ``data=image_folder`` (train = ``root/train``, test = ``root/test``)."""

    name = "cifar_synthetic"

    def __init__(self, root: str, num_train: int = 10000, num_test: int = 2000, generator_seed: int = 0,
                 **kwargs) -> None:
        kwargs.setdefault("train_subdir", "train")
        kwargs.setdefault("test_subdir", "test")
        super().__init__(root=root, **kwargs)
        self.gen = {"num_train": num_train, "num_test": num_test, "seed": generator_seed}

    def prepare_data(self) -> None:
        build_cifar_synthetic(self.root, **self.gen)

    def setup(self, stage: str | None = None) -> None:
        build_cifar_synthetic(self.root, **self.gen)
        super().setup(stage)

    def describe(self) -> dict:
        return {**super().describe(), "generator": dict(self.gen)}
