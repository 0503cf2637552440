"""Row 1, upsamplers: forward+backward of every ``configs/upsampler/*.yaml`` (and any user class) at the
settings' channels and input size: time (``torch.utils.benchmark``), FLOPs, params, achieved GFLOP/s and its
ratio to the fp32 matmul peak measured in the same run, peak memory; then the same at the real-VOC U-Net's
decoder steps (table 1b)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from upsample_zoo.bench.measure import (
    Failed,
    Summary,
    autorange_calls,
    conv_share,
    count_flops,
    fmt,
    fmt_spread,
    forward_backward,
    log,
    optional,
    peak_bytes,
    summarize,
)
from upsample_zoo.bench.settings import CONFIG_DIR, Settings
from upsample_zoo.errors import one_line
from upsample_zoo.report.table_model import Table, md_plain, md_table
from upsample_zoo.upsamplers.base import needs_guide
from upsample_zoo.zoo import list_upsamplers

MIN_RUN_TIME_PER_REPEAT = 0.1  # seconds of timed blocks per upsampler: repeats x this, and >= repeats blocks
BASELINE = "resize_conv"        # the ratios' denominator: the plain convolution the issue's goals are stated in
MIB = 2**20


@dataclass
class UpsamplerRow:
    params: int
    output: list[int]
    flops_fwd_bwd: int
    flops_fwd: int
    time_s: Summary
    gflops_per_s: float
    peak_ratio: float | None
    peak_mib: float | None = optional()
    conv_share: float | None = optional()  # of the time: convolutions (the rest: window ops, resampling, ...)


@dataclass
class StageShape:
    """One decoder step of the U-Net: (batch, in_channels, side, side) -> (batch, out_channels, 2 side, 2 side)."""
    batch: int
    in_channels: int
    out_channels: int
    side: int


@dataclass
class StageRow:
    time_ms: list[float]  # median per stage
    total_ms: float
    peak_mib: float       # the largest stage's
    flops_fwd_bwd: int | None = optional()  # all stages


@dataclass
class UNetStages:
    overrides: list[str]
    stages: list[StageShape]
    rows: dict[str, StageRow | Failed]


@dataclass
class Upsamplers:
    input: list[int]
    channels: list[int]
    rows: dict[str, UpsamplerRow | Failed]
    unet: UNetStages | Failed | None = optional()


def load_upsampler_configs(config_dir: Path = CONFIG_DIR, extra: Sequence[str] = ()) -> dict[str, Any]:
    """{name: config} of every zoo upsampler, plus the user's classes in ``extra`` (dotted paths)."""
    from omegaconf import OmegaConf

    paths = [config_dir / "upsampler" / f"{n}.yaml" for n in list_upsamplers(config_dir)]
    if not paths:
        raise FileNotFoundError(f"no upsampler configs in {config_dir / 'upsampler'}")
    return {p.stem: OmegaConf.load(p) for p in paths} | {
        n: OmegaConf.create({"_target_": n, "_partial_": True}) for n in extra}


def _operator_and_inputs(cfg, shape: StageShape, g: torch.Generator, device: torch.device):
    """The operator (seeded) and its inputs; a guided operator (FADE, SAPA, ...) also reads a skip-like guide,
    (batch, out_channels, scale * side, ...), as in the U-Net."""
    from hydra.utils import instantiate

    torch.manual_seed(0)
    up = instantiate(cfg)(shape.in_channels, shape.out_channels).to(device)
    x = torch.randn(shape.batch, shape.in_channels, shape.side, shape.side, generator=g).to(device)
    guide = None
    if needs_guide(up):
        side = up.scale * shape.side
        guide = torch.randn(shape.batch, shape.out_channels, side, side, generator=g).to(device).requires_grad_(True)
    return up, x.requires_grad_(True), guide


def _time_and_peak(fwd_bwd, s: Settings, device: torch.device) -> tuple[Summary, float]:
    for _ in range(s.warmup):
        fwd_bwd()
    times = summarize(autorange_calls(fwd_bwd, MIN_RUN_TIME_PER_REPEAT * s.repeats, min_samples=s.repeats))
    return times, peak_bytes(fwd_bwd, device) / MIB


