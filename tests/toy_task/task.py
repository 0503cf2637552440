"""The toy task's LightningModule: MSE training, PSNR at test time, and its declaration for the report."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.image import PeakSignalNoiseRatio

from upsample_zoo.metrics.facts import MetricFact
from upsample_zoo.tasks import TaskDeclaration, ZooTask

PSNR = "test/psnr"


class ToyPSNR(PeakSignalNoiseRatio):
    """torchmetrics' PSNR carrying its facts; the direction is the torchmetrics class's own."""

    facts = {"psnr": MetricFact("max" if PeakSignalNoiseRatio.higher_is_better else "min", "PSNR dB",
                                "10 log10(range² / MSE) over the test split, range 2 (tanh images)")}


class ToyTask(ZooTask):
    declaration = TaskDeclaration("toy", (PSNR,)).with_facts(ToyPSNR)

    def __init__(self, model: torch.nn.Module, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.val_psnr = ToyPSNR(data_range=2.0)
        self.test_psnr = ToyPSNR(data_range=2.0)

    def training_loss(self, batch) -> torch.Tensor:
        low, high = batch
        return F.mse_loss(self.model(low), high)

    def validation_step(self, batch, batch_idx: int) -> None:
        low, high = batch
        self.val_psnr.update(self.model(low), high)
        self.log("val/psnr", self.val_psnr)

    def test_step(self, batch, batch_idx: int) -> None:
        low, high = batch
        self.test_psnr.update(self.model(low), high)
        self.log(PSNR, self.test_psnr)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)

    @classmethod
    def synthetic_batches(cls, cfg, n: int, generator: torch.Generator) -> list:
        side, bs = int(cfg.data.crop_size), int(cfg.data.batch_size)
        highs = [torch.rand(bs, 3, side, side, generator=generator) * 2 - 1 for _ in range(n)]
        return [(F.avg_pool2d(h, 2), h) for h in highs]
