"""Row 5, checkerboard metric: its cost as a fraction of each task's test epoch, as the task declares it is
measured (tasks/declarations.py, ``BenchFacts.checkerboard``): ``test_epoch``, inside a real ``trainer.test``;
``composed``, from measured parts of a sampled test epoch. Target < 1%."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from upsample_zoo.bench.data import build_datamodule, data_set
from upsample_zoo.bench.fid_speed import fid_images
from upsample_zoo.bench.measure import (
    Accumulator,
    Failed,
    Stopwatch,
    Summary,
    fmt,
    log,
    percent,
    ratio_summary,
    summarize,
    sync,
)
from upsample_zoo.bench.settings import Settings
from upsample_zoo.bench.workloads import Workload, bare_trainer, quiet_lightning
from upsample_zoo.report.table_model import Table, md_plain, md_table
from upsample_zoo.tasks.declarations import declared

COMPOSED_HOW = ("composed: checkerboard and sampling measured (best of 2); FID extraction = n_fake / the "
           "project path's img/s from row 4; FID compute() left out, so the fraction is an upper bound")


@dataclass
class TestEpochCost:
    data: str
    images: int
    test_epoch_s: Summary
    checkerboard_s: Summary
    fraction: Summary
    how: str = "measured inside trainer.test (figures off)"


@dataclass
class ComposedCost:
    n_fake: int
    n_real: int
    checkerboard_s: float
    sampling_s: float
    fid_extraction_s: float | None
    test_epoch_s: float
    fraction: dict | None
    how: str = COMPOSED_HOW


Checkerboard = dict  # task -> TestEpochCost | ComposedCost | Failed


def rows(task: str) -> list[tuple[str, str]]:
    """(row key, data kind) of the task's rows: the task itself on its synthetic data, then ``task/kind``."""
    facts = declared(task).bench
    if facts.checkerboard is None:
        return []
    kinds = facts.checkerboard_data if facts.checkerboard == "test_epoch" else ("synthetic",)
    return [(task if kind == "synthetic" else f"{task}/{kind}", kind) for kind in kinds]


def run(task: str, kind: str, s: Settings, device: torch.device, work: Path, workload: Callable[[str], Workload],
        fid_img_s: float | None) -> TestEpochCost | ComposedCost:
    """One row of the task, the way it declares: a real test epoch on its ``kind`` of data, or one composed
    of measured parts."""
    how = declared(task).bench.checkerboard
    if how == "test_epoch":
        return run_test_epoch(task, kind, s, device, work)
    if how == "composed":
        return run_composed(workload(task), fid_img_s, device)
    raise ValueError(f"task {task}: unknown checkerboard measurement {how!r} (test_epoch | composed)")


def timed_test_task(cfg, model: torch.nn.Module, spent: Accumulator):
    """The configured task (figures off), as a subclass whose checkerboard work
    (``score_checkerboard``: crop, softmax, spectra; and the score's compute) adds its time to ``spent``."""
    from hydra.utils import instantiate

    make = instantiate(cfg.task, model=model, figure_dir=None, _convert_="all", _partial_=True)

    class TimedTask(make.func):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            score = self.test_checkerboard

            class TimedScore(type(score)):
                def compute(self):
                    with spent:
                        return super().compute()

            self.test_checkerboard = TimedScore(scale=score.scale)

        def score_checkerboard(self, *args) -> None:
            with spent:
                super().score_checkerboard(*args)

    return TimedTask(*make.args, **make.keywords)


def _epoch_timer(device: torch.device):
    import lightning as L

    class EpochTimer(L.Callback):
        def on_test_epoch_start(self, trainer, pl_module):
            self.watch = Stopwatch(device)
            self.watch.start()

        def on_test_end(self, trainer, pl_module):
            self.clock = self.watch.stop()

    return EpochTimer()


