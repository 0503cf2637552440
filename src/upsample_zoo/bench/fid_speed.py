"""Row 4, FID: the project's extraction path (``build_fid_metric``) ÷ torchmetrics' default path, same network
and images, features equal within 1e-4; a second FID run with cached real statistics ÷ the first; Inception
GFLOP/s ÷ the matmul peak; and (full mode) the single ideas measured one by one."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from upsample_zoo.bench.measure import (
    Clock,
    Failed,
    Stopwatch,
    Summary,
    count_flops,
    fmt,
    fmt_spread,
    json_key,
    log,
    optional,
    ratio_summary,
    summarize,
    sync,
    time_calls,
    torch_threads,
)
from upsample_zoo.bench.settings import TORCH_DEFAULT_THREADS, Settings
from upsample_zoo.bench.workloads import compose_config
from upsample_zoo.report.table_model import Table, md_plain, md_table

PROJECT_PATH = ("build_fid_metric: BatchNorm folded into the convs, channels_last weights; "
                "update() under torch.inference_mode (compute_fid, the real-stats pass, Lightning test)")
BASELINE_PATH = ("FrechetInceptionDistance(feature=2048, antialias=False, same weights).update(), "
                 "NCHW, no inference_mode")
DEFAULT_VARIANT = "torchmetrics default (NCHW, autograd on)"
CACHE_NOTE = ("one pair of runs, each: build the metric, fill the real statistics (computed, then loaded), "
              "extract the fakes, compute()")


@dataclass
class FidRun:
    total_s: float
    build_s: float
    real_stats_s: float
    fake_s: float
    compute_s: float
    cached: bool
    fid: float


@dataclass
class Projected:
    n_real: int
    n_fake: int
    first_s: float
    second_s: float
    ratio: float


@dataclass
class FidCache:
    n_real: int
    n_fake: int
    first: FidRun
    second: FidRun
    first_s: float
    second_s: float
    ratio: float
    projected: Projected
    note: str = CACHE_NOTE


@dataclass
class Idea:
    img_s: Summary
    vs_default: Summary


@dataclass
class Ideas:
    batch: int
    rounds: int
    rows: dict[str, Idea]


@dataclass
class Fid:
    batch: int
    features_max_abs_diff: float
    features_equal_1e_4: bool = json_key("features_equal_1e-4")
    torchmetrics_img_s: Summary
    project_img_s: Summary
    speedup: Summary
    speedup_cpu_time: Summary
    inception_gflop_per_image: float
    inception_gflops_per_s: float
    inception_peak_ratio: float | None
    project_path: str = PROJECT_PATH
    baseline_path: str = BASELINE_PATH
    ideas: Ideas | None = optional()
    cache: FidCache | None = None


def fid_images(n: int, seed: int = 3) -> torch.Tensor:
    """n CIFAR-like uint8 (n, 3, 32, 32) images from the embedded generator."""
    from upsample_zoo.data.cifar_synthetic import generate_images

    return torch.from_numpy(generate_images(seed=seed, split="test", start=0, count=n)).permute(0, 3, 1, 2).contiguous()


def _torchmetrics_fid(weights_path: Path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=2048, antialias=False, feature_extractor_weights_path=str(weights_path))


def time_updates(base, proj, batch: torch.Tensor, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Interleaved ``update(batch, real=True)`` of torchmetrics' default (as its docs show it) and the project's
    metric (as compute_fid and the GAN task call it), after one warm-up each: wall and CPU seconds."""
    t: dict[str, list[float]] = {"base": [], "proj": [], "base_cpu": [], "proj_cpu": []}
    watch = Stopwatch(device)

    def update(metric, inference: bool) -> Clock:
        watch.start()
        with torch.inference_mode() if inference else contextlib.nullcontext():
            metric.update(batch, real=True)
        return watch.stop()

    update(base, False)
    update(proj, True)
    for i in range(rounds):
        order = ((base, False, "base"), (proj, True, "proj"))
        for metric, inference, key in (order if i % 2 == 0 else order[::-1]):
            clock = update(metric, inference)
            t[key].append(clock.wall)
            t[f"{key}_cpu"].append(clock.cpu)
    return t


