"""The embedded VOC stand-in: ``build_voc_synthetic`` writes a PASCAL-VOC-layout segmentation set (JPEG images,
palette PNG masks with the VOC palette and a 255 void border around each object,
ImageSets/Segmentation/*.txt), generated deterministically on first use, and ``SyntheticVOCDataModule`` reads it
with the real VOC loader, unchanged."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from upsample_zoo.constants import VOID
from upsample_zoo.data.generated import ensure_built
from upsample_zoo.data.noise import pink_noise
from upsample_zoo.data.voc import VOC_CLASSES, VOCDataModule, voc_palette

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Synthetic VOC
# ----------------------------------------------------------------------------------------------

# Each class: base RGB colour, texture kind and shape family. Colours overlap on purpose (cat and
# bird, car and bicycle) so that texture and shape, and therefore boundaries, decide the score.
SYNTH_CLASSES = {
    "aeroplane": dict(rgb=(170, 180, 200), texture="smooth", shape="plane"),
    "bicycle": dict(rgb=(60, 60, 150), texture="smooth", shape="wheels"),
    "bird": dict(rgb=(150, 110, 60), texture="speckle", shape="bird"),
    "car": dict(rgb=(170, 40, 40), texture="stripes", shape="box"),
    "cat": dict(rgb=(140, 100, 70), texture="stripes_fine", shape="blob"),
    "person": dict(rgb=(210, 160, 130), texture="smooth", shape="person"),
}


def _texture(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "stripes" or kind == "stripes_fine":
        period = rng.uniform(7, 11) if kind == "stripes" else rng.uniform(3.0, 4.5)
        theta = rng.uniform(0, np.pi)
        t = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
        return 0.9 * t + 0.25 * pink_noise(rng, (h, w))
    if kind == "speckle":
        return 0.3 * pink_noise(rng, (h, w)) + 1.0 * (rng.random((h, w)) > 0.8) - 0.2
    return 0.35 * pink_noise(rng, (h, w), alpha=1.5)


def _draw_shape(shape: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A boolean mask of one object; several families have thin parts (legs, spokes, wings)."""
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    s = rng.uniform(0.22, 0.42) * min(h, w)
    cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
    thin = max(2, int(round(s / 14)))
    if shape == "blob":
        pts = []
        n = 12
        r0 = rng.uniform(0.6, 1.0, n) * s * 0.6
        for k, r in enumerate(r0):
            a = 2 * np.pi * k / n
            pts.append((cx + r * np.cos(a), cy + r * np.sin(a) * 0.8))
        d.polygon(pts, fill=1)
        # a thin tail
        a = rng.uniform(0, 2 * np.pi)
        d.line([(cx, cy), (cx + 1.1 * s * np.cos(a), cy + 1.1 * s * np.sin(a))], fill=1, width=thin)
    elif shape == "box":
        bw, bh = s * rng.uniform(1.1, 1.6), s * rng.uniform(0.45, 0.7)
        d.rectangle([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], fill=1)
        d.rectangle([cx - bw / 4, cy - bh, cx + bw / 4, cy - bh / 2], fill=1)
        for ox in (-bw / 3, bw / 3):
            r = bh * 0.35
            d.ellipse([cx + ox - r, cy + bh / 2 - r, cx + ox + r, cy + bh / 2 + r], fill=1)
    elif shape == "wheels":
        r = s * 0.45
        thin = thin + 2  # thicker than the void band, or VOC's border swallows the whole frame
        for ox in (-s * 0.6, s * 0.6):
            d.ellipse([cx + ox - r, cy - r, cx + ox + r, cy + r], outline=1, width=thin)
            for k in range(4):
                a = k * np.pi / 4 + rng.uniform(0, np.pi)
                d.line([(cx + ox - r * np.cos(a), cy - r * np.sin(a)), (cx + ox + r * np.cos(a), cy + r * np.sin(a))],
                       fill=1, width=max(1, thin - 1))
        d.line([(cx - s * 0.6, cy), (cx, cy - r), (cx + s * 0.6, cy), (cx - s * 0.6, cy)], fill=1, width=thin)
    elif shape == "person":
        hr = s * 0.18
        d.ellipse([cx - hr, cy - s * 0.9 - hr, cx + hr, cy - s * 0.9 + hr], fill=1)
        d.rectangle([cx - s * 0.18, cy - s * 0.7, cx + s * 0.18, cy + s * 0.1], fill=1)
        for sx in (-1, 1):
            d.line([(cx + sx * s * 0.1, cy + s * 0.1), (cx + sx * s * 0.3, cy + s * 0.8)], fill=1, width=thin + 1)
            d.line([(cx + sx * s * 0.15, cy - s * 0.6), (cx + sx * s * 0.55, cy - s * 0.2)], fill=1, width=thin)
    elif shape == "plane":
        L = s * 1.3
        a = rng.uniform(-0.4, 0.4)
        ca, sa = np.cos(a), np.sin(a)

        def rot(px: float, py: float) -> tuple[float, float]:
            return cx + px * ca - py * sa, cy + px * sa + py * ca

        d.polygon([rot(-L / 2, -L * 0.06), rot(L / 2, -L * 0.03), rot(L / 2, L * 0.03), rot(-L / 2, L * 0.06)], fill=1)
        d.polygon([rot(-L * 0.05, 0), rot(L * 0.15, -L * 0.45), rot(L * 0.22, -L * 0.45), rot(L * 0.15, 0)], fill=1)
        d.polygon([rot(-L * 0.05, 0), rot(L * 0.15, L * 0.45), rot(L * 0.22, L * 0.45), rot(L * 0.15, 0)], fill=1)
        d.polygon([rot(-L / 2, 0), rot(-L * 0.42, -L * 0.18), rot(-L * 0.38, 0)], fill=1)
    elif shape == "bird":
        d.ellipse([cx - s * 0.35, cy - s * 0.2, cx + s * 0.35, cy + s * 0.2], fill=1)
        d.ellipse([cx + s * 0.25, cy - s * 0.32, cx + s * 0.48, cy - s * 0.08], fill=1)
        d.polygon([(cx - s * 0.1, cy), (cx - s * 0.5, cy - s * 0.7), (cx + s * 0.1, cy - s * 0.1)], fill=1)
        for ox in (-0.08, 0.08):
            d.line([(cx + ox * s, cy + s * 0.15), (cx + ox * s, cy + s * 0.55)], fill=1, width=max(1, thin - 1))
    else:  # pragma: no cover - guarded by SYNTH_CLASSES
        raise ValueError(shape)
    return np.asarray(img, dtype=bool)