def measure_one(cfg, s: Settings, shape: StageShape, g: torch.Generator, device: torch.device,
                peak: float) -> UpsamplerRow:
    up, x, guide = _operator_and_inputs(cfg, shape, g, device)
    kw = {} if guide is None else {"guide": guide}
    with torch.no_grad():
        out_shape = tuple(up(x, **kw).shape)
    grad = torch.randn(out_shape, generator=g).to(device)

    def fwd_bwd() -> None:
        forward_backward(up, x, grad, guide)

    flops = count_flops(fwd_bwd)
    fwd_flops = count_flops(lambda: up(x.detach(), **kw))
    times, peak_mib = _time_and_peak(fwd_bwd, s, device)
    gflops = flops / times["median"] / 1e9
    return UpsamplerRow(params=sum(p.numel() for p in up.parameters()), output=list(out_shape),
                        flops_fwd_bwd=flops, flops_fwd=fwd_flops, time_s=times, gflops_per_s=gflops,
                        peak_ratio=gflops / peak if peak else None, peak_mib=peak_mib,
                        conv_share=conv_share(fwd_bwd) if device.type == "cpu" else None)


def unet_stage_shapes(s: Settings, work: Path) -> list[StageShape]:
    """The decoder steps of the configured U-Net (``s.unet_overrides``), lowest resolution first, read off the
    model itself: its upsamplers' channels, and their input sides at the config's crop (a forward with hooks)."""
    from upsample_zoo.bench.workloads import compose_config
    from upsample_zoo.models.build import build_model

    cfg = compose_config([*s.unet_overrides, "upsampler=bilinear"], work)
    model = build_model(cfg).eval()
    sides: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _, args: sides.append(args[0].shape[-1]))
             for m in model.upsampler_modules()]
    with torch.no_grad():
        model(torch.zeros(1, int(cfg.model.in_channels), int(cfg.data.crop_size), int(cfg.data.crop_size)))
    for h in hooks:
        h.remove()
    batch = s.unet_batch or int(cfg.data.batch_size)
    return [StageShape(batch, cin, cout, side) for (cin, cout), side in zip(model.upsampler_channels(), sides)]


def measure_stages(cfg, s: Settings, stages: list[StageShape], g: torch.Generator,
                   device: torch.device) -> StageRow:
    times, peaks, flops = [], [], 0
    for shape in stages:
        up, x, guide = _operator_and_inputs(cfg, shape, g, device)
        grad = torch.randn(shape.batch, shape.out_channels, 2 * shape.side, 2 * shape.side, generator=g).to(device)
        fwd_bwd = partial(forward_backward, up, x, grad, guide)
        flops += count_flops(fwd_bwd)
        t, p = _time_and_peak(fwd_bwd, s, device)
        times.append(t["median"] * 1e3)
        peaks.append(p)
    return StageRow(time_ms=times, total_ms=sum(times), peak_mib=max(peaks), flops_fwd_bwd=flops)


def run(s: Settings, device: torch.device, peak: float, only: Sequence[str] | None = None,
        work: Path | None = None) -> Upsamplers:
    """Row 1 at the settings' shape; with ``work`` (a folder for the composed config) also the U-Net table."""
    cin, cout = s.up_channels
    g = torch.Generator().manual_seed(0)
    shape = StageShape(s.up_batch, cin, cout, s.up_side)
    configs = {n: c for n, c in load_upsampler_configs(extra=[n for n in (only or ()) if "." in n]).items()
               if not only or n in only}
    rows: dict[str, UpsamplerRow | Failed] = {}
    for name, cfg in configs.items():
        try:
            row = rows[name] = measure_one(cfg, s, shape, g, device, peak)
            log(f"upsampler {name}: {row.time_s['median'] * 1e3:.1f} ms, {row.peak_mib:.1f} MiB")
        except Exception as e:  # noqa: BLE001 - one upsampler that cannot run is a row, not a crash
            rows[name] = Failed(one_line(e))
    res = Upsamplers(input=[s.up_batch, cin, s.up_side, s.up_side], channels=[cin, cout], rows=rows)
    if work is not None:
        res.unet = _run_unet(configs, s, g, device, work)
    return res


