"""``upsample-zoo bench [--quick] [--out DIR]``: where the time goes, as ratios measured in one run.

Absolute times on a shared CPU are noise; ratios of two things measured side by side (interleaved, in
the same process, minutes apart at most) are not. Every figure is the median of several timed repeats
after a warm-up, shown with its spread (min-max over the repeats). Rows:

1. **Upsamplers**: forward+backward of every ``configs/upsampler/*.yaml`` at 64 -> 32 channels, 64x64 input
   (128x128 output), batch 16: time, FLOPs (``torch.utils.flop_counter``: convolutions and matmuls, 2 per
   multiply-add), params, achieved GFLOP/s and its ratio to the fp32 matmul peak measured in the same run.
2. **Framework overhead**: the Lightning task's training-step throughput / a plain PyTorch loop's (same model,
   batch, optimizer, data in memory; progress bar, logger, checkpointing and model summary off), both tasks,
   from interleaved blocks of steps. Target >= 0.97.
3. **Data pipeline**: train-loader throughput at the configured ``num_workers`` / training-step consumption,
   both tasks, synthetic and image-folder data. Target >= 3.
4. **FID**: the project's extraction path (``build_fid_metric``) / torchmetrics' default path, same network
   and images, features equal within 1e-4; a second FID run with cached real statistics / the first;
   Inception GFLOP/s / matmul peak; and (full mode) the single ideas measured one by one.
5. **Checkerboard metric**: its cost as a fraction of a segmentation test epoch (measured), and of the GAN's
   (composed from measured parts). Target < 1%.
6. **Scaling**: U-Net training-epoch time against the number of images and the image side, with the
   fitted log-log exponent (expect 1 and 2).
7. **Sweep throughput**: 4 GAN jobs of about 30 s each (full mode) as one sweep with ``hydra/launcher=joblib``
   (n_jobs=2, one torch thread per job) / the same sweep run sequentially at torch's default threads, wall time of
   the whole command; and where the time goes: per-job wall and fit time from each job's results.json, the
   per-job cost of giving up the second thread, and the time outside the jobs (start-up, imports, workers).

Writes ``bench.md`` and ``bench.json`` (atomically) into ``--out`` (default ``logs/bench``). Progress goes to
stderr; stdout gets the markdown and, as its last line, one JSON object with the headline ratios.
``--quick`` uses smaller sizes (the same code paths) and takes about 1-2 minutes on a 2-core CPU.

Threads (``--threads``, default ``auto``): torch's default on an idle machine, else the cores that the load
average leaves free (at least 1). With two threads on two busy cores, every parallel region waits for a
descheduled thread and steps run 5-40x slower (row 2 shows it), so the figures would measure the neighbours.
On a GPU (used when available) timings are synchronized and the same rows run on the device.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch

from upsample_zoo.constants import VOID
from upsample_zoo.zoo import config_dir, list_upsamplers

CONFIG_DIR = config_dir()
TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before --threads changes it
SECTIONS = ("upsamplers", "overhead", "data", "fid", "checkerboard", "scaling", "sweep")
HEADLINE_KEYS = ("overhead_segmentation", "overhead_gan", "fid_speedup", "fid_cache_ratio", "matmul_peak_gflops")
SWEEP_UPSAMPLERS = ("nearest", "bilinear", "tconv", "pixel_shuffle")


# ------------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    mode: str
    repeats: int = 5                 # timed repeats per figure (after `warmup` untimed ones)
    warmup: int = 1
    matmul_n: int = 2048
    up_batch: int = 16
    up_side: int = 64
    up_channels: tuple[int, int] = (64, 32)
    seg_overrides: tuple[str, ...] = ()      # the segmentation workload: the config defaults in full mode
    gan_overrides: tuple[str, ...] = ()
    overhead_steps: int = 12         # (Lightning, plain) step pairs per fit, after one warm-up pair
    overhead_fits: int = 2
    threads_tasks: tuple[str, ...] = ("segmentation", "gan")
    threads_blocks: int = 2          # interleaved blocks of 1 plain step at torch's default threads vs 1 thread
    overhead_tiny_steps: int = 30    # pairs for the framework's own per-step cost
    data_seg_images: int = 400
    data_vocsize_images: int = 48
    data_gan_images: int = 2048
    loader_epochs: int = 3
    fid_batch: int = 32
    fid_rounds: int = 3
    fid_ideas: tuple[str, ...] = ("inference_mode", "channels_last", "fold", "project", "half_batch", "threads")
    fid_ideas_batch: int = 16
    fid_cache_n: int = 64
    cb_val_images: int = 80
    cb_repeats: int = 2
    scale_overrides: tuple[str, ...] = ()
    scale_batch: int = 4
    scale_images: tuple[int, ...] = (8, 16, 32)
    scale_side_fixed: int = 96
    scale_sides: tuple[int, ...] = (48, 64, 96, 128)
    scale_images_fixed: int = 8
    scale_repeats: int = 3
    # row 7: GAN jobs of about 30 s each on 2 idle cores (2 epochs of 2,048 images, FID with 256 samples against 256
    # real images, whose statistics a warm-up job caches first), so that process start-up does not dominate
    sweep_overrides: tuple[str, ...] = ("task=gan", "seed=0", "data.max_images=2048", "trainer.max_epochs=2",
                                        "metrics.fid.num_fake=256", "metrics.fid.num_real=256",
                                        "metrics.checkerboard.val_num_samples=64")
    sweep_upsamplers: tuple[str, ...] = SWEEP_UPSAMPLERS
    sweep_repeats: int = 1
    sweep_sequential_threads: tuple[str | int, ...] = ("default",)  # "default", "bench" (this run's count), N


FULL = Settings(mode="full")
QUICK = Settings(
    mode="quick", repeats=3, matmul_n=1024, up_batch=4,
    seg_overrides=("data.batch_size=2",), gan_overrides=(),
    overhead_steps=16, overhead_fits=1, threads_tasks=("gan",), threads_blocks=2,
    data_seg_images=32, data_vocsize_images=12, data_gan_images=256, loader_epochs=2,
    fid_batch=8, fid_rounds=3, fid_ideas=(), fid_ideas_batch=8, fid_cache_n=8,
    cb_val_images=8, cb_repeats=1,
    scale_batch=2, scale_images=(2, 4, 8), scale_side_fixed=64, scale_sides=(48, 96, 192), scale_images_fixed=2,
    scale_repeats=3,
    # quick: the row's code path on smoke jobs (start-up dominates them: not the measurement, see the full mode)
    sweep_overrides=("task=segmentation", "seed=0", "debug=smoke", "model.base_channels=8", "data.num_train=16",
                     "data.num_val=4"), sweep_repeats=1, sweep_sequential_threads=("bench",),
)


# ------------------------------------------------------------------------------------ measuring helpers

def summarize(samples: Iterable[float]) -> dict[str, Any]:
    """Median, quartiles (inclusive method), min, max and count of a list of measurements."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        raise ValueError("summarize: no samples")
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else (xs[0],) * 3
    return {"median": statistics.median(xs), "q1": q1, "q3": q3, "min": xs[0], "max": xs[-1], "n": len(xs),
            "samples": xs}


def fit_exponent(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x): y ~ c x^k -> k."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("fit_exponent needs at least two (x, y) points")
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("fit_exponent needs at least two different x")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of running ``fn`` (convolutions, matmuls and their backward passes; 2 per multiply-add), counted
    by ``torch.utils.flop_counter.FlopCounterMode``. Elementwise ops, resampling and softmax count zero."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def forward_backward(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor | None = None,
                     guide: torch.Tensor | None = None) -> None:
    """One forward+backward as inside a network: gradients for the weights and for the input (and for the
    guide of a guided operator, as for a U-Net skip)."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    if guide is not None:
        guide.grad = None
    y = module(x) if guide is None else module(x, guide=guide)
    y.backward(torch.ones_like(y) if grad is None else grad)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (synchronized on a GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


@dataclass
class Clock:
    """Seconds of one measured stretch: wall, process CPU (all threads) and this thread's CPU."""

    wall: float = 0.0
    cpu: float = 0.0
    thread: float = 0.0

    @staticmethod
    def now() -> Clock:
        return Clock(time.perf_counter(), time.process_time(), time.thread_time())

    def __add__(self, other: Clock) -> Clock:
        return Clock(self.wall + other.wall, self.cpu + other.cpu, self.thread + other.thread)

    def __sub__(self, other: Clock) -> Clock:
        return Clock(self.wall - other.wall, self.cpu - other.cpu, self.thread - other.thread)


