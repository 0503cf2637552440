"""SegmentationTask: cross-entropy training with void ignored, mIoU/pixel accuracy, prediction grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.constants import VOID
from upsample_zoo.data.encoded import crop_features
from upsample_zoo.errors import DivergenceError
from upsample_zoo.figures import log_image, save_grid_error_figure, save_prediction_grid, save_spectrum_figure
from upsample_zoo.metrics.boundary import BoundaryIoU, GridErrorMap
from upsample_zoo.metrics.checkerboard import CheckerboardScore
from upsample_zoo.metrics.segmentation import SegmentationConfusion, confusion_metric, scores_from_confusion
from upsample_zoo.tasks.base import TRAINING_FACTS, ZooTask
from upsample_zoo.tasks.declarations import BenchData, BenchFacts, TaskDeclaration

SEGMENTATION = TaskDeclaration(
    "segmentation",
    ("test/miou", "test/boundary_iou", "test/pixel_acc", "test/checkerboard_db", "test/grid_error_contrast"),
    bench=BenchFacts(
        tiny_overrides=("model.base_channels=2", "model.depth=2", "data.crop_size=16", "data.batch_size=2"),
        data={"synthetic": BenchData("voc_synthetic (VOC layout, 160x120 JPEG+PNG)",
                                     ("data=voc_synthetic", "data.root={root}", "data.num_train={images}",
                                      "data.num_val={val_images}"), images=(400, 32)),
              "image_folder": BenchData("VOC-layout folder at VOC size (500x375 JPEG+PNG)",
                                        ("data=voc_synthetic", "data.root={root}", "data.num_train={images}",
                                         "data.num_val={val_images}", "data.height=375", "data.width=500"),
                                        images=(48, 12))},
        quick_overrides=("data.batch_size=2",), quick_threads=False, checkerboard="test_epoch",
        checkerboard_data=("synthetic", "image_folder")),
).with_facts(SegmentationConfusion, BoundaryIoU, GridErrorMap, CheckerboardScore, TRAINING_FACTS)


class SegmentationTask(ZooTask):
    declaration = SEGMENTATION

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        num_classes: int = 21,
        class_names: Sequence[str] | None = None,
        ignore_index: int = VOID,
        figure_dir: str | None = None,
        num_figure_images: int = 4,
        checkerboard_window: int = 112,
        compile: bool = False,  # noqa: A002 - model.compile: torch.compile in setup() (tasks/base.py)
    ) -> None:
        super().__init__(compile=compile)
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.ignore_index = ignore_index
        self.figure_dir = Path(figure_dir) if figure_dir else None
        self.num_figure_images = num_figure_images
        self.val_cm = confusion_metric(num_classes, ignore_index)
        self.test_cm = confusion_metric(num_classes, ignore_index)
        self._figure_batch: tuple[torch.Tensor, ...] | None = None
        self.test_pixels = 0  # pixels scored at test time (void excluded): the protocol's denominator
        # The checkerboard score of the softmax maps, on a fixed centre window: spectra must share a size
        # (VOC images differ), and dB values are only comparable at equal size.
        self.checkerboard_window = checkerboard_window
        self.test_checkerboard = CheckerboardScore(scale=getattr(model, "total_stride", 2))
        self.checkerboard_skipped = 0
        # boundary IoU and the stride-grid error map: where upsamplers differ, at edges and at grid phases
        self.test_boundary_iou = BoundaryIoU(num_classes, ignore_index=ignore_index)
        self.test_grid_error = GridErrorMap(stride=getattr(model, "total_stride", 2), ignore_index=ignore_index)

    def forward(self, x: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        # features: a frozen encoder's cached maps (data/encoded.py); only such a model is ever given them
        return self.model(x) if features is None else self.model(x, features=features)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index)

    def training_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The training loss of one batch, (images, masks, sizes[, features]) from encoded_collate or a plain
        (images, masks): what training_step minimises, and what a plain PyTorch loop (the bench's baseline) calls."""
        x, y, *rest = batch
        return self._loss(self(x, rest[1] if len(rest) > 1 else None), y)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x = batch[0]
        loss = self.training_loss(batch)
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, step {self.global_step}; "
                "lower the learning rate (task.optimizer.lr) or check the inputs"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=x.shape[0])
        return loss

    def eval_logits(self, x: torch.Tensor, sizes: torch.Tensor | None,
                    features: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Each image's logits, (C, h, w), from its own forward at its true size.

        A padded batch would let the network see the other images' padding (a convolution reads across the
        bottom/right edge), and an odd-sized image would take the padded size's path through the decoder:
        its prediction would depend on what it was batched with. A batch of equal sizes is one forward."""
        if sizes is None or bool((sizes == torch.tensor(x.shape[-2:], device=sizes.device)).all()):
            return list(self(x, features))
        own = (lambda i, h, w: crop_features(features, i, h, w, self.model.encoder.strides)) if features else (
            lambda i, h, w: None)
        return [self(x[i : i + 1, :, :h, :w], own(i, h, w))[0] for i, (h, w) in enumerate(sizes.tolist())]

    @staticmethod
    def _padded(logits: list[torch.Tensor], size: torch.Size) -> torch.Tensor:
        """Stack per-image logits back onto the batch's padded grid (the padding's masks are void)."""
        return torch.stack([F.pad(t, (0, size[-1] - t.shape[-1], 0, size[-2] - t.shape[-2])) for t in logits])

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y, *rest = batch
        logits = self._padded(self.eval_logits(x, *rest), y.shape)
        self.log("val/loss", self._loss(logits, y), on_epoch=True, batch_size=x.shape[0])
        self.val_cm.update(logits.argmax(1), y)

    def on_validation_epoch_end(self) -> None:
        scores = scores_from_confusion(self.val_cm.compute())
        self.log("val/miou", scores["miou"].float(), prog_bar=True)
        self.log("val/pixel_acc", scores["pixel_acc"].float())
        self.val_cm.reset()

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y, *rest = batch
        sizes = rest[0] if rest else None  # each image's true (h, w) inside the padded batch
        per_image = self.eval_logits(x, *rest)
        logits = self._padded(per_image, y.shape)
        pred = logits.argmax(1)
        self.test_cm.update(pred, y)
        self.test_boundary_iou.update(pred, y, sizes=sizes)
        self.test_grid_error.update(pred, y)  # padding is void, and phases count from the top-left: no sizes

        if batch_idx == 0:
            k = self.num_figure_images
            self._figure_batch = (x[:k].cpu(), y[:k].cpu(), pred[:k].cpu())
        self.score_checkerboard(logits, [t.shape[-2:] for t in per_image])

    def score_checkerboard(self, logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> None:
        """The checkerboard score reads each image's class-probability maps (C, h, w), centre window: a
        checkerboard in the logits is the dense-prediction form of the artifact. ``logits`` is the padded batch
        (each image top-left, at its true size in ``sizes``). The windows of a batch share one size, so they go
        through the spectra as one batch (one FFT call); a batch of equal sizes has one window position, and
        its windows are a view of the batch, not a copy."""
        win = self.checkerboard_window
        fits = [i for i, (h, w) in enumerate(sizes) if min(h, w) >= win]
        self.checkerboard_skipped += len(sizes) - len(fits)
        if not fits:
            return
        corners = [((sizes[i][0] - win) // 2, (sizes[i][1] - win) // 2) for i in fits]
        if len(fits) == len(sizes) and len(set(corners)) == 1:
            top, left = corners[0]
            windows = logits[:, :, top : top + win, left : left + win]
        else:
            windows = torch.stack([logits[i, :, top : top + win, left : left + win]
                                   for i, (top, left) in zip(fits, corners)])
        # the score takes the softmax over classes itself, on the pixels it reads only
        self.test_checkerboard.update(windows, softmax_dim=1)

    def on_test_epoch_end(self) -> None:
        cm = self.test_cm.compute()
        self.test_pixels = int(cm.sum())
        scores = scores_from_confusion(cm)
        self.log("test/miou", scores["miou"].float())
        self.log("test/pixel_acc", scores["pixel_acc"].float())
        for name, v in zip(self.class_names, scores["iou"]):
            if torch.isfinite(v):
                self.log(f"test/iou/{name}", v.float())
        self.test_cm.reset()
        if self.test_checkerboard.count.item() > 0:
            for k, v in self.test_checkerboard.compute().items():
                self.log(f"test/{k}", v.float())
        if self._figure_batch is not None and self.figure_dir is not None and self.global_rank == 0:
            path = save_prediction_grid(*self._figure_batch, self.figure_dir / "predictions.png")
            log_image(self.loggers, "test/predictions", path)
            if self.test_checkerboard.count.item() > 0:
                spec = save_spectrum_figure(self.test_checkerboard.mean_power(), self.figure_dir / "spectrum_2d.png",
                                            "softmax maps: mean log-power")
                log_image(self.loggers, "test/spectrum_2d", spec)
        self.test_checkerboard.reset()
        self._log_boundary_and_grid()

    def _log_boundary_and_grid(self) -> None:
        """Issue 9: test/boundary_iou, test/grid_error_contrast and the grid_error.png heat map."""
        biou = self.test_boundary_iou.compute()
        if torch.isfinite(biou):
            self.log("test/boundary_iou", biou.float())
        if self.test_grid_error.counts.sum().item() > 0:
            contrast = self.test_grid_error.compute()
            self.log("test/grid_error_contrast", contrast.float())
            if self.figure_dir is not None and self.global_rank == 0:
                path = save_grid_error_figure(self.test_grid_error.rates(), self.figure_dir / "grid_error.png",
                                              contrast=float(contrast))
                log_image(self.loggers, "test/grid_error", path)
        self.test_boundary_iou.reset()
        self.test_grid_error.reset()

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = getattr(self._trainer, "datamodule", None)  # None outside a Trainer
        if dm is not None and getattr(dm, "class_names", None):
            self.class_names = list(dm.class_names)

    def protocol(self) -> dict:
        return {
            "miou": "torchmetrics MulticlassConfusionMatrix accumulated over the whole test split at the "
            f"original mask resolution, each image through its own forward at its true size (never padded to "
            f"a batch), ignore_index={self.ignore_index}; IoU_c = TP/(TP+FP+FN); mIoU = mean "
            "over classes with a non-empty union; test split = VOC val (test labels are not public); "
            "weights of the last epoch",
            "num_classes": self.num_classes,
            "test_pixels": self.test_pixels,
            "checkerboard": f"upsample_zoo.metrics.checkerboard on softmax class-probability maps, centre "
            f"{self.checkerboard_window}x{self.checkerboard_window} window, scale {self.test_checkerboard.scale} "
            f"(the decoder's total stride); images smaller than the window skipped: {self.checkerboard_skipped}",
            "boundary_iou": "upsample_zoo.metrics.boundary.BoundaryIoU (Cheng et al. 2021): inner boundary bands "
            "of width d = max(1, round(0.02 x image diagonal)) by erosion (max-pooling), image border = contour; "
            f"intersection and union summed per class over the test split, ignore_index={self.ignore_index}; mean "
            "over classes with a non-empty union",
            "grid_error": f"error rate binned by (y mod {self.test_grid_error.stride}, x mod "
            f"{self.test_grid_error.stride}) (the decoder's total stride), ignore_index={self.ignore_index}; "
            "contrast = max/min bin rate, a bin without errors counts half an error; heat map grid_error.png",
        }

    @classmethod
    def synthetic_batches(cls, cfg, n: int, generator: torch.Generator) -> list:
        """(images, masks) at the configured crop, batch and classes, with a void border strip."""
        bs, side, classes = int(cfg.data.batch_size), int(cfg.data.crop_size), int(cfg.data.num_classes)
        batches = []
        for _ in range(n):
            y = torch.randint(0, classes, (bs, side, side), generator=generator)
            y[:, :, :2] = VOID
            batches.append((torch.randn(bs, 3, side, side, generator=generator), y))
        return batches

    @classmethod
    def describe_workload(cls, cfg) -> str:
        up = cfg.upsampler._target_.rsplit(".", 1)[-1]
        return (f"U-Net base {cfg.model.base_channels}, depth {cfg.model.depth}, upsampler {up}, "
                f"batch {cfg.data.batch_size}x3x{cfg.data.crop_size}x{cfg.data.crop_size}")

    def configure_optimizers(self):
        # a frozen encoder's parameters are not the optimizer's (nor its weight decay's)
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