def _run_unet(configs: dict[str, Any], s: Settings, g: torch.Generator, device: torch.device,
              work: Path) -> UNetStages | Failed:
    try:
        stages = unet_stage_shapes(s, work)
    except Exception as e:  # noqa: BLE001
        return Failed(one_line(e))
    rows: dict[str, StageRow | Failed] = {}
    for name, cfg in configs.items():
        try:
            rows[name] = measure_stages(cfg, s, stages, g, device)
            log(f"upsampler {name} at the U-Net's stages: {rows[name].total_ms:.1f} ms")
        except Exception as e:  # noqa: BLE001
            rows[name] = Failed(one_line(e))
    return UNetStages(overrides=list(s.unet_overrides), stages=stages, rows=rows)


def _share(v: float | None) -> str:
    return f"{v:.0%}" if v is not None else "–"


def _ratio(v: float | None, base: float | None) -> str:
    return fmt(v / base) if v is not None and base else "–"


def render(up: Upsamplers) -> list[str]:
    b, c, h, w = up.input
    base = up.rows.get(BASELINE)
    base_t, base_m = ((base.time_s["median"], base.peak_mib) if isinstance(base, UpsamplerRow) else (None, None))
    lines = [f"## 1. Upsamplers: forward+backward, {c}→{up.channels[1]} channels, {h}x{w} input "
             f"({2 * h}x{2 * w} output), batch {b}, fp32\n",
             "FLOPs count convolutions and matmuls (2 per multiply-add, backward included: input and weight "
             "gradients); resampling, softmax and elementwise work count zero but cost time. Peak MiB: the most "
             "memory allocated at once during one forward+backward, above the inputs (the profiler's allocation "
             f"events); ÷ {BASELINE}: this run's ratios; convs: the share of the time in convolutions, forward "
             "and backward (one profiled call, CPU), the rest being resampling, window ops, softmax and "
             "elementwise work.\n"]
    table = Table(["upsampler", "params", "GFLOP fwd+bwd", "time ms", f"÷ {BASELINE}", "convs", "GFLOP/s",
                   "÷ matmul peak", "peak MiB", f"÷ {BASELINE}"])
    for name, r in up.rows.items():
        if isinstance(r, Failed):
            table.add(name, "–", "–", f"error: {r.error}", "–", "–", "–", "–", "–", "–")
            continue
        table.add(name, f"{r.params:,}", fmt(r.flops_fwd_bwd / 1e9), fmt_spread(r.time_s, 1e3),
                  _ratio(r.time_s["median"], base_t), _share(r.conv_share), fmt(r.gflops_per_s), fmt(r.peak_ratio),
                  fmt(r.peak_mib), _ratio(r.peak_mib, base_m))
    lines += md_table(table, md_plain)
    if isinstance(up.unet, Failed):
        lines += [f"U-Net stages: error: {up.unet.error}", ""]
    elif up.unet is not None:
        lines += render_unet(up.unet)
    return lines


def render_unet(u: UNetStages) -> list[str]:
    base = u.rows.get(BASELINE)
    base_t, base_m = (base.total_ms, base.peak_mib) if isinstance(base, StageRow) else (None, None)
    heads = [f"{st.in_channels}→{st.out_channels}, {st.side}→{2 * st.side}" for st in u.stages]
    lines = [f"### 1b. At the U-Net's shapes: one decoder step per stage of `{' '.join(u.overrides)}`, batch "
             f"{u.stages[0].batch if u.stages else '–'}, forward+backward ms (median)\n"]
    table = Table(["upsampler", *heads, "total ms", f"÷ {BASELINE}", "GFLOP fwd+bwd", "peak MiB", f"÷ {BASELINE}"])
    for name, r in u.rows.items():
        if isinstance(r, Failed):
            table.add(name, f"error: {r.error}", *["–"] * (len(heads) + 4))
            continue
        gflop = fmt(r.flops_fwd_bwd / 1e9) if r.flops_fwd_bwd is not None else "–"
        table.add(name, *(fmt(t) for t in r.time_ms), fmt(r.total_ms), _ratio(r.total_ms, base_t), gflop,
                  fmt(r.peak_mib), _ratio(r.peak_mib, base_m))
    return lines + md_table(table, md_plain)