def run(s: Settings, device: torch.device, peak: float, work: Path, cache_dir: Path) -> Fid:
    import warnings

    from upsample_zoo.metrics import fid as F
    from upsample_zoo.metrics.fid_weights import resolve_fid_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        weights = resolve_fid_weights(cache_dir)
    base = _torchmetrics_fid(weights.path).to(device)
    proj = F.build_fid_metric(cache_dir, device=device)
    images = fid_images(max(s.fid_batch, s.fid_ideas_batch, 4)).to(device)
    batch = images[: s.fid_batch]
    with torch.inference_mode():  # the features: same network, same images, two paths
        fb, fp = base.inception(images[:4]), proj.inception(images[:4])
    max_diff = float((fb - fp).abs().max())
    t = time_updates(base, proj, batch, s.fid_rounds, device)
    n = len(batch)
    speedup = ratio_summary(t["base"], t["proj"])
    proj_rate, base_rate = summarize([n / x for x in t["proj"]]), summarize([n / x for x in t["base"]])
    with torch.inference_mode():
        flops_img = count_flops(lambda: proj.inception(images[:1]))
    gflops = flops_img * proj_rate["median"] / 1e9
    log(f"fid: project {proj_rate['median']:.2f} img/s vs torchmetrics {base_rate['median']:.2f} img/s "
        f"-> x{speedup['median']:.2f}; max feature diff {max_diff:.2e}")
    out = Fid(batch=n, features_max_abs_diff=max_diff, features_equal_1e_4=max_diff <= 1e-4,
              torchmetrics_img_s=base_rate, project_img_s=proj_rate, speedup=speedup,
              speedup_cpu_time=ratio_summary(t["base_cpu"], t["proj_cpu"]), inception_gflop_per_image=flops_img / 1e9,
              inception_gflops_per_s=gflops, inception_peak_ratio=gflops / peak if peak else None)
    del base
    if s.fid_ideas:
        out.ideas = fid_ideas(s, device, proj, weights.path, images[: s.fid_ideas_batch])
    out.cache = fid_cache_ratio(s, device, work, cache_dir)
    return out