class _Stopwatch:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.t0 = Clock()

    def start(self) -> None:
        _sync(self.device)
        self.t0 = Clock.now()

    def stop(self) -> Clock:
        _sync(self.device)
        return Clock.now() - self.t0


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ratio_summary(num: Sequence[float], den: Sequence[float]) -> dict[str, Any]:
    """num/den from paired, interleaved measurements: the ratio of the medians, and the per-pair spread."""
    pairs = [a / b for a, b in zip(num, den)]
    s = summarize(pairs)
    s["median_of_pairs"] = s["median"]
    s["median"] = statistics.median(num) / statistics.median(den)
    return s


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if v == 0:
        return "0"
    mag = abs(v)
    if mag >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{max(0, digits - 1 - int(math.floor(math.log10(mag))))}f}" if mag < 10 ** digits else f"{v:.0f}"


def _percent(frac: float | None) -> str:
    """A checkerboard share of the test epoch; the GAN's is composed with the FID section's img/s."""
    return fmt(frac * 100) + "%" if frac is not None else "n/a (needs the FID section)"


def fmt_spread(s: dict | None, scale: float = 1.0, digits: int = 3) -> str:
    """'median (min–max)' of a summary."""
    if not s:
        return "n/a"
    return f"{fmt(s['median'] * scale, digits)} ({fmt(s['min'] * scale, digits)}–{fmt(s['max'] * scale, digits)})"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- environment

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> dict[str, Any]:
    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable_cpus(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": str(device), "gpu": None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def matmul_peak(n: int, repeats: int, device: torch.device) -> dict[str, Any]:
    """fp32 matmul GFLOP/s of an n x n product (2 n^3 FLOPs): this machine's practical peak."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    times = time_calls(lambda: torch.mm(a, b), repeats, 1, device)
    rates = [2 * n**3 / t / 1e9 for t in times]
    return {"n": n, "dtype": "float32", "gflops": summarize(rates)}


# ------------------------------------------------------------------------------------ config & workloads

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


@dataclass
class Workload:
    """One task's training workload: the real model and LightningModule, batches held in memory, and the
    same step written as a plain PyTorch loop."""

    task_name: str
    cfg: Any
    model: torch.nn.Module
    task: Any
    batches: list
    batch_size: int
    describe: str
    make_plain_step: Callable[[], Callable[[Any], None]] = field(repr=False)


def build_workload(task_name: str, overrides: Sequence[str], root: Path, device: torch.device,
                   n_batches: int = 4) -> Workload:
    import torch.nn.functional as F
    from hydra.utils import instantiate

    cfg = compose_config([f"task={task_name}", *overrides], root)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    task = instantiate(cfg.task, model=model, _convert_="all")
    bs = int(cfg.data.batch_size)
    g = torch.Generator().manual_seed(0)
    if task_name == "segmentation":
        side, classes = int(cfg.data.crop_size), int(cfg.data.num_classes)
        batches = []
        for _ in range(n_batches):
            y = torch.randint(0, classes, (bs, side, side), generator=g)
            y[:, :, :2] = VOID
            batches.append((torch.randn(bs, 3, side, side, generator=g).to(device), y.to(device)))
        describe = (f"U-Net base {cfg.model.base_channels}, depth {cfg.model.depth}, upsampler "
                    f"{cfg.upsampler._target_.rsplit('.', 1)[-1]}, batch {bs}x3x{side}x{side}")

        def make_plain_step():
            opt = instantiate(cfg.task.optimizer)(params=model.parameters())

            def step(batch):
                x, y = batch
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y, ignore_index=VOID).backward()
                opt.step()
            return step
    else:
        size = int(cfg.data.image_size)
        batches = [(torch.rand(bs, 3, size, size, generator=g) * 2 - 1).to(device) for _ in range(n_batches)]
        describe = (f"DCGAN ngf {cfg.model.ngf}, ndf {cfg.model.ndf}, upsampler "
                    f"{cfg.upsampler._target_.rsplit('.', 1)[-1]}, batch {bs}x3x{size}x{size}")

        def make_plain_step():
            gen, disc = model.generator, model.discriminator
            betas = tuple(cfg.task.betas)
            opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.task.lr, betas=betas)
            opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.task.lr, betas=betas)
            bce = F.binary_cross_entropy_with_logits

            def step(real):
                fake = gen(torch.randn(real.shape[0], model.z_dim, device=real.device))
                d_real, d_fake = disc(real), disc(fake.detach())
                loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d_gen = disc(fake)
                loss_g = bce(d_gen, torch.ones_like(d_gen))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
            return step
    return Workload(task_name, cfg, model, task, batches, bs, describe, make_plain_step)


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
    watch = _Stopwatch(device)
    watch.start()
    for i in range(steps):
        step(w.batches[(i + 1) % n])
    return watch.stop()


def interleaved_fit(w: Workload, steps: int, device: torch.device, root: Path) -> tuple[list[Clock], list[Clock]]:
    """One ``Trainer.fit`` with a plain step run (and timed) next to each Lightning step, on the same batch and
    model with a plain optimizer of its own (alternately just before and just after it): pairs of steps a few
    hundred ms apart, so that a shared machine's load hits both sides alike.

    Lightning step i = (start of step i+1) - (start of step i) - (the plain steps run in between): every hook,
    the logging, the loop's bookkeeping and the next batch's fetch. Step 0 of each side warms up (optimizer
    state) and is not counted. Returns (plain, lightning) clocks, one per step.
    """
    import lightning as L

    plain_step = w.make_plain_step()

    class Interleave(L.Callback):
        def __init__(self) -> None:
            self.plain: list[Clock] = []
            self.light: list[Clock] = []
            self.prev: Clock | None = None
            self.inner = Clock()  # plain-step time spent since self.prev

        def _plain(self, batch, batch_idx) -> None:
            watch = _Stopwatch(device)
            watch.start()
            plain_step(batch)
            clock = watch.stop()
            self.inner = self.inner + clock
            if batch_idx >= 1:
                self.plain.append(clock)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            _sync(device)
            now = Clock.now()
            if self.prev is not None and batch_idx >= 2:
                self.light.append(now - self.prev - self.inner)
            self.prev, self.inner = now, Clock()
            if batch_idx % 2:  # alternate the order: plain before the Lightning step on odd steps, after on even
                self._plain(batch, batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx % 2 == 0:
                self._plain(batch, batch_idx)

    cb = Interleave()
    n = len(w.batches)
    data = InMemory([w.batches[i % n] for i in range(steps + 2)])
    with quiet_lightning():
        bare_trainer(device, root, [cb], limit_val_batches=0).fit(w.task, train_dataloaders=data)
    k = min(len(cb.plain), len(cb.light))
    if k < 1:
        raise RuntimeError("Lightning ran fewer training steps than asked")
    return cb.plain[:k], cb.light[:k]


# ------------------------------------------------------------------------------------------ 1 upsamplers

def load_upsampler_configs(config_dir: Path = CONFIG_DIR, extra: Sequence[str] = ()) -> dict[str, Any]:
    """{name: config} of every zoo upsampler, plus the user's classes in ``extra`` (dotted paths)."""
    from omegaconf import OmegaConf

    paths = [config_dir / "upsampler" / f"{n}.yaml" for n in list_upsamplers(config_dir)]
    if not paths:
        raise FileNotFoundError(f"no upsampler configs in {config_dir / 'upsampler'}")
    return {p.stem: OmegaConf.load(p) for p in paths} | {
        n: OmegaConf.create({"_target_": n, "_partial_": True}) for n in extra}


def bench_upsamplers(s: Settings, device: torch.device, peak: float, only: Sequence[str] | None = None) -> dict:
    from hydra.utils import instantiate

    cin, cout = s.up_channels
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.up_batch, cin, s.up_side, s.up_side, generator=g).to(device).requires_grad_(True)
    rows = {}
    for name, cfg in load_upsampler_configs(extra=[n for n in (only or ()) if "." in n]).items():
        if only and name not in only:
            continue
        try:
            torch.manual_seed(0)
            up = instantiate(cfg)(cin, cout).to(device)
            # a guided operator (FADE, SAPA) also reads a skip-like guide: (batch, cout, scale * side, ...)
            guide = None
            if getattr(up, "requires_guide", False):
                side = up.scale * s.up_side
                guide = torch.randn(s.up_batch, cout, side, side, generator=g).to(device).requires_grad_(True)
            kw = {} if guide is None else {"guide": guide}
            with torch.no_grad():
                out_shape = tuple(up(x, **kw).shape)
            grad = torch.randn(out_shape, generator=g).to(device)
            flops = count_flops(lambda up=up, grad=grad, guide=guide: forward_backward(up, x, grad, guide))
            fwd_flops = count_flops(lambda up=up, kw=kw: up(x.detach(), **kw))
            times = summarize(time_calls(lambda up=up, grad=grad, guide=guide: forward_backward(up, x, grad, guide),
                                         s.repeats, s.warmup, device))
            gflops = flops / times["median"] / 1e9
            rows[name] = {"params": sum(p.numel() for p in up.parameters()), "output": list(out_shape),
                          "flops_fwd_bwd": flops, "flops_fwd": fwd_flops, "time_s": times,
                          "gflops_per_s": gflops, "peak_ratio": gflops / peak if peak else None}
            log(f"upsampler {name}: {times['median'] * 1e3:.1f} ms, {gflops:.1f} GFLOP/s")
        except Exception as e:  # noqa: BLE001 - one upsampler that cannot run is a row, not a crash
            rows[name] = {"error": _one_line(e)}
    return {"input": [s.up_batch, cin, s.up_side, s.up_side], "channels": [cin, cout], "rows": rows}