def run_test_epoch(task_name: str, kind: str, s: Settings, device: torch.device, work: Path) -> TestEpochCost:
    """A real test epoch (trainer.test on the val split of the task's ``kind`` of data), with the checkerboard score's
    own work (``score_checkerboard``: crop, softmax, spectra; and compute) timed inside it. Figures off: a
    conservative fraction."""
    from upsample_zoo.models.build import build_model

    dm, cfg = build_datamodule(task_name, kind, s, work)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    epochs, cb_times = [], []
    for _ in range(s.cb_repeats + 1):
        spent = Accumulator(device)
        task = timed_test_task(cfg, model, spent)
        timer = _epoch_timer(device)
        with quiet_lightning():
            bare_trainer(device, work, [timer]).test(task, datamodule=dm, verbose=False)
        epochs.append(timer.clock.wall)
        cb_times.append(spent.seconds)
    epochs, cb_times = epochs[1:], cb_times[1:]  # the first epoch warms up
    frac = ratio_summary(cb_times, epochs)
    log(f"checkerboard ({task_name}, {kind}): {frac['median'] * 100:.2f}% of the test epoch")
    return TestEpochCost(data=data_set(task_name, kind).label, images=len(dm.val_set), test_epoch_s=summarize(epochs),
                            checkerboard_s=summarize(cb_times), fraction=frac)


def run_composed(w: Workload, fid_img_s: float | None, device: torch.device) -> ComposedCost:
    """A sampling task's test epoch at the config's n_fake/n_real: the checkerboard part is measured; the rest
    (sampling, FID feature extraction at the project path's measured rate) is composed from measured parts,
    leaving out the FID compute(), so the fraction is an upper bound."""
    from upsample_zoo.conversions import to_uint8
    from upsample_zoo.metrics.checkerboard import CheckerboardScore

    n_fake, n_real = int(w.cfg.task.num_fake), int(w.cfg.task.num_real)
    real = fid_images(n_real, seed=5).to(device)
    cb, sampling = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        fake = w.task.sample(n_fake, seed=1)
        sync(device)
        t1 = time.perf_counter()
        metric = CheckerboardScore(scale=w.model.generator.total_scale).to(device)
        for chunk in real.split(100):
            metric.update(chunk, real=True)
        metric.update(to_uint8(fake).to(device))
        metric.compute()
        sync(device)
        t2 = time.perf_counter()
        sampling.append(t1 - t0)
        cb.append(t2 - t1)
    cb_s, sample_s = min(cb), min(sampling)
    fid_s = n_fake / fid_img_s if fid_img_s else None
    epoch = cb_s + sample_s + (fid_s or 0.0)
    frac = cb_s / epoch if fid_s else None
    log(f"checkerboard ({w.task_name}): {percent(frac)} of the test epoch (composed)")
    return ComposedCost(n_fake=n_fake, n_real=n_real, checkerboard_s=cb_s, sampling_s=sample_s, fid_extraction_s=fid_s,
                   test_epoch_s=epoch, fraction={"median": frac} if frac else None)


def _median(v: Summary | float | None) -> float | None:
    return v.get("median") if isinstance(v, dict) else v


def _on(r: TestEpochCost | ComposedCost) -> str:
    return f"; {r.images} images of {r.data}" if isinstance(r, TestEpochCost) else ""


def render(cb: Checkerboard) -> list[str]:
    table = Table(["task", "checkerboard s", "test epoch s", "fraction", "how"], align="lrrrl")
    for task, r in cb.items():
        if isinstance(r, Failed):
            table.add(task, f"error: {r.error}", "", "", "")
            continue
        table.add(task, fmt(_median(r.checkerboard_s)), fmt(_median(r.test_epoch_s)), percent(_median(r.fraction)),
                  f"{r.how}{_on(r)}")
    return ["## 5. Checkerboard metric: cost as a fraction of the test epoch (target < 1%)\n",
            *md_table(table, md_plain)]
