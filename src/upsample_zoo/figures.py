"""Run figures (PNG, written atomically) and sending them to the loggers that take images."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: importing this never switches a notebook's backend
from torch import Tensor

from upsample_zoo.atomic import atomic_write_bytes
from upsample_zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from upsample_zoo.data.voc import voc_palette
from upsample_zoo.metrics.spectrum import HF_BAND, LF_BAND, power_db

IMAGENET_MEAN, IMAGENET_STD = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")  # a plain Figure renders through Agg
    return atomic_write_bytes(path, buf.getvalue())


def colorize(mask: np.ndarray) -> np.ndarray:
    pal = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)
    return pal[mask.astype(np.int64).clip(0, 255)]


def save_prediction_grid(images: torch.Tensor, targets: torch.Tensor, preds: torch.Tensor,
                         path: str | Path) -> Path:
    """Rows of image | ground truth | prediction (VOC palette; void drawn in its palette colour)."""
    n = images.shape[0]
    fig = Figure(figsize=(7.5, 2.2 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        img = images[i].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN
        for ax, arr, title in zip(axes[i], (img.clip(0, 1), colorize(targets[i].numpy()),
                                            colorize(preds[i].numpy())), ("image", "ground truth", "prediction")):
            ax.imshow(arr, interpolation="nearest")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """A grid of images in [-1, 1] or [0, 1] (float) or uint8, saved losslessly."""
    from PIL import Image
    from torchvision.utils import make_grid

    x = images.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif x.min() < 0:
        x = (x + 1) / 2
    grid = make_grid(x.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def log_image(loggers: Sequence, key: str, path: Path) -> None:
    """Send a saved PNG to every logger that takes images (wandb, tensorboard)."""
    for lg in loggers:
        if hasattr(lg, "log_image"):  # WandbLogger
            lg.log_image(key=key, images=[str(path)])
        elif hasattr(getattr(lg, "experiment", None), "add_image"):  # TensorBoardLogger
            from PIL import Image

            lg.experiment.add_image(key, np.asarray(Image.open(path).convert("RGB")), dataformats="HWC")


def save_spectrum_figure(power2d: Tensor, path: str | Path, title: str = "mean log-power spectrum") -> Path:
    """The 2-D mean power spectrum (linear, unshifted, e.g. ``metric.mean_power()``) as fftshifted dB."""
    db = torch.fft.fftshift(power_db(power2d.detach().double().cpu())).numpy()
    h, w = db.shape
    fy, fx = (torch.fft.fftshift(torch.fft.fftfreq(n, dtype=torch.float64)).tolist() for n in (h, w))
    fig = Figure(figsize=(4.2, 3.6))
    ax = fig.subplots()
    im = ax.imshow(db, cmap="magma", origin="lower", extent=(
        fx[0] - 0.5 / w, fx[-1] + 0.5 / w, fy[0] - 0.5 / h, fy[-1] + 0.5 / h))
    ax.set_xlabel("f_x (cycles/px)")
    ax.set_ylabel("f_y (cycles/px)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="dB")
    return save_figure(fig, path)


def save_azimuthal_figure(curves: Mapping[str, tuple[Tensor, Tensor]], path: str | Path,
                          title: str = "azimuthal power spectrum") -> Path:
    """1-D spectra {label: (freqs, power)} on one plot, power in dB."""
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for label, (f, s) in curves.items():
        f, s = torch.as_tensor(f).detach().cpu(), torch.as_tensor(s).detach().double().cpu()
        ax.plot(f[1:].numpy(), power_db(s[1:]).numpy(), label=label, lw=1.2)
    for edge in (*LF_BAND, HF_BAND[0]):
        ax.axvline(edge, color="0.8", lw=0.8, ls="--")
    ax.set_xlabel("radius (cycles/px)")
    ax.set_ylabel("power (dB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_grid_error_figure(rates: Tensor, path: str | Path, contrast: float | None = None,
                           title: str = "error rate by stride-grid phase") -> Path:
    """Heat map of the (stride, stride) error-rate map: row = y mod stride, column = x mod stride."""
    r = rates.detach().double().cpu().numpy()
    s = r.shape[0]
    fig = Figure(figsize=(4.2, 3.6))
    ax = fig.subplots()
    im = ax.imshow(r, cmap="viridis", origin="upper", interpolation="nearest")
    ax.set_xlabel(f"x mod {s}")
    ax.set_ylabel(f"y mod {s}")
    if contrast is not None:
        title = f"{title}\nmax/min = {contrast:.3g}"
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="error rate")
    return save_figure(fig, path)


def save_montage(panels: Sequence[tuple[str, Path]], path: str | Path) -> Path:
    """One labelled row per (label, PNG file), stacked: e.g. every operator's prediction grid of one seed."""
    from PIL import Image

    fig = Figure(figsize=(7.5, 2.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)
    for ax, (label, png) in zip(axes[:, 0], panels):
        with Image.open(png) as im:
            ax.imshow(np.asarray(im.convert("RGB")))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=10)
    return save_figure(fig, path)
