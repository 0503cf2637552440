"""The training workloads the rows run: the real configs composed as ``train.py`` would, the model and its
LightningModule (built as ``train.py`` builds them), batches held in memory, the same step as a plain PyTorch
loop (the task's own ``plain_step``), a Trainer with everything but training switched off, and interleaved
(Lightning, plain) pairs."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from upsample_zoo.bench.measure import Clock, Stopwatch, sync
from upsample_zoo.bench.settings import CONFIG_DIR


def compose_config(overrides: Sequence[str], root: Path):
    """The real configs composed as ``python train.py <overrides>`` would, rooted at ``root``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.root_dir={root}", f"paths.output_dir={root / 'out'}"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@dataclass
class Workload:
    """One task's training workload: the real model and LightningModule, batches held in memory, and the
    same step written as a plain PyTorch loop."""

    task_name: str
    cfg: Any
    model: torch.nn.Module
    task: Any
    batches: list = field(repr=False)
    batch_size: int
    describe: str

    def make_plain_step(self) -> Callable[[Any], None]:
        """A fresh plain step (new optimizers, as a new fit would have): the task's own (ZooTask.plain_step)."""
        return self.task.plain_step()


def workload_overrides(task_name: str, s) -> tuple[str, ...]:
    """The task's workload in this bench mode: the config defaults, or its declared quick overrides."""
    from upsample_zoo.tasks.declarations import declared

    return declared(task_name).bench.quick_overrides if s.quick else ()


def build_workload(task_name: str, overrides: Sequence[str], root: Path, device: torch.device,
                   n_batches: int = 4) -> Workload:
    """The task's real model and LightningModule from the composed configs, and ``n_batches`` seeded batches
    shaped by the task itself (``ZooTask.synthetic_batches``)."""
    from hydra.utils import instantiate

    from upsample_zoo.models.build import build_model

    cfg = compose_config([f"task={task_name}", *overrides], root)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    task = instantiate(cfg.task, model=model, _convert_="all")
    kind = type(task)
    batches = [_to(b, device) for b in kind.synthetic_batches(cfg, n_batches, torch.Generator().manual_seed(0))]
    return Workload(task_name, cfg, model, task, batches, int(cfg.data.batch_size), kind.describe_workload(cfg))


def _to(batch: Any, device: torch.device) -> Any:
    return tuple(t.to(device) for t in batch) if isinstance(batch, (tuple, list)) else batch.to(device)


class InMemory:
    """An iterable of ready batches (a list would be read by Lightning as a list of dataloaders)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@contextlib.contextmanager
def quiet_lightning():
    """No info banners or possible-user warnings from Lightning while measuring."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, lvl in zip(loggers, levels):
                lg.setLevel(lvl)


def bare_trainer(device: torch.device, root: Path, callbacks: list, **kwargs):
    """A Trainer with everything that is not training switched off (what the overhead row measures)."""
    import lightning as L

    return L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_epochs=1,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, precision="32-true",
                     default_root_dir=str(root), callbacks=callbacks, **kwargs)


def plain_block(w: Workload, steps: int, device: torch.device) -> Clock:
    """``steps`` timed plain steps after one warm-up step (fresh optimizer, as a new fit would have)."""
    step = w.make_plain_step()
    w.model.train()
    n = len(w.batches)
    step(w.batches[0])
    watch = Stopwatch(device)
    watch.start()
    for i in range(steps):
        step(w.batches[(i + 1) % n])
    return watch.stop()


def _interleave_callback(plain_step_fn: Callable[[Any], None], device: torch.device):
    """The callback that runs (and times) a plain step next to each Lightning step; see ``interleaved_fit``."""
    import lightning as L

    class Interleave(L.Callback):
        def __init__(self) -> None:
            self.plain: list[Clock] = []
            self.light: list[Clock] = []
            self.prev: Clock | None = None
            self.inner = Clock()  # plain-step time spent since self.prev

        def _plain(self, batch, batch_idx) -> None:
            watch = Stopwatch(device)
            watch.start()
            plain_step_fn(batch)
            clock = watch.stop()
            self.inner = self.inner + clock
            if batch_idx >= 1:
                self.plain.append(clock)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            sync(device)
            now = Clock.now()
            if self.prev is not None and batch_idx >= 2:
                self.light.append(now - self.prev - self.inner)
            self.prev, self.inner = now, Clock()
            if batch_idx % 2:  # alternate the order: plain before the Lightning step on odd steps, after on even
                self._plain(batch, batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx % 2 == 0:
                self._plain(batch, batch_idx)

    return Interleave()


def interleaved_fit(w: Workload, steps: int, device: torch.device, root: Path) -> tuple[list[Clock], list[Clock]]:
    """One ``Trainer.fit`` with a plain step run (and timed) next to each Lightning step, on the same batch and
    model with a plain optimizer of its own (alternately just before and just after it): pairs of steps a few
    hundred ms apart, so that a shared machine's load hits both sides alike.

    Lightning step i = (start of step i+1) - (start of step i) - (the plain steps run in between): every hook,
    the logging, the loop's bookkeeping and the next batch's fetch. Step 0 of each side warms up (optimizer
    state) and is not counted. Returns (plain, lightning) clocks, one per step.
    """
    cb = _interleave_callback(w.make_plain_step(), device)
    n = len(w.batches)
    data = InMemory([w.batches[i % n] for i in range(steps + 2)])
    with quiet_lightning():
        bare_trainer(device, root, [cb], limit_val_batches=0).fit(w.task, train_dataloaders=data)
    k = min(len(cb.plain), len(cb.light))
    if k < 1:
        raise RuntimeError("Lightning ran fewer training steps than asked")
    return cb.plain[:k], cb.light[:k]
