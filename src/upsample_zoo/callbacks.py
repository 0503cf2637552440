"""Lightning callbacks of the project (only what Lightning does not ship)."""

from __future__ import annotations

import time

import lightning as L
import torch


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
        self.images += int(batch[0].shape[0])

    @property
    def images_per_second(self) -> float | None:
        return round(self.images / self.seconds, 3) if self.seconds > 0 else None