def idea_variants(s: Settings, proj, weights_path: Path, batch: torch.Tensor) -> dict[str, tuple]:
    """{label: (forward function, images per call)}: torchmetrics' default forward first, then each idea."""
    import copy

    from upsample_zoo.metrics.fid import fold_batchnorm

    base = _torchmetrics_fid(weights_path).inception.to(batch.device)
    cl = copy.deepcopy(base).to(memory_format=torch.channels_last) if "channels_last" in s.fid_ideas else None
    folded = copy.deepcopy(base) if "fold" in s.fid_ideas else None
    if folded is not None:
        fold_batchnorm(folded)
    fast, half = proj.inception, batch[: max(1, len(batch) // 2)]
    threads = torch.get_num_threads()
    other = 1 if threads > 1 else TORCH_DEFAULT_THREADS  # the thread count this run does not use

    def other_threads():
        with torch_threads(other), torch.inference_mode():
            fast(batch)

    def inference(module, x=batch):
        with torch.inference_mode():
            module(x)

    candidates = {
        "inference_mode": ("+ torch.inference_mode", lambda: inference(base), len(batch)),
        "channels_last": ("+ channels_last only", lambda: cl(batch), len(batch)),
        "fold": ("+ BatchNorm folded only", lambda: folded(batch), len(batch)),
        "project": ("project: folded + channels_last + inference_mode", lambda: inference(fast), len(batch)),
        "half_batch": (f"project, batch {len(half)} instead of {len(batch)}", lambda: inference(fast, half), len(half)),
        "threads": (f"project, {other} torch thread{'s' if other > 1 else ''} instead of {threads}", other_threads,
                    len(batch)),
    }
    variants = {DEFAULT_VARIANT: (lambda: base(batch), len(batch))}
    variants.update({label: (fn, n) for key, (label, fn, n) in candidates.items()
                     if key in s.fid_ideas and not (key == "threads" and other == threads)})
    return variants



def fid_ideas(s: Settings, device: torch.device, proj, weights_path: Path, batch: torch.Tensor) -> Ideas:
    """Each idea alone, against torchmetrics' default forward, interleaved: img/s ratio per idea."""
    variants = idea_variants(s, proj, weights_path, batch)
    per_image: dict[str, list[float]] = {k: [] for k in variants}
    for fn, _ in variants.values():
        fn()
    for i in range(max(2, s.fid_rounds - 1)):
        items = list(variants.items())
        for name, (fn, n) in (items if i % 2 == 0 else items[::-1]):
            per_image[name].append(time_calls(fn, 1, 0, device)[0] / n)
    ref = per_image[DEFAULT_VARIANT]
    rows = {}
    for name, ts in per_image.items():
        rows[name] = Idea(img_s=summarize([1 / t for t in ts]), vs_default=ratio_summary(ref, ts))
        log(f"fid idea {name}: x{rows[name].vs_default['median']:.2f}")
    return Ideas(batch=len(batch), rounds=len(ref), rows=rows)


def fid_run(real: torch.Tensor, fake: torch.Tensor, stats_dir: Path, key: dict, device: torch.device,
            cache_dir: Path) -> FidRun:
    """One FID run as the GAN task makes it: build the metric, fill the real statistics (cached or not),
    extract the fakes, compute()."""
    from upsample_zoo.metrics import fid as F

    t0 = time.perf_counter()
    metric = F.build_fid_metric(cache_dir, device=device)
    t1 = time.perf_counter()
    stats = F.load_or_compute_real_stats(metric, stats_dir, key, real_batches=lambda: real.split(100))
    t2 = time.perf_counter()
    with torch.inference_mode():
        for b in fake.split(100):
            metric.update(b.to(device), real=False)
        sync(device)
        t3 = time.perf_counter()
        value = float(metric.compute())
    sync(device)
    t4 = time.perf_counter()
    return FidRun(total_s=t4 - t0, build_s=t1 - t0, real_stats_s=t2 - t1, fake_s=t3 - t2, compute_s=t4 - t3,
                  cached=stats.cached, fid=value)


def fid_cache_ratio(s: Settings, device: torch.device, work: Path, cache_dir: Path) -> FidCache:
    """Two FID runs as the GAN task makes them (n_real = n_fake): the second finds the real statistics cached."""
    n = s.fid_cache_n
    real, fake = fid_images(n, seed=11), fid_images(n, seed=12)
    stats_dir = work / "fid_stats"
    shutil.rmtree(stats_dir, ignore_errors=True)
    key = {"dataset": "bench", "split": "train", "n_real": n, "resolution": 32, "fingerprint": "bench"}
    first, second = (fid_run(real, fake, stats_dir, key, device, cache_dir) for _ in range(2))
    if first.cached or not second.cached or not math.isclose(first.fid, second.fid, rel_tol=1e-3):
        raise RuntimeError(f"FID cache did not behave: {first} then {second}")
    ratio = second.total_s / first.total_s
    # the same two runs at the GAN config's size, from the measured parts (extraction is linear in images)
    n_cfg = int(compose_config(["task=gan"], work / "cfg_gan").task.num_fake)
    per_image = (first.fake_s + second.fake_s) / (2 * n)
    fixed = (first.build_s + second.build_s) / 2 + (first.compute_s + second.compute_s) / 2
    proj_first = fixed + 2 * n_cfg * per_image
    proj_second = fixed + second.real_stats_s + n_cfg * per_image
    log(f"fid cache: first run {first.total_s:.1f} s, second {second.total_s:.1f} s -> {ratio:.2f} "
        f"(compute() {first.compute_s:.1f} / {second.compute_s:.1f} s); at n={n_cfg}: "
        f"{proj_second / proj_first:.2f}")
    return FidCache(n_real=n, n_fake=n, first=first, second=second, first_s=first.total_s, second_s=second.total_s,
                    ratio=ratio, projected=Projected(n_real=n_cfg, n_fake=n_cfg, first_s=proj_first,
                                                     second_s=proj_second, ratio=proj_second / proj_first))


def _add_cache_rows(table: Table, c: FidCache) -> None:
    pr = c.projected
    table.add("second FID run (real stats cached) ÷ first", fmt(c.ratio),
              f"n_real = n_fake = {c.n_real}: {fmt(c.second_s)} s vs {fmt(c.first_s)} s; of which metric build "
              f"{fmt(c.first.build_s)} / {fmt(c.second.build_s)} s, real stats {fmt(c.first.real_stats_s)} / "
              f"{fmt(c.second.real_stats_s)} s, compute() {fmt(c.first.compute_s)} / {fmt(c.second.compute_s)} s")
    table.add(f"the same at the config's n_real = n_fake = {pr.n_real}", fmt(pr.ratio),
              f"composed from the parts above (extraction linear in images): {fmt(pr.second_s)} s vs "
              f"{fmt(pr.first_s)} s")


def render(f: Fid | Failed) -> list[str]:
    table = Table(["figure", "value (spread)", "note"], align="lrl")
    if isinstance(f, Failed):
        return ["## 4. FID\n", *md_table(table.add("error", "", f.error), md_plain)]
    table.add("project path ÷ torchmetrics default, img/s", f"**{fmt_spread(f.speedup)}**",
              f"batch {f.batch}; {fmt(f.project_img_s['median'])} vs {fmt(f.torchmetrics_img_s['median'])} img/s; "
              f"CPU-time ratio {fmt(f.speedup_cpu_time['median'])}")
    table.add("features, max abs difference", f"{f.features_max_abs_diff:.1e}",
              "same network and images; must be ≤ 1e-4")
    if f.cache:
        _add_cache_rows(table, f.cache)
    table.add("Inception forward GFLOP/s", fmt(f.inception_gflops_per_s),
              f"{fmt(f.inception_gflop_per_image)} GFLOP per image (299x299)")
    table.add("Inception GFLOP/s ÷ matmul peak", fmt(f.inception_peak_ratio), "")
    lines = ["## 4. FID\n", *md_table(table, md_plain)[:-1]]
    if f.ideas:
        ideas = Table(["variant", "img/s", "÷ default"])
        for name, r in f.ideas.rows.items():
            ideas.add(name, fmt_spread(r.img_s), fmt_spread(r.vs_default))
        lines += [f"\nEach idea alone (Inception forward, batch {f.ideas.batch}, {f.ideas.rounds} interleaved "
                  "rounds), img/s ÷ torchmetrics' default:\n", *md_table(ideas, md_plain)[:-1]]
    lines.append("")
    return lines
