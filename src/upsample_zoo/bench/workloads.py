"""The training workloads the rows run: the real configs composed as ``train.py`` would, the model and its
LightningModule, batches held in memory, the same step as a plain PyTorch loop (calling the task's own loss
methods), a Trainer with everything but training switched off, and interleaved (Lightning, plain) pairs."""

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
from upsample_zoo.constants import VOID


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


def build_model(cfg) -> torch.nn.Module:
    """The model with its upsampler, as upsample_zoo.train.build makes it (eager: ``model.compile`` ignored)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("compile", None)
    return instantiate(model_cfg, upsampler=instantiate(cfg.upsampler))


def plain_step(task_name: str, task) -> Callable[[Any], None]:
    """One training step of ``task`` as a plain PyTorch loop: the task's own loss methods (so every loss term,
    the GAN's spectral regulariser included, is the Lightning step's), with optimizers of its own."""
    if task_name == "segmentation":
        opt = task.optimizer_factory(params=task.parameters())

        def step(batch) -> None:
            opt.zero_grad(set_to_none=True)
            task.loss(batch).backward()
            opt.step()
        return step

    opt_g, opt_d = task.configure_optimizers()

    def gan_step(real) -> None:  # the order of GANTask.training_step: D on detached fakes, then G
        fake = task.fake_batch(real.shape[0], real.device)
        loss_d, _, _ = task.discriminator_loss(real, fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = task.generator_loss(real, fake)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return gan_step


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
        """A fresh plain step (new optimizers, as a new fit would have)."""
        return plain_step(self.task_name, self.task)


def _batches(task_name: str, cfg, n: int, device: torch.device) -> tuple[list, str]:
    """n seeded in-memory batches for the task's model, and a one-line description of the workload."""
    bs, g = int(cfg.data.batch_size), torch.Generator().manual_seed(0)
    up = cfg.upsampler._target_.rsplit(".", 1)[-1]
    if task_name == "segmentation":
        side, classes = int(cfg.data.crop_size), int(cfg.data.num_classes)
        batches = []
        for _ in range(n):
            y = torch.randint(0, classes, (bs, side, side), generator=g)
            y[:, :, :2] = VOID
            batches.append((torch.randn(bs, 3, side, side, generator=g).to(device), y.to(device)))
        return batches, (f"U-Net base {cfg.model.base_channels}, depth {cfg.model.depth}, upsampler {up}, "
                         f"batch {bs}x3x{side}x{side}")
    size = int(cfg.data.image_size)
    batches = [(torch.rand(bs, 3, size, size, generator=g) * 2 - 1).to(device) for _ in range(n)]
    return batches, f"DCGAN ngf {cfg.model.ngf}, ndf {cfg.model.ndf}, upsampler {up}, batch {bs}x3x{size}x{size}"


def build_workload(task_name: str, overrides: Sequence[str], root: Path, device: torch.device,
                   n_batches: int = 4) -> Workload:
    from hydra.utils import instantiate

    cfg = compose_config([f"task={task_name}", *overrides], root)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    task = instantiate(cfg.task, model=model, _convert_="all")
    batches, describe = _batches(task_name, cfg, n_batches, device)
    return Workload(task_name, cfg, model, task, batches, int(cfg.data.batch_size), describe)


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