# ------------------------------------------------------------------------------------------- 2 overhead

TINY_WORKLOADS = {  # the same tasks with next to no compute: what remains per step is the framework's own work
    "segmentation": ("model.base_channels=2", "model.depth=2", "data.crop_size=16", "data.batch_size=2"),
    "gan": ("model.ngf=2", "model.ndf=2", "model.z_dim=8", "data.batch_size=2"),
}


def framework_overhead(task: str, s: Settings, device: torch.device, root: Path) -> dict:
    """Lightning's own cost per training step (hooks, closures, optimizer wrappers, self.log, the loop), in CPU
    time of the main thread: the same interleaved pairs on a near-zero-compute copy of the task, where all
    work runs on the main thread (one torch thread), so it counts work done whoever else holds the CPU."""
    w = build_workload(task, TINY_WORKLOADS[task], root / f"tiny_{task}", device)
    with torch_threads(1):  # every op on the main thread (its CPU clock sees all the work), no barrier waits
        p, lt = interleaved_fit(w, s.overhead_tiny_steps, device, root)
    diffs = [b.thread - a.thread for a, b in zip(p, lt)]
    return {"workload": w.describe, "pairs": len(p), "plain_step_cpu_s": summarize([c.thread for c in p]),
            "lightning_step_cpu_s": summarize([c.thread for c in lt]), "overhead_cpu_s": summarize(diffs)}


def threads_row(w: Workload, s: Settings, device: torch.device) -> dict:
    """The plain training step at torch's default thread count vs one thread (interleaved blocks of one warm-up
    and one timed step). On an idle machine more threads win on big convolutions; when other jobs hold the
    cores, every parallel region waits for its slowest thread, and one thread can win by a wide margin."""
    n_default = TORCH_DEFAULT_THREADS
    times: dict[int, list[float]] = {n_default: [], 1: []}
    for i in range(s.threads_blocks):
        for n in ((n_default, 1) if i % 2 == 0 else (1, n_default)):
            with torch_threads(n):
                times[n].append(plain_block(w, 1, device).wall)
    ratio = ratio_summary(times[n_default], times[1])
    log(f"threads {w.task_name}: 1 thread runs x{ratio['median']:.2f} the speed of {n_default}")
    return {"default_threads": n_default, "default_step_s": summarize(times[n_default]),
            "one_thread_step_s": summarize(times[1]), "one_thread_speedup": ratio}


def bench_overhead(w: Workload, s: Settings, device: torch.device, root: Path) -> dict:
    """Lightning ÷ plain training-step throughput, two ways.

    - **Direct**: wall time of interleaved (Lightning, plain) step pairs on the real workload, default threads:
      the figure the issue asks for; on a shared machine it is as noisy as the machine.
    - **Implied**: Lightning's own per-step work, measured on a near-zero-compute copy of the task (CPU time,
      robust to load), added to the real workload's fastest plain step: plain / (plain + overhead). Taking the
      fastest plain step (the least disturbed one) makes it conservative.
    """
    plain: list[Clock] = []
    light: list[Clock] = []
    for _ in range(s.overhead_fits):
        p, lt = interleaved_fit(w, s.overhead_steps, device, root)
        plain += p
        light += lt
    out = {"workload": w.describe, "batch_size": w.batch_size, "pairs": len(plain),
           "torch_threads": torch.get_num_threads(),
           "plain_step_s": summarize([c.wall for c in plain]), "lightning_step_s": summarize([c.wall for c in light]),
           "ratio": ratio_summary([c.wall for c in plain], [c.wall for c in light])}
    if device.type == "cpu" and s.threads_blocks and w.task_name in s.threads_tasks and TORCH_DEFAULT_THREADS > 1:
        out["threads"] = threads_row(w, s, device)
    fw = framework_overhead(w.task_name, s, device, root)
    overhead = max(0.0, fw["overhead_cpu_s"]["median"])
    fastest = out["plain_step_s"]["min"]
    out["framework"] = fw
    out["overhead_ms_per_step"] = fw["overhead_cpu_s"]["median"] * 1e3
    out["ratio_implied"] = fastest / (fastest + overhead)
    log(f"overhead {w.task_name}: Lightning/plain throughput {out['ratio']['median']:.3f} (direct, wall), "
        f"{out['ratio_implied']:.3f} (implied: {overhead * 1e3:.2f} ms/step framework work)")
    return out


# ----------------------------------------------------------------------------------------------- 3 data

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


def data_overrides(task: str, kind: str, s: Settings, work: Path) -> list[str]:
    """Overrides (on top of the task's workload ones) that pick and size one data set."""
    if task == "segmentation":
        if kind == "synthetic":
            return ["data=voc_synthetic", f"data.root={work / 'voc_synthetic'}", f"data.num_train={s.data_seg_images}",
                    f"data.num_val={s.cb_val_images}"]
        return ["data=voc_synthetic", f"data.root={work / 'voc_size'}", f"data.num_train={s.data_vocsize_images}",
                "data.num_val=2", "data.height=375", "data.width=500"]
    if kind == "synthetic":
        return ["data=cifar_synthetic", f"data.root={work / 'cifar_synthetic'}", f"data.num_train={s.data_gan_images}",
                "data.num_test=64", "data.max_ref_images=64"]
    return ["data=image_folder", f"data.root={work / 'jpeg_folder'}", "data.max_ref_images=64"]


DATA_LABELS = {("segmentation", "synthetic"): "voc_synthetic (VOC layout, 160x120 JPEG+PNG)",
               ("segmentation", "image_folder"): "VOC-layout folder at VOC size (500x375 JPEG+PNG)",
               ("gan", "synthetic"): "cifar_synthetic (32x32 PNG folder)",
               ("gan", "image_folder"): "image_folder (32x32 JPEG, class subfolders)"}


def build_datamodule(task: str, kind: str, s: Settings, work: Path):
    from hydra.utils import instantiate

    if task == "gan" and kind == "image_folder":
        write_jpeg_folder(work / "jpeg_folder", s.data_gan_images)
    overrides = s.seg_overrides if task == "segmentation" else s.gan_overrides
    cfg = compose_config([f"task={task}", *overrides, *data_overrides(task, kind, s, work)], work)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm, cfg


def bench_data(s: Settings, work: Path, consumption: dict[str, float]) -> dict:
    rows = {}
    for task in ("segmentation", "gan"):
        for kind in ("synthetic", "image_folder"):
            key = f"{task}/{kind}"
            try:
                dm, cfg = build_datamodule(task, kind, s, work)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rate = loader_throughput(dm.train_dataloader(), s.loader_epochs)
                need = consumption.get(task)
                ratio = rate["steady_img_s"]["median"] / need if need else None
                rows[key] = {"data": DATA_LABELS[(task, kind)], "num_workers": int(cfg.data.num_workers),
                             "batch_size": int(cfg.data.batch_size), **rate, "train_img_s": need, "ratio": ratio}
                log(f"data {key}: loader {rate['steady_img_s']['median']:.0f} img/s, ratio {fmt(ratio)}")
            except Exception as e:  # noqa: BLE001
                rows[key] = {"data": DATA_LABELS[(task, kind)], "error": _one_line(e)}
                traceback.print_exc()
    return {"rows": rows}


# ------------------------------------------------------------------------------------------------ 4 FID

def fid_images(n: int, seed: int = 3) -> torch.Tensor:
    """n CIFAR-like uint8 (n, 3, 32, 32) images from the embedded generator."""
    from upsample_zoo.data.cifar_synthetic import generate_images

    return torch.from_numpy(generate_images(seed=seed, split="test", start=0, count=n)).permute(0, 3, 1, 2).contiguous()


def default_cache_dir() -> Path:
    """The app's ``${paths.cache_dir}``, as compute_fid uses it: ``$UPSAMPLE_ZOO_ROOT/.cache`` or ``./.cache``."""
    return Path(os.environ.get("UPSAMPLE_ZOO_ROOT", os.getcwd())) / ".cache"


