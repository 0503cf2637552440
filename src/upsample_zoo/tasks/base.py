"""ZooTask: what every task shows the rest of the house. The report and the bench read a task through this
face only, never by its name:

- ``declaration``: its headline metrics with their directions and labels (written into results.json, which is
  all the report reads) and what the bench measures of it (tasks/declarations.py);
- ``training_loss``: one batch's loss, which ``training_step`` logs and a plain PyTorch loop (the bench's
  baseline) minimises; a task with several optimizers overrides ``plain_step`` instead;
- ``synthetic_batches`` and ``describe_workload``: in-memory batches of the right shapes for the bench.

A new task subclasses it, sets ``declaration`` and writes ``training_loss`` and its test metrics; see
docs/contributing.md ("A new task") and tests/tasks/test_toy_task.py, which adds one from four files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch

from upsample_zoo.metrics.facts import MIN, MetricFact
from upsample_zoo.tasks.declarations import TaskDeclaration

TRAINING_FACTS = {"loss": MetricFact(MIN, "loss", "the task's training loss, averaged over the epoch's batches")}


class ZooTask(L.LightningModule):
    declaration: ClassVar[TaskDeclaration] = TaskDeclaration("task", ())

    def __init__(self, compile: bool = False) -> None:  # noqa: A002 - the config's name (model.compile)
        super().__init__()
        self.compile_model = compile
        self._compiled = False

    def compiled_modules(self) -> list[torch.nn.Module]:
        """What ``model.compile=true`` compiles: the modules the steps call (the model, by default)."""
        return [self.model]

    def setup(self, stage: str) -> None:
        """``model.compile=true``: torch.compile in place, once, on the device the Trainer chose (the
        state dict keeps its keys, so checkpoints load either way)."""
        if self.compile_model and not self._compiled:
            for m in self.compiled_modules():
                m.compile()
            self._compiled = True

    def training_loss(self, batch: Any) -> torch.Tensor:
        """The loss of one training batch (a single-optimizer task's whole step)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither training_loss nor plain_step")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=_batch_size(batch))
        return loss

    def plain_step(self) -> Callable[[Any], None]:
        """One training step as a plain PyTorch loop, with fresh optimizers of its own (what a new fit would
        have): ``training_loss``, backward, step. The bench times it against the Lightning step."""
        opt = self.configure_optimizers()
        opt = opt["optimizer"] if isinstance(opt, dict) else opt

        def step(batch: Any) -> None:
            opt.zero_grad(set_to_none=True)
            self.training_loss(batch).backward()
            opt.step()
        return step

    @classmethod
    def synthetic_batches(cls, cfg: Any, n: int, generator: torch.Generator) -> list:
        """``n`` seeded batches shaped as the configured data module's (``cfg`` is the composed run config)."""
        raise NotImplementedError(f"{cls.__name__} does not say how its batches look (synthetic_batches)")

    @classmethod
    def describe_workload(cls, cfg: Any) -> str:
        """One line naming the model, its upsampler and the batch shape (the bench's rows print it)."""
        return f"{cfg.model._target_.rsplit('.', 1)[-1]}, upsampler {cfg.upsampler._target_.rsplit('.', 1)[-1]}"

    def protocol(self) -> dict:
        """How each headline metric is computed, in words (results.json ``protocol``)."""
        return {}


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])