def synth_voc_sample(rng: np.random.Generator, h: int, w: int, classes: list[int],
                     names: list[str], border: int) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 HxWx3, mask uint8 HxW) pair with VOC class indices and a void border."""
    bg_rgb = rng.uniform(70, 170, 3)
    img = bg_rgb[None, None, :] + 28 * pink_noise(rng, (h, w))[..., None] * rng.uniform(0.6, 1.2, 3)
    # a soft brightness ramp, like a sky or a lit wall
    ramp = np.linspace(-1, 1, h)[:, None, None] * rng.uniform(-25, 25)
    img = img + ramp
    mask = np.zeros((h, w), np.uint8)
    n_obj = int(rng.integers(1, 4))
    for _ in range(n_obj):
        k = int(rng.integers(len(classes)))
        spec = SYNTH_CLASSES[names[k]]
        obj = _draw_shape(spec["shape"], rng, h, w)
        if obj.sum() < 12:
            continue
        rgb = np.clip(np.array(spec["rgb"], float) + rng.normal(0, 18, 3), 0, 255)
        tex = _texture(spec["texture"], rng, h, w)
        obj_img = rgb[None, None, :] * (1 + 0.25 * tex[..., None])
        img[obj] = obj_img[obj]
        mask[obj] = classes[k]
    # The VOC void band: pixels near a label change are marked 255 and ignored by loss and mIoU.
    if border > 0:
        edges = np.zeros((h, w), bool)
        edges[:, 1:] |= mask[:, 1:] != mask[:, :-1]
        edges[1:, :] |= mask[1:, :] != mask[:-1, :]
        band = ndimage.binary_dilation(edges, iterations=border)
        mask = np.where(band, VOID, mask).astype(np.uint8)
    img = img + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _build_voc_synthetic(tmp: Path, params: dict) -> None:
    voc = tmp / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    names = list(params["classes"])
    classes = [VOC_CLASSES.index(n) for n in names]
    palette = voc_palette()
    rng = np.random.default_rng(params["seed"])
    ids: dict[str, list[str]] = {"train": [], "val": []}
    for split, n in (("train", params["num_train"]), ("val", params["num_val"])):
        for i in range(n):
            name = f"synth_{split}_{i:05d}"
            img, mask = synth_voc_sample(rng, params["height"], params["width"], classes, names, params["border"])
            Image.fromarray(img).save(voc / "JPEGImages" / f"{name}.jpg", quality=92)
            m = Image.fromarray(mask, mode="P")
            m.putpalette(palette)
            m.save(voc / "SegmentationClass" / f"{name}.png")
            ids[split].append(name)
    for split, names_ in ids.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names_) + "\n")
    (voc / "ImageSets" / "Segmentation" / "trainval.txt").write_text("\n".join(ids["train"] + ids["val"]) + "\n")


def build_voc_synthetic(root: str | os.PathLike, num_train: int = 400, num_val: int = 80, height: int = 120,
                        width: int = 160, seed: int = 0, border: int = 1,
                        classes: tuple[str, ...] = tuple(SYNTH_CLASSES)) -> Path:
    """Generate (once) the embedded VOC-layout set under ``root``; returns ``root``."""
    unknown = [c for c in classes if c not in SYNTH_CLASSES]
    if unknown:
        from upsample_zoo.errors import ConfigError

        raise ConfigError(f"voc_synthetic has no generator for classes {unknown}; choose from {list(SYNTH_CLASSES)}")
    params = dict(kind="voc_synthetic", version=1, num_train=int(num_train), num_val=int(num_val),
                  height=int(height), width=int(width), seed=int(seed), border=int(border), classes=list(classes))
    return ensure_built(Path(root), params, _build_voc_synthetic)


class SyntheticVOCDataModule(VOCDataModule):
    """The embedded default: generated on first use into ``root`` in the exact VOC layout, then read by
    the same loader as real VOC."""

    def __init__(self, root: str, num_train: int = 400, num_val: int = 80, height: int = 120, width: int = 160,
                 generator_seed: int = 0, border: int = 1, keep_classes: Sequence[str] | None = None,
                 **kwargs) -> None:
        keep = list(keep_classes) if keep_classes else list(SYNTH_CLASSES)
        super().__init__(root=root, download=False, keep_classes=keep, **kwargs)
        self.gen = dict(num_train=num_train, num_val=num_val, height=height, width=width, seed=generator_seed,
                        border=border, classes=tuple(SYNTH_CLASSES))

    def prepare_data(self) -> None:
        build_voc_synthetic(self.root, **self.gen)

    def setup(self, stage: str | None = None) -> None:
        build_voc_synthetic(self.root, **self.gen)
        super().setup(stage)