def bench_fid(s: Settings, device: torch.device, peak: float, work: Path, cache_dir: Path) -> dict:
    from torchmetrics.image.fid import FrechetInceptionDistance

    from upsample_zoo.metrics import fid as F

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        weights = F.resolve_fid_weights(cache_dir)
    base = FrechetInceptionDistance(feature=2048, antialias=False,
                                    feature_extractor_weights_path=str(weights.path)).to(device)
    proj = F.build_fid_metric(cache_dir, device=device)
    images = fid_images(max(s.fid_batch, s.fid_ideas_batch, 4)).to(device)
    batch = images[: s.fid_batch]

    # the features: same network, same images, two paths
    with torch.inference_mode():
        fb, fp = base.inception(images[:4]), proj.inception(images[:4])
    max_diff = float((fb - fp).abs().max())
    # torchmetrics' default: update() as its docs show it; the project's: compute_fid's and the GAN task's
    t_base, t_proj, c_base, c_proj = [], [], [], []
    watch = _Stopwatch(device)

    def run(metric, inference: bool) -> Clock:
        watch.start()
        with torch.inference_mode() if inference else contextlib.nullcontext():
            metric.update(batch, real=True)
        return watch.stop()

    run(base, False)
    run(proj, True)
    for i in range(s.fid_rounds):
        order = ((base, False, t_base, c_base), (proj, True, t_proj, c_proj))
        for metric, inference, tw, tc in (order if i % 2 == 0 else order[::-1]):
            clock = run(metric, inference)
            tw.append(clock.wall)
            tc.append(clock.cpu)
    speedup = ratio_summary(t_base, t_proj)
    speedup_cpu = ratio_summary(c_base, c_proj)
    n = len(batch)
    proj_rate = summarize([n / t for t in t_proj])
    base_rate = summarize([n / t for t in t_base])
    with torch.inference_mode():
        flops_img = count_flops(lambda: proj.inception(images[:1]))
    gflops = flops_img * proj_rate["median"] / 1e9
    log(f"fid: project {proj_rate['median']:.2f} img/s vs torchmetrics {base_rate['median']:.2f} img/s "
        f"-> x{speedup['median']:.2f}; max feature diff {max_diff:.2e}")
    out = {"batch": n, "features_max_abs_diff": max_diff, "features_equal_1e-4": max_diff <= 1e-4,
           "torchmetrics_img_s": base_rate, "project_img_s": proj_rate, "speedup": speedup,
           "speedup_cpu_time": speedup_cpu, "inception_gflop_per_image": flops_img / 1e9,
           "inception_gflops_per_s": gflops, "inception_peak_ratio": gflops / peak if peak else None,
           "project_path": "build_fid_metric: BatchNorm folded into the convs, channels_last weights; "
                           "update() under torch.inference_mode (compute_fid, the real-stats pass, Lightning test)",
           "baseline_path": "FrechetInceptionDistance(feature=2048, antialias=False, same weights).update(), "
                            "NCHW, no inference_mode"}
    del base
    if s.fid_ideas:
        out["ideas"] = fid_ideas(s, device, proj, weights.path, images[: s.fid_ideas_batch])
    out["cache"] = fid_cache_ratio(s, device, work, cache_dir)
    return out


def fid_ideas(s: Settings, device: torch.device, proj, weights_path: Path, batch: torch.Tensor) -> dict:
    """Each idea alone, against torchmetrics' default forward, interleaved: img/s ratio per idea."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from upsample_zoo.metrics.fid import fold_batchnorm

    base = FrechetInceptionDistance(feature=2048, antialias=False,
                                    feature_extractor_weights_path=str(weights_path)).inception.to(device)
    cl = copy.deepcopy(base).to(memory_format=torch.channels_last) if "channels_last" in s.fid_ideas else None
    folded = copy.deepcopy(base) if "fold" in s.fid_ideas else None
    if folded is not None:
        fold_batchnorm(folded)
    fast = proj.inception
    half = batch[: max(1, len(batch) // 2)]
    threads = torch.get_num_threads()

    other = 1 if threads > 1 else TORCH_DEFAULT_THREADS  # the thread count this run does not use

    def other_threads():
        with torch_threads(other), torch.inference_mode():
            fast(batch)

    def inference(module, x=batch):
        with torch.inference_mode():
            module(x)

    default = "torchmetrics default (NCHW, autograd on)"
    candidates = {
        "inference_mode": ("+ torch.inference_mode", lambda: inference(base), len(batch)),
        "channels_last": ("+ channels_last only", lambda: cl(batch), len(batch)),
        "fold": ("+ BatchNorm folded only", lambda: folded(batch), len(batch)),
        "project": ("project: folded + channels_last + inference_mode", lambda: inference(fast), len(batch)),
        "half_batch": (f"project, batch {len(half)} instead of {len(batch)}", lambda: inference(fast, half), len(half)),
        "threads": (f"project, {other} torch thread{'s' if other > 1 else ''} instead of {threads}", other_threads,
                    len(batch)),
    }
    variants = {default: (lambda: base(batch), len(batch))}
    variants.update({label: (fn, n) for key, (label, fn, n) in candidates.items()
                     if key in s.fid_ideas and not (key == "threads" and other == threads)})
    per_image: dict[str, list[float]] = {k: [] for k in variants}
    for fn, _ in variants.values():
        fn()
    for i in range(max(2, s.fid_rounds - 1)):
        items = list(variants.items())
        for name, (fn, n) in (items if i % 2 == 0 else items[::-1]):
            t = time_calls(fn, 1, 0, device)[0]
            per_image[name].append(t / n)
    ref = per_image[default]
    rows = {}
    for name, ts in per_image.items():
        rows[name] = {"img_s": summarize([1 / t for t in ts]), "vs_default": ratio_summary(ref, ts)}
        log(f"fid idea {name}: x{rows[name]['vs_default']['median']:.2f}")
    return {"batch": len(batch), "rounds": len(ref), "rows": rows}


def fid_cache_ratio(s: Settings, device: torch.device, work: Path, cache_dir: Path) -> dict:
    """Two FID runs as the GAN task makes them (n_real = n_fake): the second finds the real statistics cached."""
    from upsample_zoo.metrics import fid as F

    n = s.fid_cache_n
    real, fake = fid_images(n, seed=11), fid_images(n, seed=12)
    stats_dir = work / "fid_stats"
    shutil.rmtree(stats_dir, ignore_errors=True)
    key = {"dataset": "bench", "split": "train", "n_real": n, "resolution": 32, "fingerprint": "bench"}

    def fid_run() -> dict:
        t0 = time.perf_counter()
        metric = F.build_fid_metric(cache_dir, device=device)
        t1 = time.perf_counter()
        stats = F.load_or_compute_real_stats(metric, stats_dir, key, real_batches=lambda: real.split(100))
        t2 = time.perf_counter()
        with torch.inference_mode():
            for b in fake.split(100):
                metric.update(b.to(device), real=False)
            _sync(device)
            t3 = time.perf_counter()
            value = float(metric.compute())
        _sync(device)
        t4 = time.perf_counter()
        return {"total_s": t4 - t0, "build_s": t1 - t0, "real_stats_s": t2 - t1, "fake_s": t3 - t2,
                "compute_s": t4 - t3, "cached": stats.cached, "fid": value}

    first, second = fid_run(), fid_run()
    if first["cached"] or not second["cached"] or not math.isclose(first["fid"], second["fid"], rel_tol=1e-3):
        raise RuntimeError(f"FID cache did not behave: {first} then {second}")
    ratio = second["total_s"] / first["total_s"]
    # the same two runs at the GAN config's size, from the measured parts (extraction is linear in images)
    n_cfg = int(compose_config(["task=gan"], work / "cfg_gan").task.num_fake)
    per_image = (first["fake_s"] + second["fake_s"]) / (2 * n)
    fixed = {k: (first[k] + second[k]) / 2 for k in ("build_s", "compute_s")}
    proj_first = fixed["build_s"] + fixed["compute_s"] + 2 * n_cfg * per_image
    proj_second = fixed["build_s"] + fixed["compute_s"] + second["real_stats_s"] + n_cfg * per_image
    log(f"fid cache: first run {first['total_s']:.1f} s, second {second['total_s']:.1f} s -> {ratio:.2f} "
        f"(compute() {first['compute_s']:.1f} / {second['compute_s']:.1f} s); at n={n_cfg}: "
        f"{proj_second / proj_first:.2f}")
    return {"n_real": n, "n_fake": n, "first": first, "second": second, "first_s": first["total_s"],
            "second_s": second["total_s"], "ratio": ratio,
            "projected": {"n_real": n_cfg, "n_fake": n_cfg, "first_s": proj_first, "second_s": proj_second,
                          "ratio": proj_second / proj_first},
            "note": "one pair of runs, each: build the metric, fill the real statistics (computed, then loaded), "
                    "extract the fakes, compute()"}


# --------------------------------------------------------------------------------------- 5 checkerboard

def bench_checkerboard_seg(s: Settings, device: torch.device, work: Path) -> dict:
    """A real segmentation test epoch (trainer.test on the voc_synthetic val split), with the checkerboard
    score's own work (crop, softmax, spectra, compute) timed inside it. Figures off: a conservative fraction."""
    import lightning as L
    from hydra.utils import instantiate

    dm, cfg = build_datamodule("segmentation", "synthetic", s, work)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    epochs, cb_times = [], []
    for _ in range(s.cb_repeats + 1):
        task = instantiate(cfg.task, model=model, figure_dir=None, _convert_="all")
        spent = [0.0]

        def timed(fn, spent=spent):
            def wrapper(*args, **kwargs):
                _sync(device)
                t0 = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    _sync(device)
                    spent[0] += time.perf_counter() - t0
            return wrapper

        task.test_logits_hook = timed(task.test_logits_hook)
        task.test_checkerboard.compute = timed(task.test_checkerboard.compute)

        class EpochTimer(L.Callback):
            def on_test_epoch_start(self, trainer, pl_module):
                self.watch = _Stopwatch(device)
                self.watch.start()

            def on_test_end(self, trainer, pl_module):
                self.clock = self.watch.stop()

        timer = EpochTimer()
        with quiet_lightning():
            bare_trainer(device, work, [timer]).test(task, datamodule=dm, verbose=False)
        epochs.append(timer.clock.wall)
        cb_times.append(spent[0])
    epochs, cb_times = epochs[1:], cb_times[1:]  # the first epoch warms up
    frac = ratio_summary(cb_times, epochs)
    log(f"checkerboard (segmentation): {frac['median'] * 100:.2f}% of the test epoch")
    return {"images": len(dm.val_set), "test_epoch_s": summarize(epochs), "checkerboard_s": summarize(cb_times),
            "fraction": frac, "how": "measured inside trainer.test (figures off)"}


