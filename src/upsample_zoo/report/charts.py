"""The report's charts, as PNG data URIs for the self-contained HTML: bar chart with CIs and seeds, quality vs
cost, and the runs' azimuthal spectra overlaid."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from upsample_zoo.report.comparison import Comparison, Section, label
from upsample_zoo.report.runs import zoo_names, zoo_order
from upsample_zoo.report.stats import finite, finite_or_nan

CHART_METRICS = ["test/miou", "test/fid", "test/checkerboard_db", "test/checkerboard_db_vs_ref"]
QUALITY = ["test/miou", "test/fid"]  # the y axis of the quality-vs-cost scatter, first one present
BOUNDS = {"test/miou": (0.0, 1.0), "test/pixel_acc": (0.0, 1.0), "val/miou": (0.0, 1.0), "test/fid": (0.0, None)}
ARROWS = {"max": " (↑ better)", "min": " (↓ better)"}


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fig_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return png_data_uri(buf.getvalue())


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(names: Sequence[str]) -> dict[str, Any]:
    """One tab10 colour per operator, by its place in the zoo, so an operator keeps its colour across charts."""
    cmap = _plt().get_cmap("tab10")
    zoo = zoo_names()
    return {n: cmap(zoo_order(n)[0] % 10 if n in zoo else (len(zoo) + i) % 10) for i, n in enumerate(names)}


def _clip_axis(ax, metric: str, values: Sequence[float]) -> None:
    """Keep the y axis inside a metric's possible range (CIs of 2 seeds reach far beyond it), with the
    seeds' own values always visible."""
    lo, hi = BOUNDS.get(metric, (None, None))
    if lo is None and hi is None:
        return
    new_lo, new_hi = ax.get_ylim()
    vals = finite(values)
    if vals:
        pad = 0.15 * ((max(vals) - min(vals)) or abs(vals[0]) or 1.0)
        new_lo, new_hi = min(new_lo, min(vals) - pad), max(new_hi, max(vals) + pad)
    ax.set_ylim(new_lo if lo is None else max(lo, new_lo), new_hi if hi is None else min(hi, new_hi))


def bar_chart(cmp: Comparison, section: Section) -> str | None:
    metrics = [m for m in CHART_METRICS if m in section.metrics]
    groups = [g for g in section.groups if g.n_ok]
    if not metrics or not groups:
        return None
    plt = _plt()
    colors = _colors([g.upsampler for g in section.groups])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        xs = range(len(groups))
        for i, g in enumerate(groups):
            row = cmp.row(section, g.upsampler, m)
            if row is None or not row["n_ok"]:
                continue
            half = row["ci95_high"] - row["mean"] if math.isfinite(row["ci95_high"]) else 0.0
            ax.bar(i, row["mean"], color=colors[g.upsampler], alpha=0.85,
                   hatch="//" if g.upsampler == cmp.baseline else None, edgecolor="0.25", linewidth=0.6)
            if half > 0:
                ax.errorbar(i, row["mean"], yerr=half, color="0.1", capsize=4, lw=1.2)
            vals = g.values(m)
            ax.scatter([i] * len(vals), vals, color="0.1", s=10, zorder=3)
        ax.set_xticks(list(xs), [g.upsampler for g in groups], rotation=40, ha="right", fontsize=8)
        arrow = ARROWS.get(section.direction(m) or "", "")
        ax.set_title(section.label(m) + arrow, fontsize=9)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
        _clip_axis(ax, m, [v for g in groups for v in g.values(m)])
    fig.suptitle(f"{section.title}: mean (bar), 95% CI of the mean (t; axis clipped to the metric's range) "
                 "and each seed (dots)", fontsize=9)
    fig.tight_layout()
    return _fig_uri(fig)


def cost_scatter(cmp: Comparison, section: Section) -> str | None:
    quality = next((m for m in QUALITY if m in section.metrics), section.headline[0] if section.headline else None)
    costs = [c for c in ("cost/params_upsamplers", "cost/train_img_per_s") if c in section.metrics]
    groups = [g for g in section.groups if g.n_ok]
    if quality is None or not costs or not groups:
        return None
    plt = _plt()
    colors = _colors([g.upsampler for g in section.groups])
    fig, axes = plt.subplots(1, len(costs), figsize=(5.2 * len(costs), 3.8), squeeze=False)
    for ax, c in zip(axes[0], costs):
        for g in groups:
            q, x = cmp.row(section, g.upsampler, quality), cmp.row(section, g.upsampler, c)
            if q is None or x is None or not q["n_ok"] or not x["n_ok"]:
                continue
            half = q["ci95_high"] - q["mean"] if math.isfinite(q["ci95_high"]) else 0.0
            ax.errorbar(x["mean"], q["mean"], yerr=half if half > 0 else None, fmt="o", color=colors[g.upsampler],
                        capsize=3, label=g.upsampler)
            ax.annotate(g.upsampler, (x["mean"], q["mean"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        xs = [v for g in groups for v in g.values(c)]
        if c == "cost/params_upsamplers" and xs and min(xs) > 0:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label(c))
        arrow = ARROWS.get(section.direction(quality) or "", "")
        ax.set_ylabel(section.label(quality) + arrow)
        ax.grid(alpha=0.3)
        _clip_axis(ax, quality, [v for g in groups for v in g.values(quality)])
    fig.suptitle(f"{section.title}: quality vs cost (mean, 95% CI)", fontsize=9)
    fig.tight_layout()
    return _fig_uri(fig)


def spectrum_plot(section: Section) -> str | None:
    """The azimuthal spectra of every upsampler overlaid, from the runs' optional ``spectrum`` entry
    ({"freqs": [...], "power": [...], "real": [...] optional}, linear power); None when no run has one."""
    curves: dict[str, list[list[float]]] = {}
    freqs: dict[str, list[float]] = {}
    real = None
    for g in section.groups:
        for r in g.ok_runs:
            sp = r.spectrum or {}
            f, p = sp.get("freqs"), sp.get("power")
            if not isinstance(f, list) or not isinstance(p, list) or len(f) != len(p) or len(f) < 2:
                continue
            if g.upsampler in freqs and len(freqs[g.upsampler]) != len(f):
                continue
            freqs[g.upsampler] = finite_or_nan(f)
            curves.setdefault(g.upsampler, []).append(finite_or_nan(p))
            if real is None and isinstance(sp.get("real"), list) and len(sp["real"]) == len(f):
                real = (finite_or_nan(f), finite_or_nan(sp["real"]))
    if not curves:
        return None
    plt = _plt()
    colors = _colors(list(curves))

    def db(ps: list[list[float]]) -> list[float]:
        return [10 * math.log10(max(sum(col) / len(col), 1e-20)) for col in zip(*ps)]

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for up, ps in curves.items():
        ax.plot(freqs[up][1:], db(ps)[1:], label=f"{up} (n={len(ps)})", color=colors[up], lw=1.2)
    if real is not None:
        ax.plot(real[0][1:], db([real[1]])[1:], label="real", color="k", lw=1.6, ls="--")
    ax.set_xlabel("radius (cycles/px)")
    ax.set_ylabel("power (dB)")
    ax.set_title(f"{section.title}: azimuthal power spectrum, mean over seeds", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _fig_uri(fig)

