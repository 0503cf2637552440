"""The whole run's results (one dataclass per row, written as bench.json), the one-line headline of ratios,
and the markdown report (bench.md): the machine and method, then each row's own lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upsample_zoo.bench import checkerboard, data, fid_speed, overhead, scaling, sweep, upsamplers
from upsample_zoo.bench.environment import MatmulPeak
from upsample_zoo.bench.measure import Failed, fmt, fmt_spread, optional
from upsample_zoo.bench.settings import Settings
from upsample_zoo.tasks.declarations import package_declarations


@dataclass(kw_only=True)
class BenchResult:
    """Everything bench.json holds, in its order; a section that was not run is left out."""

    schema: int = 1
    mode: str
    command: str = ""
    settings: Settings | None = None
    device: dict[str, Any] = field(default_factory=dict)
    load_avg_start: list[float] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    matmul: MatmulPeak | Failed | None = None
    upsamplers: upsamplers.Upsamplers | Failed | None = optional()
    overhead: dict[str, overhead.Overhead | Failed] | None = optional()
    data: data.Data | Failed | None = optional()
    fid: fid_speed.Fid | Failed | None = optional()
    checkerboard: checkerboard.Checkerboard | None = optional()
    scaling: scaling.Scaling | Failed | None = optional()
    sweep: sweep.Sweep | sweep.Skipped | Failed | None = optional()
    wall_s: float | None = None
    load_avg_end: list[float] | None = None
    threads: dict[str, Any] | None = optional()
    headline: dict[str, Any] | None = optional()


def _median(v: Any) -> float | None:
    """The median of a summary, or the number itself."""
    return v.get("median") if isinstance(v, dict) else v


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _overhead_figures(ov: dict[str, overhead.Overhead | Failed]) -> dict[str, Any]:
    ok = {t: r for t, r in ov.items() if isinstance(r, overhead.Overhead)}
    tasks = package_declarations()
    return {
        **{f"overhead_{t}": _round(_median(ok[t].ratio) if t in ok else None) for t in tasks},
        **{f"overhead_{t}_implied": _round(ok[t].ratio_implied if t in ok else None) for t in tasks},
        "framework_ms_per_step": {t: _round(ok[t].overhead_ms_per_step if t in ok else None) for t in ov},
    }


def _fid_figures(f: fid_speed.Fid | None) -> dict[str, Any]:
    cache = f.cache if f else None
    return {
        "fid_speedup": _round(_median(f.speedup) if f else None),
        "fid_cache_ratio": _round(cache.ratio if cache else None),
        "fid_cache_ratio_at_config_n": _round(cache.projected.ratio if cache and cache.projected else None),
    }


def headline(res: BenchResult) -> dict[str, Any]:
    """The one-line JSON summary (stdout's last line)."""
    f = res.fid if isinstance(res.fid, fid_speed.Fid) else None
    rows = res.data.rows.values() if isinstance(res.data, data.Data) else ()
    data_ratios = [r.ratio for r in rows if isinstance(r, data.LoaderRow) and r.ratio]
    cb = {t: r for t, r in (res.checkerboard or {}).items() if not isinstance(r, Failed)}
    sc = res.scaling if isinstance(res.scaling, scaling.Scaling) else None
    tasks = package_declarations()
    return {
        **_overhead_figures(res.overhead or {}),
        **_fid_figures(f),
        "matmul_peak_gflops": _round(_median(res.matmul.gflops) if isinstance(res.matmul, MatmulPeak) else None),
        "fid_features_max_abs_diff": f.features_max_abs_diff if f else None,
        "inception_peak_ratio": _round(f.inception_peak_ratio if f else None),
        "data_ratio_min": _round(min(data_ratios)) if data_ratios else None,
        **{f"checkerboard_fraction_{t}": _round(_median(cb[t].fraction) if t in cb else None) for t in tasks},
        "scaling_exponent_images": _round(sc.exponent_images if sc else None),
        "scaling_exponent_side": _round(sc.exponent_side if sc else None),
        "sweep_speedup": _round(_median(res.sweep.speedup) if isinstance(res.sweep, sweep.Sweep) else None),
        "mode": res.mode, "torch_threads": res.device.get("torch_threads"),
        "wall_s": _round(res.wall_s), "load_avg": res.load_avg_end,
        "errors": sorted(res.errors),
    }


def machine_lines(res: BenchResult) -> list[str]:
    """The report's header: machine, threads, load, method, matmul peak."""
    info, thr = res.device, res.threads or {}
    gpu = info.get("gpu") or "none (no GPU figures exist yet)"
    start = res.load_avg_start or [0.0]
    busy = start[0] > info["cpus_usable"]
    lines = [f"# upsample-zoo bench ({res.mode})\n",
             f"- **Machine**: {info['cpu']}, {info['cpus_usable']} usable CPUs, torch {info['torch']}; device "
             f"`{info['device']}`; GPU: {gpu}.",
             f"- **Torch threads**: {info['torch_threads']} ({thr.get('why', 'torch default')}).",
             f"- **Load average** (1/5/15 min) at start {res.load_avg_start}, at end {res.load_avg_end}"
             + (": above the CPU count, other jobs shared the machine, so absolute times are inflated and noisy; "
                "ratios are measured side by side (interleaved) to cancel most of it." if busy else "."),
             f"- **Method**: each figure is the median of the timed repeats after a warm-up, spread shown as "
             f"(min–max); ratios are ratios of medians, their spread is over the interleaved pairs. "
             f"Wall time of this bench: {fmt(res.wall_s)} s. Command: `{res.command}`."]
    m = res.matmul
    if isinstance(m, MatmulPeak):
        lines.append(f"- **fp32 matmul peak** ({m.n}x{m.n}): {fmt_spread(m.gflops)} GFLOP/s.")
    elif isinstance(m, Failed):
        lines.append(f"- **fp32 matmul peak**: error: {m.error}.")
    return [*lines, ""]


def _failed_section(title: str, f: Failed) -> list[str]:
    return [f"## {title}\n", f"error: {f.error}\n"]


def render_markdown(res: BenchResult) -> str:
    lines = machine_lines(res)
    if res.upsamplers:
        lines += (upsamplers.render(res.upsamplers) if isinstance(res.upsamplers, upsamplers.Upsamplers)
                  else _failed_section("1. Upsamplers", res.upsamplers))
    if res.overhead:
        lines += overhead.render(res.overhead)
    if res.data:
        lines += (data.render(res.data) if isinstance(res.data, data.Data)
                  else _failed_section("3. Data pipeline", res.data))
    if res.fid:
        lines += fid_speed.render(res.fid)
    if res.checkerboard:
        lines += checkerboard.render(res.checkerboard)
    if res.scaling:
        lines += scaling.render(res.scaling)
    if res.sweep:
        lines += sweep.render(res.sweep)
    if res.errors:
        lines += ["## Errors\n", *(f"- {k}: {v}" for k, v in res.errors.items())]
    return "\n".join(lines) + "\n"