def bench_checkerboard_gan(w: Workload, fid_img_s: float | None, device: torch.device) -> dict:
    """The GAN test epoch at the config's n_fake/n_real: the checkerboard part is measured; the rest
    (sampling, FID feature extraction at the project path's measured rate) is composed from measured parts,
    leaving out the FID compute(), so the fraction is an upper bound."""
    from upsample_zoo.conversions import to_uint8
    from upsample_zoo.metrics.spectral import CheckerboardScore

    n_fake, n_real = int(w.cfg.task.num_fake), int(w.cfg.task.num_real)
    real = fid_images(n_real, seed=5).to(device)
    task = w.task
    cb, sampling = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        fake = task.sample(n_fake, seed=1)
        _sync(device)
        t1 = time.perf_counter()
        metric = CheckerboardScore(scale=w.model.generator.total_scale).to(device)
        for chunk in real.split(100):
            metric.update(chunk, real=True)
        metric.update(to_uint8(fake).to(device))
        metric.compute()
        _sync(device)
        t2 = time.perf_counter()
        sampling.append(t1 - t0)
        cb.append(t2 - t1)
    cb_s, sample_s = min(cb), min(sampling)
    fid_s = n_fake / fid_img_s if fid_img_s else None
    epoch = cb_s + sample_s + (fid_s or 0.0)
    frac = cb_s / epoch if fid_s else None
    log(f"checkerboard (gan): {_percent(frac)} of the test epoch (composed)")
    return {"n_fake": n_fake, "n_real": n_real, "checkerboard_s": cb_s, "sampling_s": sample_s,
            "fid_extraction_s": fid_s, "test_epoch_s": epoch, "fraction": {"median": frac} if frac else None,
            "how": "composed: checkerboard and sampling measured (best of 2); FID extraction = n_fake / the "
                   "project path's img/s from row 4; FID compute() left out, so the fraction is an upper bound"}


# -------------------------------------------------------------------------------------------- 6 scaling

