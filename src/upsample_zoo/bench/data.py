"""Row 3, data pipeline: train-loader throughput at the configured ``num_workers`` ÷ the plain training step's
consumption (row 2), for every task and each data set it declares (synthetic, image folder)."""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from upsample_zoo.bench.measure import Summary, fmt, fmt_spread, log, summarize
from upsample_zoo.bench.settings import Settings
from upsample_zoo.bench.workloads import compose_config, workload_overrides
from upsample_zoo.errors import one_line
from upsample_zoo.report.table_model import Table, md_plain, md_table
from upsample_zoo.tasks.declarations import BenchData, declared, package_declarations


@dataclass
class LoaderRow:
    data: str
    num_workers: int
    batch_size: int
    steady_img_s: Summary
    cold_img_s: Summary
    batches_per_epoch: int
    train_img_s: float | None
    ratio: float | None


@dataclass
class LoaderFailed:
    data: str
    error: str


@dataclass
class Data:
    rows: dict[str, LoaderRow | LoaderFailed]


def _batch_images(batch) -> int:
    return int((batch[0] if isinstance(batch, (list, tuple)) else batch).shape[0])


def loader_throughput(loader, epochs: int) -> dict:
    """Images/s over whole epochs: steady (after the first batch, i.e. without worker start-up) and cold."""
    steady, cold = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        it = iter(loader)
        first = _batch_images(next(it))
        t1 = time.perf_counter()
        rest = sum(_batch_images(b) for b in it)
        t2 = time.perf_counter()
        del it
        if rest == 0:
            raise ValueError("the loader gave a single batch: too few images to measure a rate")
        steady.append(rest / (t2 - t1))
        cold.append((first + rest) / (t2 - t0))
    return {"steady_img_s": summarize(steady), "cold_img_s": summarize(cold), "batches_per_epoch": len(loader)}


def write_jpeg_folder(root: Path, n: int, classes: int = 10) -> Path:
    """n generated 32x32 images as JPEGs in class subfolders (the CIFAR-10 image-folder layout)."""
    from PIL import Image

    from upsample_zoo.data.cifar_synthetic import generate_images

    train = root / "train"
    if (root / "done").exists():
        return root
    images = generate_images(seed=7, split="train", start=0, count=n)
    for i, im in enumerate(images):
        folder = train / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(folder / f"{i:05d}.jpg", quality=95)
    (root / "done").write_text("ok")
    return root


def data_set(task: str, kind: str) -> BenchData:
    return declared(task).bench.data[kind]


def data_overrides(task: str, kind: str, s: Settings, work: Path) -> list[str]:
    """Overrides (on top of the task's workload ones) that pick and size one data set: the task's declared
    config for it, in a folder of its own."""
    d = data_set(task, kind)
    fill = {"root": work / f"{task}_{kind}", "images": d.images[1 if s.quick else 0], "val_images": s.cb_val_images}
    return [o.format(**fill) for o in d.overrides]


def build_datamodule(task: str, kind: str, s: Settings, work: Path):
    from hydra.utils import instantiate

    d = data_set(task, kind)
    if d.writes_jpeg_folder:
        write_jpeg_folder(work / f"{task}_{kind}", d.images[1 if s.quick else 0])
    cfg = compose_config([f"task={task}", *workload_overrides(task, s), *data_overrides(task, kind, s, work)], work)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm, cfg


def measure_one(task: str, kind: str, s: Settings, work: Path, need: float | None) -> LoaderRow:
    dm, cfg = build_datamodule(task, kind, s, work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate = loader_throughput(dm.train_dataloader(), s.loader_epochs)
    ratio = rate["steady_img_s"]["median"] / need if need else None
    return LoaderRow(data=data_set(task, kind).label, num_workers=int(cfg.data.num_workers),
                     batch_size=int(cfg.data.batch_size), **rate, train_img_s=need, ratio=ratio)


def run(s: Settings, work: Path, consumption: dict[str, float]) -> Data:
    rows: dict[str, LoaderRow | LoaderFailed] = {}
    for task, decl in package_declarations().items():
        for kind in decl.bench.data:
            key = f"{task}/{kind}"
            try:
                row = rows[key] = measure_one(task, kind, s, work, consumption.get(task))
                log(f"data {key}: loader {row.steady_img_s['median']:.0f} img/s, ratio {fmt(row.ratio)}")
            except Exception as e:  # noqa: BLE001
                rows[key] = LoaderFailed(data=data_set(task, kind).label, error=one_line(e))
                traceback.print_exc()
    return Data(rows=rows)


def render(data: Data) -> list[str]:
    lines = ["## 3. Data pipeline: train-loader throughput ÷ training-step consumption\n",
             "Loader alone, steady state (after the first batch) over whole epochs; consumption = the plain loop's "
             "img/s of row 2 at the same batch size. Target ≥ 3.\n"]
    table = Table(["task", "data", "workers", "batch", "loader img/s", "cold img/s", "training img/s", "ratio"],
                  numeric_from=2)
    for key, r in data.rows.items():
        task = key.split("/")[0]
        if isinstance(r, LoaderFailed):
            table.add(task, r.data, f"error: {r.error}", "", "", "", "", "")
            continue
        table.add(task, r.data, r.num_workers, r.batch_size, fmt_spread(r.steady_img_s), fmt_spread(r.cold_img_s),
                  fmt(r.train_img_s), fmt(r.ratio))
    return lines + md_table(table, md_plain)
