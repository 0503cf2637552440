"""Row 1, upsamplers: forward+backward of every ``configs/upsampler/*.yaml`` (and any user class) at the
settings' channels and input size: time (``torch.utils.benchmark``), FLOPs, params, achieved GFLOP/s and its
ratio to the fp32 matmul peak measured in the same run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from upsample_zoo.bench.measure import (
    Failed,
    Summary,
    autorange_calls,
    count_flops,
    fmt,
    fmt_spread,
    forward_backward,
    log,
    one_line,
    summarize,
)
from upsample_zoo.bench.settings import CONFIG_DIR, Settings
from upsample_zoo.zoo import list_upsamplers

MIN_RUN_TIME_PER_REPEAT = 0.1  # seconds of timed blocks per upsampler: repeats x this, and >= repeats blocks


@dataclass
class UpsamplerRow:
    params: int
    output: list[int]
    flops_fwd_bwd: int
    flops_fwd: int
    time_s: Summary
    gflops_per_s: float
    peak_ratio: float | None


@dataclass
class Upsamplers:
    input: list[int]
    channels: list[int]
    rows: dict[str, UpsamplerRow | Failed]


def load_upsampler_configs(config_dir: Path = CONFIG_DIR, extra: Sequence[str] = ()) -> dict[str, Any]:
    """{name: config} of every zoo upsampler, plus the user's classes in ``extra`` (dotted paths)."""
    from omegaconf import OmegaConf

    paths = [config_dir / "upsampler" / f"{n}.yaml" for n in list_upsamplers(config_dir)]
    if not paths:
        raise FileNotFoundError(f"no upsampler configs in {config_dir / 'upsampler'}")
    return {p.stem: OmegaConf.load(p) for p in paths} | {
        n: OmegaConf.create({"_target_": n, "_partial_": True}) for n in extra}


def measure_one(cfg, s: Settings, x: torch.Tensor, g: torch.Generator, device: torch.device,
                peak: float) -> UpsamplerRow:
    from hydra.utils import instantiate

    cin, cout = s.up_channels
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

    def fwd_bwd() -> None:
        forward_backward(up, x, grad, guide)

    flops = count_flops(fwd_bwd)
    fwd_flops = count_flops(lambda: up(x.detach(), **kw))
    for _ in range(s.warmup):
        fwd_bwd()
    times = summarize(autorange_calls(fwd_bwd, MIN_RUN_TIME_PER_REPEAT * s.repeats, min_samples=s.repeats))
    gflops = flops / times["median"] / 1e9
    return UpsamplerRow(params=sum(p.numel() for p in up.parameters()), output=list(out_shape),
                        flops_fwd_bwd=flops, flops_fwd=fwd_flops, time_s=times, gflops_per_s=gflops,
                        peak_ratio=gflops / peak if peak else None)


def run(s: Settings, device: torch.device, peak: float, only: Sequence[str] | None = None) -> Upsamplers:
    cin, cout = s.up_channels
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.up_batch, cin, s.up_side, s.up_side, generator=g).to(device).requires_grad_(True)
    rows: dict[str, UpsamplerRow | Failed] = {}
    for name, cfg in load_upsampler_configs(extra=[n for n in (only or ()) if "." in n]).items():
        if only and name not in only:
            continue
        try:
            row = rows[name] = measure_one(cfg, s, x, g, device, peak)
            log(f"upsampler {name}: {row.time_s['median'] * 1e3:.1f} ms, {row.gflops_per_s:.1f} GFLOP/s")
        except Exception as e:  # noqa: BLE001 - one upsampler that cannot run is a row, not a crash
            rows[name] = Failed(one_line(e))
    return Upsamplers(input=[s.up_batch, cin, s.up_side, s.up_side], channels=[cin, cout], rows=rows)


def render(up: Upsamplers) -> list[str]:
    b, c, h, w = up.input
    lines = [f"## 1. Upsamplers: forward+backward, {c}→{up.channels[1]} channels, {h}x{w} input "
             f"({2 * h}x{2 * w} output), batch {b}, fp32\n",
             "FLOPs count convolutions and matmuls (2 per multiply-add, backward included: input and weight "
             "gradients); resampling, softmax and elementwise work count zero but cost time.\n",
             "| upsampler | params | GFLOP fwd+bwd | time ms | GFLOP/s | ÷ matmul peak |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in up.rows.items():
        if isinstance(r, Failed):
            lines.append(f"| {name} | – | – | error: {r.error} | – | – |")
            continue
        lines.append(f"| {name} | {r.params:,} | {fmt(r.flops_fwd_bwd / 1e9)} | {fmt_spread(r.time_s, 1e3)} | "
                     f"{fmt(r.gflops_per_s)} | {fmt(r.peak_ratio)} |")
    lines.append("")
    return lines
