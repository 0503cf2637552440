"""The toy task's data: seeded smooth random images (high) and their 2x2 averages (low), in [-1, 1]."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def smooth_images(n: int, side: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, side // 4, side // 4, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)


class ToyData(L.LightningDataModule):
    def __init__(self, num_train: int = 64, num_test: int = 16, crop_size: int = 32, batch_size: int = 8,
                 val_batch_size: int = 8, num_workers: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        high = {"train": smooth_images(h.num_train, h.crop_size, 0), "test": smooth_images(h.num_test, h.crop_size, 1)}
        self.sets = {k: TensorDataset(F.avg_pool2d(v, 2), v) for k, v in high.items()}

    def train_dataloader(self):
        return DataLoader(self.sets["train"], batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.sets["test"], batch_size=self.hparams.val_batch_size)

    def test_dataloader(self):
        return DataLoader(self.sets["test"], batch_size=self.hparams.val_batch_size)
