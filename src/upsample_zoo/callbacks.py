"""Lightning callbacks of the project (only what Lightning does not ship)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException


class TrainThroughput(L.Callback):
    """Training images per second, timed over the training steps only (no validation, no loading)."""

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._t0 = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.seconds += time.perf_counter() - self._t0
        # segmentation batches are (images, masks); unlabelled GAN batches are the image tensor itself
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.images += int(images.shape[0])

    @property
    def images_per_second(self) -> float | None:
        return round(self.images / self.seconds, 3) if self.seconds > 0 else None


class EpochSeed(L.Callback):
    """Reseed every RNG at the start of each training epoch from (seed, epoch).

    Each epoch's shuffling, augmentation and noise then depend on nothing but the seed and the epoch,
    so a run resumed from an epoch-end checkpoint replays exactly what an uninterrupted run does.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        L.seed_everything(self.seed * 1000 + trainer.current_epoch, workers=True, verbose=False)


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM (preemption), overwrite ``last.ckpt`` with the current state before exiting, so that
    ``ckpt_path=last`` resumes from where the job was stopped. Other exceptions save nothing: a diverged
    run keeps its last good checkpoint."""

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.path)  # atomic: Lightning writes through an fsspec transaction