def bench_scaling(s: Settings, device: torch.device, work: Path) -> dict:
    """U-Net training epoch (plain loop, in-memory data) against images per epoch and image side."""
    from hydra.utils import instantiate

    cfg = compose_config(["task=segmentation", *s.scale_overrides], work)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = instantiate(cfg.task.optimizer)(params=model.parameters())
    classes = int(cfg.data.num_classes)
    import torch.nn.functional as F

    def epoch_fn(n_images: int, side: int) -> Callable[[], None]:
        g = torch.Generator().manual_seed(side)
        bs = s.scale_batch
        x = torch.randn(bs, 3, side, side, generator=g).to(device)
        y = torch.randint(0, classes, (bs, side, side), generator=g).to(device)

        def run():
            for _ in range(max(1, n_images // bs)):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
        return run

    def measure(points: list[tuple[int, int]]) -> list[dict]:
        fns = {p: epoch_fn(*p) for p in points}
        for p in points:  # warm-up: one step per shape (oneDNN primitives, allocator)
            epoch_fn(s.scale_batch, p[1])()
        times: dict[tuple[int, int], list[float]] = {p: [] for p in points}
        for r in range(s.scale_repeats):
            for p in (points if r % 2 == 0 else points[::-1]):
                times[p] += time_calls(fns[p], 1, 0, device)
        return [{"images": p[0], "side": p[1], "epoch_s": summarize(times[p])} for p in points]

    by_n = measure([(n, s.scale_side_fixed) for n in s.scale_images])
    by_side = measure([(s.scale_images_fixed, side) for side in s.scale_sides])
    # the optimizer step is paid once per step whatever the side: time it alone (gradients in place)
    epoch_fn(s.scale_batch, s.scale_side_fixed)()
    opt_step = summarize(time_calls(opt.step, max(3, s.scale_repeats), 1, device))
    k_n = fit_exponent([r["images"] for r in by_n], [r["epoch_s"]["median"] for r in by_n])
    k_side = fit_exponent([r["side"] for r in by_side], [r["epoch_s"]["median"] for r in by_side])
    steps = max(1, s.scale_images_fixed // s.scale_batch)
    rest = [r["epoch_s"]["median"] - steps * opt_step["median"] for r in by_side]
    k_side_rest = fit_exponent([r["side"] for r in by_side], rest) if min(rest) > 0 else None
    for r in by_side:
        r["optimizer_share"] = steps * opt_step["median"] / r["epoch_s"]["median"]
        # convolution FLOPs of the epoch grow exactly as side^2; the achieved rate says why time does not
        r["gflop"] = count_flops(epoch_fn(s.scale_images_fixed, r["side"])) / 1e9
        r["gflops_per_s"] = r["gflop"] / r["epoch_s"]["median"]
    log(f"scaling: epoch time ~ n^{k_n:.2f}, ~ side^{k_side:.2f} (without the optimizer step: "
        f"side^{fmt(k_side_rest)})")
    return {"model": f"U-Net base {cfg.model.base_channels}, depth {cfg.model.depth}", "batch": s.scale_batch,
            "params": sum(p.numel() for p in model.parameters()), "optimizer": type(opt).__name__,
            "optimizer_step_s": opt_step, "by_images": by_n, "by_side": by_side, "exponent_images": k_n,
            "exponent_side": k_side, "exponent_side_without_optimizer": k_side_rest}


# ---------------------------------------------------------------------------------------------- 7 sweep

def joblib_available() -> str | None:
    """None when ``hydra/launcher=joblib`` can be used, else why not."""
    if find_spec("hydra_plugins") is None or find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        return "hydra-joblib-launcher is not installed (pip install hydra-joblib-launcher)"
    return None


def _sweep_jobs(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]


def sweep_time_split(wall: float, jobs: list[dict], parallel: int) -> dict[str, float]:
    """Where one sweep command's wall time went, from its jobs' results.json: the mean job (wall, fit, threads)
    and the time outside the jobs, ``wall - sum(job walls) / parallel`` (process start, imports, Hydra, workers;
    for parallel jobs an estimate that assumes perfectly balanced workers)."""
    walls = [float(j["cost"]["wall_s"]) for j in jobs]
    fits = [float(j["cost"].get("fit_s") or 0.0) for j in jobs]
    n = max(1, len(walls))
    return {"job_wall_s": sum(walls) / n, "job_fit_s": sum(fits) / n, "jobs_wall_s": sum(walls),
            "outside_jobs_s": wall - sum(walls) / parallel,
            "threads": sorted({int(j.get("torch_threads") or 0) for j in jobs})}


def bench_sweep(s: Settings, work: Path) -> dict:
    why = joblib_available()
    if why:
        return {"skipped": why}
    root = work / "sweep_root"
    single = list(s.sweep_overrides)
    cfg = compose_config(single, root)
    extra = ["hydra.callbacks.compare.enabled=false"] if "compare" in (cfg.hydra.get("callbacks") or {}) else []
    args = [*single, f"upsampler={','.join(s.sweep_upsamplers)}", *extra]
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root)}
    env.pop("HYDRA_FULL_ERROR", None)

    # one untimed job first, as a real sweep's first job would: it builds the data, converts the FID weights and
    # caches the real statistics, which every timed job then loads
    warm = [sys.executable, "-m", "upsample_zoo.train", *single, f"upsampler={s.sweep_upsamplers[0]}",
            f"hydra.run.dir={work / 'sweep_warmup'}"]
    proc = subprocess.run(warm, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"sweep warm-up job exited {proc.returncode}: {tail[0]}")

    def threads_env(n: int) -> dict[str, str]:
        return {} if n == TORCH_DEFAULT_THREADS else {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}

    counts: list[int] = []  # sequential sweeps: at torch's default threads and/or 1 thread, or the bench's count
    for t in s.sweep_sequential_threads:
        n = int({"default": TORCH_DEFAULT_THREADS, "bench": torch.get_num_threads()}.get(t, t))
        if n not in counts:
            counts.append(n)
    labels = {n: f"sequential, {n} torch thread{'s' if n > 1 else ''}"
                 f"{' (torch default)' if n == TORCH_DEFAULT_THREADS else ''}" for n in counts}
    modes = {labels[n]: (["hydra/launcher=basic"], threads_env(n), 1) for n in counts}
    seq, seq1 = labels[counts[0]], labels.get(1)
    par = "joblib, n_jobs=2, 1 torch thread per job"
    # loky gives each of the 2 workers cores // 2 threads by itself; the variables make it 1 on any machine
    modes[par] = (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                  {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, 2)
    walls: dict[str, list[float]] = {m: [] for m in modes}
    ok: dict[str, list[int]] = {m: [] for m in modes}
    split: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(s.sweep_repeats):
        for name, (launcher, env_extra, parallel) in (list(modes.items()) if r % 2 == 0
                                                       else list(modes.items())[::-1]):
            sweep_dir = work / f"sweep_{len(walls[name])}_{list(modes).index(name)}"
            cmd = [sys.executable, "-m", "upsample_zoo.train", "-m", *args, *launcher, f"hydra.sweep.dir={sweep_dir}"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env={**env, **env_extra}, capture_output=True, text=True, timeout=1800)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"sweep ({name}) exited {proc.returncode}: {tail[0]}")
            jobs = _sweep_jobs(sweep_dir)
            ok[name].append(sum(job.get("status") == "ok" for job in jobs))
            walls[name].append(wall)
            split[name].append(sweep_time_split(wall, [j for j in jobs if j.get("status") == "ok"], parallel))
            log(f"sweep {name}: {wall:.1f} s, {ok[name][-1]}/{len(s.sweep_upsamplers)} jobs ok, "
                f"{split[name][-1]['job_wall_s']:.1f} s per job")

    def rows(m: str) -> dict:
        out: dict[str, Any] = {"wall_s": summarize(walls[m]), "jobs_ok": ok[m], "threads": split[m][-1]["threads"]}
        for k in ("job_wall_s", "job_fit_s", "jobs_wall_s", "outside_jobs_s"):
            out[k] = summarize([d[k] for d in split[m]])
        return out

    res = {"jobs": len(s.sweep_upsamplers), "command": "python train.py -m " + " ".join(args),
           "rows": {m: rows(m) for m in modes}, "speedup": ratio_summary(walls[seq], walls[par]), "sequential": seq,
           "speedup_vs_sequential_1thread": ratio_summary(walls[seq1], walls[par]) if seq1 else None}
    # the jobs alone: the sequential sweep's job time / the parallel sweep's, per worker
    res["speedup_jobs_only"] = ratio_summary([d["jobs_wall_s"] for d in split[seq]],
                                             [d["jobs_wall_s"] / 2 for d in split[par]])
    res["job_slowdown_1thread"] = ratio_summary([d["job_wall_s"] for d in split[par]],
                                                [d["job_wall_s"] for d in split[seq]])
    return res


# ---------------------------------------------------------------------------------------------- report

def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _med(d: dict | None, *path: str) -> float | None:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    if isinstance(d, dict):
        return d.get("median")
    return d


def headline(res: dict) -> dict[str, Any]:
    """The one-line JSON summary (stdout's last line)."""
    data_rows = (res.get("data") or {}).get("rows", {})
    data_ratios = [r["ratio"] for r in data_rows.values() if isinstance(r, dict) and r.get("ratio")]
    cb = res.get("checkerboard") or {}

    def r(v):
        return None if v is None else round(float(v), 4)

    return {
        "overhead_segmentation": r(_med(res.get("overhead"), "segmentation", "ratio")),
        "overhead_gan": r(_med(res.get("overhead"), "gan", "ratio")),
        "overhead_segmentation_implied": r((res.get("overhead") or {}).get("segmentation", {}).get("ratio_implied")),
        "overhead_gan_implied": r((res.get("overhead") or {}).get("gan", {}).get("ratio_implied")),
        "framework_ms_per_step": {t: r(v.get("overhead_ms_per_step")) for t, v in (res.get("overhead") or {}).items()
                                  if isinstance(v, dict)},
        "fid_speedup": r(_med(res.get("fid"), "speedup")),
        "fid_cache_ratio": r(_med(res.get("fid"), "cache", "ratio")),
        "fid_cache_ratio_at_config_n": r(_med(res.get("fid"), "cache", "projected", "ratio")),
        "matmul_peak_gflops": r(_med(res.get("matmul"), "gflops")),
        "fid_features_max_abs_diff": (res.get("fid") or {}).get("features_max_abs_diff"),
        "inception_peak_ratio": r((res.get("fid") or {}).get("inception_peak_ratio")),
        "data_ratio_min": r(min(data_ratios)) if data_ratios else None,
        "checkerboard_fraction_segmentation": r(_med(cb, "segmentation", "fraction")),
        "checkerboard_fraction_gan": r(_med(cb, "gan", "fraction")),
        "scaling_exponent_images": r((res.get("scaling") or {}).get("exponent_images")),
        "scaling_exponent_side": r((res.get("scaling") or {}).get("exponent_side")),
        "sweep_speedup": r(_med(res.get("sweep"), "speedup")),
        "mode": res["mode"], "torch_threads": (res.get("device") or {}).get("torch_threads"),
        "wall_s": r(res.get("wall_s")), "load_avg": res.get("load_avg_end"),
        "errors": sorted(res.get("errors", {})),
    }


def render_sweep(sw: dict) -> list[str]:
    """Row 7's markdown lines."""
    L: list[str] = []
    add = L.append
    add(f"## 7. Sweep throughput: {sw.get('jobs', 4)} jobs, joblib (n_jobs=2) vs sequential, wall time of the "
        "whole command\n")
    if "skipped" in sw:
        add(f"Skipped: {sw['skipped']}.\n")
    elif "error" in sw:
        add(f"error: {sw['error']}\n")
    else:
        add(f"`{sw['command']}`\n")
        add("| launcher | wall s | jobs ok | torch threads per job | s per job | of which fit | "
            "outside the jobs s |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in sw["rows"].items():
            ok = ", ".join(f"{k}/{sw['jobs']}" for k in r["jobs_ok"])
            threads = ", ".join(str(t) for t in r.get("threads") or []) or "n/a"
            add(f"| {name} | {fmt_spread(r['wall_s'])} | {ok} | {threads} | {fmt_spread(r.get('job_wall_s'))} | "
                f"{fmt_spread(r.get('job_fit_s'))} | {fmt_spread(r.get('outside_jobs_s'))} |")
        line = f"\nSequential wall ({sw['sequential']}) ÷ joblib wall: **{fmt_spread(sw['speedup'])}**"
        if sw.get("speedup_vs_sequential_1thread") and len(sw["rows"]) > 2:
            line += (f"; against a sequential sweep at 1 thread: {fmt_spread(sw['speedup_vs_sequential_1thread'])} "
                     "(what the parallel jobs alone buy)")
        add(line + ".\n")
        if sw.get("job_slowdown_1thread") and sw.get("speedup_jobs_only"):
            slow = sw["job_slowdown_1thread"]["median"]
            add(f"Where the time goes: a job at 1 thread, two at once, takes {fmt(slow)}x as long as the same job "
                f"alone at {sw['sequential'].split(', ')[1]}, so two parallel jobs can gain at most "
                f"2 / {fmt(slow)} = {fmt(2 / slow)}x from the jobs themselves (measured on the job times alone: "
                f"{fmt_spread(sw['speedup_jobs_only'])}); the rest of the wall time is outside the jobs "
                "(interpreter start-up, imports, Hydra, the joblib workers' own start-up), the last column.\n")
    return L


def render_markdown(res: dict) -> str:
    info = res["device"]
    L: list[str] = []
    add = L.append
    add(f"# upsample-zoo bench ({res['mode']})\n")
    gpu = info.get("gpu") or "none (no GPU figures exist yet)"
    thr = res.get("threads") or {}
    add(f"- **Machine**: {info['cpu']}, {info['cpus_usable']} usable CPUs, torch {info['torch']}; device "
        f"`{info['device']}`; GPU: {gpu}.")
    add(f"- **Torch threads**: {info['torch_threads']} ({thr.get('why', 'torch default')}).")
    start = res.get("load_avg_start") or [0.0]
    busy = start[0] > info["cpus_usable"]
    add(f"- **Load average** (1/5/15 min) at start {res.get('load_avg_start')}, at end {res.get('load_avg_end')}"
        + (": above the CPU count, other jobs shared the machine, so absolute times are inflated and noisy; ratios "
           "are measured side by side (interleaved) to cancel most of it." if busy else "."))
    add(f"- **Method**: each figure is the median of the timed repeats after a warm-up, spread shown as "
        f"(min–max); ratios are ratios of medians, their spread is over the interleaved pairs. "
        f"Wall time of this bench: {fmt(res.get('wall_s'))} s. Command: `{res['command']}`.")
    m = res.get("matmul")
    if m:
        add(f"- **fp32 matmul peak** ({m['n']}x{m['n']}): {fmt_spread(m['gflops'])} GFLOP/s.")
    add("")

    up = res.get("upsamplers")
    if up:
        b, c, h, w = up["input"]
        add(f"## 1. Upsamplers: forward+backward, {c}→{up['channels'][1]} channels, {h}x{w} input "
            f"({2 * h}x{2 * w} output), batch {b}, fp32\n")
        add("FLOPs count convolutions and matmuls (2 per multiply-add, backward included: input and weight "
            "gradients); resampling, softmax and elementwise work count zero but cost time.\n")
        add("| upsampler | params | GFLOP fwd+bwd | time ms | GFLOP/s | ÷ matmul peak |")
        add("|---|---:|---:|---:|---:|---:|")
        for name, r in up["rows"].items():
            if "error" in r:
                add(f"| {name} | – | – | error: {r['error']} | – | – |")
                continue
            add(f"| {name} | {r['params']:,} | {fmt(r['flops_fwd_bwd'] / 1e9)} | {fmt_spread(r['time_s'], 1e3)} | "
                f"{fmt(r['gflops_per_s'])} | {fmt(r['peak_ratio'])} |")
        add("")

    ov = res.get("overhead")
    if ov:
        add("## 2. Framework overhead: Lightning training-step throughput ÷ plain PyTorch loop\n")
        add("Same model, batch, optimizer and in-memory batches; Trainer with logger, checkpointing, progress bar "
            "and model summary off. Each Lightning step is followed by a plain step on the same batch (pairs a few "
            "hundred ms apart); a Lightning step is everything from one step's start to the next one's, minus "
            "the plain step in between. The first pair warms up. Target ≥ 0.97 (must ≥ 0.95).\n")
        add("| task | workload | pairs | plain ms/step | Lightning ms/step | **ratio (direct, wall)** | "
            "framework ms/step (CPU) | ratio (implied) |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        for task, r in ov.items():
            if "error" in r:
                add(f"| {task} | error: {r['error']} | | | | | | |")
                continue
            fw = r["framework"]["overhead_cpu_s"]
            add(f"| {task} | {r['workload']} | {r['pairs']} | {fmt_spread(r['plain_step_s'], 1e3)} | "
                f"{fmt_spread(r['lightning_step_s'], 1e3)} | **{fmt_spread(r['ratio'])}** | "
                f"{fmt_spread(fw, 1e3)} | {fmt(r['ratio_implied'])} |")
        add("\n*Framework ms/step*: Lightning's own work per step (hooks, closures, optimizer wrappers, `self.log`), "
            "from interleaved pairs on a near-zero-compute copy of each task, main-thread CPU time (robust to load). "
            "*Implied* = fastest plain step ÷ (it + framework ms): what the direct ratio reads on an idle machine, "
            "conservatively.\n")
        thr = {t: r["threads"] for t, r in ov.items() if isinstance(r, dict) and r.get("threads")}
        if thr:
            add("Threads: the plain training step at torch's default thread count vs 1 thread (interleaved, one "
                "warm-up and one timed step each); > 1 means one thread is faster on this machine right now.\n")
            add("| task | default threads | ms/step | 1 thread ms/step | 1 thread ÷ default, speed |")
            add("|---|---:|---:|---:|---:|")
            for t, r in thr.items():
                add(f"| {t} | {r['default_threads']} | {fmt_spread(r['default_step_s'], 1e3)} | "
                    f"{fmt_spread(r['one_thread_step_s'], 1e3)} | {fmt_spread(r['one_thread_speedup'])} |")
            add("")

    data = res.get("data")
    if data:
        add("## 3. Data pipeline: train-loader throughput ÷ training-step consumption\n")
        add("Loader alone, steady state (after the first batch) over whole epochs; consumption = the plain loop's "
            "img/s of row 2 at the same batch size. Target ≥ 3.\n")
        add("| task | data | workers | batch | loader img/s | cold img/s | training img/s | ratio |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        for key, r in data["rows"].items():
            task = key.split("/")[0]
            if "error" in r:
                add(f"| {task} | {r['data']} | error: {r['error']} | | | | | |")
                continue
            add(f"| {task} | {r['data']} | {r['num_workers']} | {r['batch_size']} | {fmt_spread(r['steady_img_s'])} | "
                f"{fmt_spread(r['cold_img_s'])} | {fmt(r['train_img_s'])} | {fmt(r['ratio'])} |")
        add("")

    f = res.get("fid")
    if f:
        add("## 4. FID\n")
        add("| figure | value (spread) | note |")
        add("|---|---:|---|")
        if "error" in f:
            add(f"| error | | {f['error']} |")
        else:
            add(f"| project path ÷ torchmetrics default, img/s | **{fmt_spread(f['speedup'])}** | batch {f['batch']}; "
                f"{fmt(f['project_img_s']['median'])} vs {fmt(f['torchmetrics_img_s']['median'])} img/s; CPU-time "
                f"ratio {fmt(f['speedup_cpu_time']['median'])} |")
            add(f"| features, max abs difference | {f['features_max_abs_diff']:.1e} | same network and images; "
                f"must be ≤ 1e-4 |")
            c = f.get("cache")
            if c:
                add(f"| second FID run (real stats cached) ÷ first | {fmt(c['ratio'])} | n_real = n_fake = "
                    f"{c['n_real']}: {fmt(c['second_s'])} s vs {fmt(c['first_s'])} s; of which metric build "
                    f"{fmt(c['first']['build_s'])} / {fmt(c['second']['build_s'])} s, real stats "
                    f"{fmt(c['first']['real_stats_s'])} / {fmt(c['second']['real_stats_s'])} s, compute() "
                    f"{fmt(c['first']['compute_s'])} / {fmt(c['second']['compute_s'])} s |")
                pr = c.get("projected")
                if pr:
                    add(f"| the same at the config's n_real = n_fake = {pr['n_real']} | {fmt(pr['ratio'])} | composed "
                        f"from the parts above (extraction linear in images): {fmt(pr['second_s'])} s vs "
                        f"{fmt(pr['first_s'])} s |")
            add(f"| Inception forward GFLOP/s | {fmt(f['inception_gflops_per_s'])} | "
                f"{fmt(f['inception_gflop_per_image'])} GFLOP per image (299x299) |")
            add(f"| Inception GFLOP/s ÷ matmul peak | {fmt(f['inception_peak_ratio'])} | |")
            ideas = f.get("ideas")
            if ideas:
                add(f"\nEach idea alone (Inception forward, batch {ideas['batch']}, {ideas['rounds']} interleaved "
                    "rounds), img/s ÷ torchmetrics' default:\n")
                add("| variant | img/s | ÷ default |")
                add("|---|---:|---:|")
                for name, r in ideas["rows"].items():
                    add(f"| {name} | {fmt_spread(r['img_s'])} | {fmt_spread(r['vs_default'])} |")
        add("")

    cb = res.get("checkerboard")
    if cb:
        add("## 5. Checkerboard metric: cost as a fraction of the test epoch (target < 1%)\n")
        add("| task | checkerboard s | test epoch s | fraction | how |")
        add("|---|---:|---:|---:|---|")
        for task, r in cb.items():
            if "error" in r:
                add(f"| {task} | error: {r['error']} | | | |")
                continue
            frac = _med(r, "fraction")
            add(f"| {task} | {fmt(_med(r, 'checkerboard_s'))} | {fmt(_med(r, 'test_epoch_s'))} | "
                f"{_percent(frac)} | {r['how']} |")
        add("")

    sc = res.get("scaling")
    if sc:
        add(f"## 6. Scaling: U-Net training epoch ({sc.get('model', '')}, batch {sc.get('batch', '')}, plain loop)\n")
        if "error" in sc:
            add(f"error: {sc['error']}\n")
        else:
            add("| images | side | epoch s | GFLOP | GFLOP/s | optimizer step share |")
            add("|---:|---:|---:|---:|---:|---:|")
            for r in sc["by_images"] + sc["by_side"]:
                share = r.get("optimizer_share")
                add(f"| {r['images']} | {r['side']} | {fmt_spread(r['epoch_s'])} | {fmt(r.get('gflop'))} | "
                    f"{fmt(r.get('gflops_per_s'))} | {fmt(share * 100) + '%' if share is not None else ''} |")
            add(f"\nFitted exponents: epoch time ∝ images^**{sc['exponent_images']:.2f}** (expect 1), "
                f"∝ side^**{sc['exponent_side']:.2f}** (expect 2). The {sc['optimizer']} step over "
                f"{sc['params']:,} parameters ({fmt_spread(sc['optimizer_step_s'], 1e3)} ms) is paid once per step "
                f"whatever the side; without it: side^**{fmt(sc['exponent_side_without_optimizer'])}**. The FLOPs "
                "grow exactly as side²; small images run the convolutions at a lower GFLOP/s (less work per "
                "call for the same fixed per-layer cost), so time grows more slowly than the work.\n")

    if res.get("sweep"):
        L.extend(render_sweep(res["sweep"]))
    if res.get("errors"):
        add("## Errors\n")
        for k, v in res["errors"].items():
            add(f"- {k}: {v}")
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------------------------ main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="upsample-zoo bench",
        description="Where the time goes, as ratios measured in one run: upsamplers vs the matmul peak, Lightning "
                    "vs a plain loop, data loading vs training, FID extraction, checkerboard cost, scaling, sweeps. "
                    "Writes bench.md and bench.json; the last stdout line is one JSON object.")
    p.add_argument("--quick", action="store_true", help="smaller sizes: about 1-2 minutes on a 2-core CPU")
    p.add_argument("--out", default="logs/bench", help="folder for bench.md and bench.json (default: logs/bench)")
    p.add_argument("--only", default=None,
                   help=f"comma-separated subset of sections: {','.join(SECTIONS)} (default: all)")
    p.add_argument("--upsamplers", default=None, help="comma-separated upsamplers for row 1: zoo names or your own "
                   "classes (mypkg.MyUp); default: the whole zoo")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", default="auto",
                   help="torch threads for the measurements: a number, or auto (default): torch's own choice on an "
                        "idle machine, else the cores the load average leaves free (at least 1); threads that wait "
                        "on busy cores stall every parallel region and the figures would measure the neighbours")
    return p


def run_bench(s: Settings, sections: Sequence[str], device: torch.device, work: Path, command: str,
              upsamplers: Sequence[str] | None = None) -> dict:
    res: dict[str, Any] = {"schema": 1, "mode": s.mode, "command": command, "settings": asdict(s),
                           "device": device_info(device), "load_avg_start": load_average(), "errors": {}}
    t_start = time.perf_counter()

    def section(name: str, fn: Callable[[], Any]) -> Any:
        log(f"--- {name}")
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a broken row is reported, the others still run
            traceback.print_exc()
            res["errors"][name] = _one_line(e)
            return {"error": _one_line(e)}

    res["matmul"] = section("matmul", lambda: matmul_peak(s.matmul_n, max(5, s.repeats), device))
    peak = _med(res["matmul"], "gflops") or 0.0
    if "upsamplers" in sections:
        res["upsamplers"] = section("upsamplers", lambda: bench_upsamplers(s, device, peak, upsamplers))
    workloads: dict[str, Workload] = {}

    def workload(task: str) -> Workload:
        if task not in workloads:
            overrides = s.seg_overrides if task == "segmentation" else s.gan_overrides
            workloads[task] = build_workload(task, overrides, work / f"wl_{task}", device)
        return workloads[task]

    consumption: dict[str, float] = {}  # training img/s of the plain loop: what the data row compares with
    if "overhead" in sections:
        res["overhead"] = {}
        for task in ("segmentation", "gan"):
            r = section(f"overhead/{task}", lambda task=task: bench_overhead(workload(task), s, device, work))
            res["overhead"][task] = r
            if "plain_step_s" in r:
                consumption[task] = r["batch_size"] / r["plain_step_s"]["median"]
    elif "data" in sections:
        for task in ("segmentation", "gan"):
            def plain_only(task=task):
                w = workload(task)
                steps = [plain_block(w, s.overhead_steps, device).wall / s.overhead_steps for _ in range(2)]
                return w.batch_size / statistics.median(steps)
            rate = section(f"consumption/{task}", plain_only)
            if isinstance(rate, float):
                consumption[task] = rate
    if "data" in sections:
        res["data"] = section("data", lambda: bench_data(s, work, consumption))
    if "fid" in sections:
        res["fid"] = section("fid", lambda: bench_fid(s, device, peak, work, default_cache_dir()))
    if "checkerboard" in sections:
        res["checkerboard"] = {
            "segmentation": section("checkerboard/segmentation", lambda: bench_checkerboard_seg(s, device, work)),
            "gan": section("checkerboard/gan", lambda: bench_checkerboard_gan(
                workload("gan"), _med(res.get("fid"), "project_img_s"), device)),
        }
    if "scaling" in sections:
        res["scaling"] = section("scaling", lambda: bench_scaling(s, device, work))
    if "sweep" in sections:
        res["sweep"] = section("sweep", lambda: bench_sweep(s, work))
    res["wall_s"] = time.perf_counter() - t_start
    res["load_avg_end"] = load_average()
    return res


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_threads(option: str, load: list[float] | None = None) -> tuple[int | None, str]:
    """(threads, why) for ``--threads``; (None, error) for a bad value."""
    if option != "auto":
        try:
            n = int(option)
        except ValueError:
            n = 0
        if n < 1:
            return None, f"--threads must be a positive integer or auto, got {option!r}"
        return n, "--threads"
    load = load_average() if load is None else load
    cpus = usable_cpus()
    if not load:
        return TORCH_DEFAULT_THREADS, "auto: torch's default (no load average on this system)"
    free = max(1, min(TORCH_DEFAULT_THREADS, math.ceil(cpus - load[0] - 1e-9)))  # cores not fully taken by others
    if free < TORCH_DEFAULT_THREADS:
        return free, (f"auto: load average {load[0]:.1f} on {cpus} usable CPUs leaves {free} free; torch's default "
                      f"would be {TORCH_DEFAULT_THREADS}, and threads that wait on busy cores stall every parallel "
                      "region")
    return TORCH_DEFAULT_THREADS, f"auto: torch's default (load average {load[0]:.1f} on {cpus} CPUs)"


def main(argv: Sequence[str] | None = None) -> int:
    from upsample_zoo.atomic import atomic_write_json, atomic_write_text

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = QUICK if args.quick else FULL
    sections = SECTIONS if not args.only else tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        print(f"upsample-zoo: error: unknown bench sections {unknown}; choose from {', '.join(SECTIONS)}",
              file=sys.stderr)
        return 2
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads, why = choose_threads(args.threads)
    if threads is None:
        print(f"upsample-zoo: error: {why}", file=sys.stderr)
        return 2
    log(f"torch threads: {threads} ({why})")
    ups = [u.strip() for u in args.upsamplers.split(",")] if args.upsamplers else None
    command = "upsample-zoo bench " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="upsample-zoo-bench-"))
    try:
        # restored afterwards: a caller in the same process (tests, a notebook) keeps its own thread
        # count, and with it its own float summation order
        with torch_threads(threads):
            res = run_bench(settings, sections, device, work, command.strip(), ups)
        res["threads"] = {"used": threads, "why": why, "torch_default": TORCH_DEFAULT_THREADS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["headline"] = headline(res)
    md = render_markdown(res)
    atomic_write_json(out / "bench.json", res)
    atomic_write_text(out / "bench.md", md)
    print(md, flush=True)
    log(f"wrote {out / 'bench.md'} and {out / 'bench.json'}")
    print(json.dumps(res["headline"]), flush=True)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
