"""Compare upsamplers across runs: results.json files -> comparison.{md,csv,html}.

``upsample-zoo compare PATH... [--baseline bilinear] [--out DIR] [--wandb]`` (also run by the Hydra
callback at the end of every multirun, into the sweep dir).

- Every ``results.json`` under the paths (recursively) is one run. Run folders with a ``.hydra/``
  but no ``results.json`` (a killed job) are listed as ``incomplete``; unreadable files as
  ``unreadable``. Nothing here ever crashes on a bad run: it shows up as a hole.
- Runs are grouped by (task, data, upsampler), and by *variant*: the run's command-line overrides
  other than upsampler/seed/tags/hydra/paths that are not shared by every run of that (task, data).
  A plain ablation has one empty variant; ``model.base_channels=8,0`` gives two.
- Per group and metric: n, mean, sample std (ddof 1), 95% CI of the mean over seeds (Student t).
- Against ``--baseline`` (same task, data and variant): the mean paired difference over matching
  seeds, its 95% CI (paired t, ``ttest_rel(...).confidence_interval()``), Cohen's d_z (mean / sample
  std of the differences), and a paired test: ``scipy.stats.ttest_rel`` with >= 3 pairs, else an
  exact sign-flip permutation test over all 2^n sign patterns. Two-sided, alpha 0.05, Holm-Bonferroni
  over the upsamplers of one table, per metric (the raw p stays in the CSV).
- Power: with n < 3 pairs the sign-flip p cannot go below 2/2^n (1.0 at n=1, 0.5 at n=2), so no
  test here can reach alpha; such cells say "untestable" and the report says how many seeds are
  needed (3 under this rule, as the t-test can give any p; an exact sign-flip test alone needs the
  smallest n with 2/2^n <= alpha: 6 for 0.05).

Only ``results.json`` and the files beside it are read (figures, ``.hydra/overrides.yaml``, and the
sweep's ``multirun.yaml`` one level up), so the report can be rebuilt from copied run folders.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as _dt
import functools
import hashlib
import html
import io
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upsample_zoo.atomic import atomic_write_bytes, atomic_write_text

OK = "ok"
ALPHA = 0.05
MAX_EMBED_BYTES = 8 * 2**20

# metrics shown in the summary tables and charts, per task (others are in the CSV and the full table)
HEADLINE = {
    "segmentation": ["test/miou", "test/boundary_iou", "test/pixel_acc", "test/checkerboard_db",
                     "test/grid_error_contrast"],
    "gan": ["test/fid", "test/spectral_fd", "test/checkerboard_db", "test/checkerboard_db_vs_ref"],
}
# The reference row under a task's summary table: each headline metric scored on real images by the run's own
# code (the GAN task's real-vs-real floor, tasks/gan.py); the same value in every run of a sweep.
REFERENCE = {"gan": {"test/fid": "test/fid_real_floor", "test/spectral_fd": "test/spectral_fd_real_floor",
                     "test/checkerboard_db": "test/checkerboard_db_ref", "test/checkerboard_db_vs_ref": None}}
REFERENCE_NAME = "real (reference)"
CHART_METRICS = ["test/miou", "test/fid", "test/checkerboard_db", "test/checkerboard_db_vs_ref"]
QUALITY = ["test/miou", "test/fid"]  # the y axis of the quality-vs-cost scatter, first one present
COST_COLUMNS = [("cost/params_upsamplers", "params (upsamplers)"), ("cost/params_total", "params (total)"),
                ("cost/train_img_per_s", "train img/s"), ("cost/wall_s", "wall s")]
LABELS = {"test/miou": "mIoU", "test/pixel_acc": "pixel acc", "test/fid": "FID",
          "test/checkerboard_db": "checkerboard dB", "test/checkerboard_db_vs_ref": "checkerboard dB − real",
          "test/boundary_iou": "boundary IoU", "test/grid_error_contrast": "grid error contrast",
          "test/spectral_fd": "spectral FD",
          "cost/params_upsamplers": "params (upsamplers)", "cost/params_total": "params (total)",
          "cost/train_img_per_s": "train img/s", "cost/wall_s": "wall s"}
FIGURES = ["predictions.png", "samples.png", "grid_error.png"]
SPECTRUM_FIGURE = "spectrum_azimuthal.png"
# not variants: the upsampler and its per-stage operators are in the run's name (tconv+last:bilinear)
IGNORED_OVERRIDE_KEYS = {"upsampler", "model.stage_upsamplers", "seed", "tags", "ckpt_path", "resume"}
IGNORED_OVERRIDE_PREFIXES = ("hydra.", "hydra/", "paths.")


def direction(metric: str) -> str | None:
    """'max', 'min' or None (no better/worse)."""
    m = metric.lower()
    if any(k in m for k in ("fid", "spectral_fd", "checkerboard_db", "checkerboard_amp", "blockiness", "loss",
                            "wall_s", "fit_s", "hf_gap", "grid_error")):
        return "min"
    if any(k in m for k in ("iou", "acc", "img_per_s")):
        return "max"
    return None


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def label_dir(metric: str) -> str:
    """The label with its better direction: 'mIoU ↑', 'FID ↓'."""
    return label(metric) + {"max": " ↑", "min": " ↓"}.get(direction(metric) or "", "")


# ---- statistics ------------------------------------------------------------------------------------

def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def describe(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """n, mean, sample std (ddof 1), and the two-sided t confidence interval of the mean."""
    from scipy import stats

    xs = _finite(values)
    n = len(xs)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean": nan, "std": nan, "ci_low": nan, "ci_high": nan}
    mean = math.fsum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": nan, "ci_low": nan, "ci_high": nan}
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean paired difference (all 2^n patterns)."""
    d = _finite(diffs)
    n = len(d)
    if n == 0:
        return float("nan")
    observed = abs(math.fsum(d))
    tol = 1e-12 * max(1.0, observed)
    hits = sum(abs(math.fsum(s * x for s, x in zip(signs, d))) >= observed - tol
               for signs in itertools.product((1.0, -1.0), repeat=n))
    return hits / 2**n


def p_floor(n_pairs: int) -> float:
    """The smallest p the test of ``paired_test`` can give with n pairs: 2/2^n for the exact sign-flip test
    (n < 3), 0 for the paired t-test (n >= 3: any p > 0 is reachable); nan without pairs."""
    if n_pairs < 1:
        return float("nan")
    return 2.0 / 2**n_pairs if n_pairs < 3 else 0.0


def pairs_needed(alpha: float, sign_flip_only: bool = False) -> int | None:
    """The fewest pairs with which a p <= alpha is possible: under ``paired_test``'s rule, or with the exact
    sign-flip test alone (smallest n with 2/2^n <= alpha). None when no n up to 64 does."""
    floor = (lambda n: 2.0 / 2**n) if sign_flip_only else p_floor
    return next((n for n in range(1, 65) if floor(n) <= alpha), None)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order; non-finite p's stay nan and are not
    counted in the family. Sorted ascending, adjusted p_(j) = max over i <= j of min(1, (m - i + 1) p_(i))."""
    ps = [float(p) for p in pvalues]
    idx = sorted((i for i, p in enumerate(ps) if math.isfinite(p)), key=lambda i: ps[i])
    out, running = [float("nan")] * len(ps), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (len(idx) - rank) * ps[i]))
        out[i] = running
    return out


def paired_test(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Paired test of x against y (same seeds, same order): ttest_rel with >= 3 pairs, else sign-flip; also the
    t confidence interval of the mean difference (>= 2 pairs), Cohen's d_z and p_min (``p_floor``)."""
    from scipy import stats

    pairs = [(a, b) for a, b in zip(_finite_or_nan(x), _finite_or_nan(y)) if math.isfinite(a) and math.isfinite(b)]
    diffs = [a - b for a, b in pairs]
    n = len(diffs)
    nan = float("nan")
    out: dict[str, Any] = {"n_pairs": n, "diff": nan, "p": nan, "test": "none", "ci_low": nan, "ci_high": nan,
                           "d_z": nan, "p_min": p_floor(n)}
    if n == 0:
        out["test"] = "no matching seeds"
        return out
    out["diff"] = math.fsum(diffs) / n
    constant = all(abs(d - diffs[0]) <= 1e-12 * max(1.0, abs(diffs[0])) for d in diffs)
    if n >= 2 and constant:  # identical differences: ttest_rel is nan, the CI is the point, d_z is undefined
        out.update(ci_low=out["diff"], ci_high=out["diff"])
    elif n >= 2:
        res = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs])
        ci = res.confidence_interval(confidence)
        sd = math.sqrt(math.fsum((d - out["diff"]) ** 2 for d in diffs) / (n - 1))
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), d_z=out["diff"] / sd)
    if n >= 3:
        # zero variance: identical runs differ by nothing (p = 1), a constant nonzero shift is certain (p = 0)
        out["p"] = (1.0 if abs(diffs[0]) <= 1e-12 else 0.0) if constant else float(res.pvalue)
        out["test"] = "paired t-test (scipy.stats.ttest_rel)"
    else:
        out["p"] = sign_flip_p(diffs)
        out["test"] = f"exact sign-flip permutation ({2**n} patterns)"
    return out


def _finite_or_nan(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


# ---- loading runs ------------------------------------------------------------------------------------

@dataclass
class Run:
    run_dir: Path
    status: str
    task: str = "?"
    data: str = "?"
    upsampler: str = "?"
    seed: int | None = None
    error: str | None = None
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    dataset: Any = None
    overrides: list[str] = field(default_factory=list)
    spectrum: dict[str, Any] | None = None
    variant: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def command(self) -> str:
        return "python train.py " + " ".join(shlex.quote(o) for o in self.overrides)


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _overrides(run_dir: Path) -> list[str]:
    data = _read_yaml(run_dir / ".hydra" / "overrides.yaml")
    return [str(o) for o in data] if isinstance(data, list) else []


def _flatten_numbers(d: Any, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(d, dict):
        return out
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = float(v)
    return out


def _run_from_results(path: Path, res: dict[str, Any]) -> Run:
    run_dir = path.parent
    metrics = _flatten_numbers(res.get("metrics"), "")
    metrics |= _flatten_numbers(res.get("cost"), "cost/")
    if "test/checkerboard_db" in metrics and "test/checkerboard_db_ref" in metrics:
        metrics["test/checkerboard_db_vs_ref"] = metrics["test/checkerboard_db"] - metrics["test/checkerboard_db_ref"]
    seed = res.get("seed")
    tags = res.get("tags") or []
    spectrum = res.get("spectrum") if isinstance(res.get("spectrum"), dict) else None
    return Run(
        run_dir=run_dir,
        status=str(res.get("status") or "unknown"),
        task=str(res.get("task") or "?"),
        data=str(res.get("data") or "?"),
        upsampler=str(res.get("upsampler") or "?"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        error=None if res.get("error") is None else str(res.get("error")),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [str(tags)],
        metrics=metrics,
        protocol=res.get("protocol") if isinstance(res.get("protocol"), dict) else {},
        dataset=res.get("dataset"),
        overrides=_overrides(run_dir),
        spectrum=spectrum,
    )


def _incomplete_run(run_dir: Path) -> Run:
    """A run folder that has its .hydra/ but no results.json: killed, or still running."""
    hydra_cfg = _read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    choices = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {} \
        if isinstance(hydra_cfg, dict) else {}
    cfg = _read_yaml(run_dir / ".hydra" / "config.yaml")
    seed = cfg.get("seed") if isinstance(cfg, dict) else None
    tags = cfg.get("tags") if isinstance(cfg, dict) else None
    return Run(run_dir=run_dir, status="incomplete", task=str(choices.get("task", "?")),
               data=str(choices.get("data", "?")), upsampler=str(choices.get("upsampler", "?")),
               seed=seed if isinstance(seed, int) else None, error="no results.json (killed or still running)",
               tags=[str(t) for t in tags] if isinstance(tags, list) else [], overrides=_overrides(run_dir))


def load_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """Every run under the paths (a results.json file or a folder searched recursively), sorted."""
    runs: dict[Path, Run] = {}
    for p in map(Path, paths):
        if p.is_file():
            files, hydra_dirs = [p], []
        else:
            files = sorted(p.rglob("results.json"))
            hydra_dirs = sorted(p.rglob(".hydra"))
        for f in files:
            key = f.parent.resolve()
            if key in runs:
                continue
            try:
                res = json.loads(f.read_text(encoding="utf-8"))
                if not isinstance(res, dict):
                    raise ValueError("not a JSON object")
                runs[key] = _run_from_results(f, res)
            except (OSError, ValueError) as exc:
                runs[key] = Run(run_dir=f.parent, status="unreadable", error=f"{f.name}: {exc}",
                                overrides=_overrides(f.parent))
        for h in hydra_dirs:
            run_dir = h.parent
            if (h / "overrides.yaml").exists() and run_dir.resolve() not in runs \
                    and not (run_dir / "results.json").exists():
                runs[run_dir.resolve()] = _incomplete_run(run_dir)
    out = list(runs.values())
    _assign_variants(out)
    return sorted(out, key=lambda r: (r.task, r.data, r.variant, _up_key(r.upsampler),
                                      r.seed if r.seed is not None else -1, str(r.run_dir)))


def _override_items(overrides: Sequence[str]) -> list[tuple[str, str]]:
    items = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if not sep:
            continue
        key = key.lstrip("+~")
        if key in IGNORED_OVERRIDE_KEYS or key.startswith(IGNORED_OVERRIDE_PREFIXES) or key == "hydra":
            continue
        items.append((key, value))
    return items


def _assign_variants(runs: list[Run]) -> None:
    """variant = the overrides that not every run of the same (task, data) shares."""
    by_td: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by_td.setdefault((r.task, r.data), []).append(r)
    for group in by_td.values():
        sets = [set(_override_items(r.overrides)) for r in group]
        common = set.intersection(*sets) if sets else set()
        for r, s in zip(group, sets):
            r.variant = " ".join(f"{k}={v}" for k, v in sorted(s - common))


@functools.lru_cache(maxsize=1)
def _zoo_names() -> list[str]:
    """Table order: the zoo's names (configs/upsampler, sorted), then any other operator, sorted."""
    from upsample_zoo.zoo import list_upsamplers

    return list_upsamplers()


def _up_key(name: str) -> tuple[int, str]:
    zoo = _zoo_names()
    return (zoo.index(name), name) if name in zoo else (len(zoo), name)


# ---- the comparison ------------------------------------------------------------------------------------

@dataclass
class Group:
    task: str
    data: str
    variant: str
    upsampler: str
    runs: list[Run]

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    @property
    def n_ok(self) -> int:
        return len(self.ok_runs)

    @property
    def n_failed(self) -> int:
        return len(self.runs) - self.n_ok

    def values(self, metric: str) -> list[float]:
        return _finite(r.metrics.get(metric) for r in self.ok_runs)

    def by_seed(self, metric: str) -> dict[int, float]:
        """Mean value per seed (seeds repeated across sweeps are averaged before pairing)."""
        acc: dict[int, list[float]] = {}
        for r in self.ok_runs:
            v = _finite([r.metrics.get(metric)])
            if r.seed is not None and v:
                acc.setdefault(r.seed, []).append(v[0])
        return {s: math.fsum(v) / len(v) for s, v in acc.items()}


@dataclass
class Section:
    """All groups of one (task, data, variant): one table in the report."""

    task: str
    data: str
    variant: str
    groups: list[Group]
    metrics: list[str]
    headline: list[str]

    @property
    def title(self) -> str:
        return " · ".join(x for x in (self.task, self.data, self.variant) if x)

    def group(self, upsampler: str) -> Group | None:
        return next((g for g in self.groups if g.upsampler == upsampler), None)

    def reference(self) -> dict[str, dict[str, float]]:
        """The reference row: headline metric -> describe() of its real-image counterpart over the ok runs
        (``REFERENCE``; a difference to real reads 0 on real); {} when no run has one."""
        ok = [r for g in self.groups for r in g.ok_runs]
        out = {}
        for m, ref in REFERENCE.get(self.task, {}).items():
            if m in self.headline and ref is not None:
                d = describe(_finite(r.metrics.get(ref) for r in ok))
                if d["n"]:
                    out[m] = d
        if out and "test/checkerboard_db_vs_ref" in self.headline and "test/checkerboard_db" in out:
            out["test/checkerboard_db_vs_ref"] = {**out["test/checkerboard_db"], "mean": 0.0, "std": 0.0}
        return out

    def reference_cells(self, decimals: dict[str, int]) -> list[tuple[str, float | None]]:
        """(text, value) per summary column after the upsampler name: the mean (± std when the runs disagree)."""
        ref = self.reference()
        cells: list[tuple[str, float | None]] = [("–", None), ("–", None)]
        for m in self.headline:
            d = ref.get(m)
            if d is None:
                cells.append(("–", None))
                continue
            text = fmt(d["mean"], decimals.get(m))
            if math.isfinite(d["std"]) and d["std"] > 0:
                text += f" ± {fmt(d['std'], decimals.get(m))}"
            cells.append((text, d["mean"]))
        cells += [("–", None) for key, _ in COST_COLUMNS if key in self.metrics]
        return cells


@dataclass
class Comparison:
    runs: list[Run]
    sections: list[Section]
    rows: list[dict[str, Any]]  # one per group x metric (the CSV)
    baseline: str | None
    alpha: float
    paths: list[str]

    def row(self, section: Section, upsampler: str, metric: str) -> dict[str, Any] | None:
        for r in self.rows:
            if (r["task"], r["data"], r["variant"], r["upsampler"], r["metric"]) == \
                    (section.task, section.data, section.variant, upsampler, metric):
                return r
        return None


def _metric_order(metrics: Iterable[str], task: str) -> list[str]:
    head = HEADLINE.get(task, [])

    def key(m: str) -> tuple:
        cost = m.startswith("cost/")
        return (m not in head, cost, head.index(m) if m in head else 0, not m.startswith("test/"), m)

    return sorted(set(metrics), key=key)


def summarize(runs: list[Run], baseline: str | None = "bilinear", alpha: float = ALPHA,
              paths: Sequence[str] = ()) -> Comparison:
    by_key: dict[tuple[str, str, str], dict[str, list[Run]]] = {}
    for r in runs:
        by_key.setdefault((r.task, r.data, r.variant), {}).setdefault(r.upsampler, []).append(r)
    sections: list[Section] = []
    rows: list[dict[str, Any]] = []
    for (task, data, variant), ups in sorted(by_key.items()):
        groups = [Group(task, data, variant, u, ups[u]) for u in sorted(ups, key=_up_key)]
        metrics = _metric_order({m for g in groups for r in g.ok_runs for m in r.metrics}, task)
        headline = [m for m in HEADLINE.get(task, []) if m in metrics]
        if not headline:  # an unknown task: its test metrics (at most 4)
            headline = [m for m in metrics if m.startswith("test/") and m.count("/") == 1][:4]
        section = Section(task, data, variant, groups, metrics, headline)
        sections.append(section)
        base = section.group(baseline) if baseline else None
        for g in groups:
            for m in metrics or [""]:
                d = describe(g.values(m)) if m else describe([])
                row: dict[str, Any] = {
                    "task": task, "data": data, "variant": variant, "upsampler": g.upsampler, "metric": m,
                    "direction": direction(m) or "", "n_ok": d["n"], "n_failed": g.n_failed,
                    "n_runs": len(g.runs), "mean": d["mean"], "std": d["std"],
                    "ci95_low": d["ci_low"], "ci95_high": d["ci_high"],
                    "seeds": " ".join(str(s) for s in sorted({r.seed for r in g.ok_runs if r.seed is not None})),
                    "baseline": baseline if base is not None else "", "n_pairs": None, "diff_mean": float("nan"),
                    "diff_ci95_low": float("nan"), "diff_ci95_high": float("nan"), "d_z": float("nan"),
                    "p_value": float("nan"), "p_holm": float("nan"), "p_min": float("nan"), "test": "",
                    "significant": "",
                }
                if base is not None and g is not base and m and not m.startswith("cost/params"):
                    xs, bs = g.by_seed(m), base.by_seed(m)
                    seeds = sorted(set(xs) & set(bs))
                    t = paired_test([xs[s] for s in seeds], [bs[s] for s in seeds])
                    row.update(n_pairs=t["n_pairs"], diff_mean=t["diff"], diff_ci95_low=t["ci_low"],
                               diff_ci95_high=t["ci_high"], d_z=t["d_z"], p_value=t["p"], p_min=t["p_min"],
                               test=t["test"])
                rows.append(row)
        mine = [r for r in rows if (r["task"], r["data"], r["variant"]) == (task, data, variant)]
        # Holm-Bonferroni over the upsamplers of this table, per metric; "significant" is on the adjusted p
        for m in metrics:
            family = [r for r in mine if r["metric"] == m and math.isfinite(r["p_value"])]
            for r, q in zip(family, holm([r["p_value"] for r in family])):
                r.update(p_holm=q, holm_k=len(family), significant="yes" if q < alpha else "no")
        # one number format per column: decimals from the largest |mean| of that metric in this section
        for m in metrics:
            means = [abs(r["mean"]) for r in mine if r["metric"] == m and math.isfinite(r["mean"]) and r["mean"]]
            d = _decimals(max(means)) if means else 3
            for r in mine:
                if r["metric"] == m:
                    r["decimals"] = d
    return Comparison(runs, sections, rows, baseline, alpha, [str(p) for p in paths])


# ---- formatting -------------------------------------------------------------------------------------------

def _decimals(x: float) -> int:
    if not math.isfinite(x) or x == 0:
        return 3
    return int(min(4, max(0, 3 - math.floor(math.log10(abs(x))))))


def fmt(x: Any, decimals: int | None = None) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "" if x is None else str(x)
    if not math.isfinite(x):
        return "–"
    if decimals is None:
        if float(x).is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        decimals = _decimals(x)
    return f"{x:,.{decimals}f}"


def fmt_mean_std(row: dict[str, Any] | None) -> str:
    if row is None or not row["n_ok"]:
        return "–"
    mean, std = row["mean"], row["std"]
    if float(mean).is_integer() and (not math.isfinite(std) or std == 0):
        return f"{int(mean):,}"  # counts (params) and other constants
    d = row.get("decimals", _decimals(mean))
    return fmt(mean, d) if not math.isfinite(std) else f"{fmt(mean, d)} ± {fmt(std, d)}"


def fmt_ci(row: dict[str, Any] | None) -> str:
    if row is None or not math.isfinite(row["ci95_low"]):
        return "–"
    d = row.get("decimals", _decimals(row["mean"]))
    return f"[{fmt(row['ci95_low'], d)}, {fmt(row['ci95_high'], d)}]"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def untestable(row: dict[str, Any] | None, alpha: float) -> bool:
    """No p at or below alpha was possible with this row's pairs and test (``p_floor``)."""
    return row is not None and math.isfinite(row.get("p_min", float("nan"))) and row["p_min"] > alpha


def fmt_diff(row: dict[str, Any] | None, alpha: float = ALPHA) -> str:
    """'+0.0214 [-0.0712, +0.1140] d=0.45 (p=0.572, Holm 1.000)': the mean paired difference, its 95% CI (paired
    t), Cohen's d_z, the raw and Holm-adjusted p, and a trailing * when the adjusted p < alpha; '(p=0.500,
    untestable)' when no p could reach alpha with these pairs; CI and d are left out when undefined; '–' when
    there is nothing to test."""
    if row is None or not row["n_pairs"] or not math.isfinite(row["diff_mean"]):
        return "–"
    d = row.get("decimals", _decimals(row["mean"]))
    s = f"{row['diff_mean']:+,.{d}f}"
    if math.isfinite(row["diff_ci95_low"]):
        s += f" [{row['diff_ci95_low']:+,.{d}f}, {row['diff_ci95_high']:+,.{d}f}]"
    if math.isfinite(row["d_z"]):
        s += f" d={row['d_z']:.2f}"
    if untestable(row, alpha):
        return s + f" (p={fmt_p(row['p_value'])}, untestable)"
    s += f" (p={fmt_p(row['p_value'])}, Holm {fmt_p(row['p_holm'])})"
    return s + " *" if row["significant"] == "yes" else s


def _paired_note(cmp: Comparison, section: Section) -> tuple[str, str]:
    """The sentence above the paired table (its statistics), and the power note ('' when every test could reach
    alpha): plain text, for markdown and HTML alike."""
    others = [g for g in section.groups if g.upsampler != cmp.baseline]
    rows = [(g, cmp.row(section, g.upsampler, m)) for g in others for m in section.headline]
    ks = sorted({r["holm_k"] for _, r in rows if r is not None and r.get("holm_k")}) or [0]
    k = str(ks[0]) if len(ks) == 1 else f"{ks[0]}–{ks[-1]}"
    head = (f"mean paired difference (upsampler − {cmp.baseline}) over matching seeds, its 95% CI (paired t), "
            f"Cohen’s d_z = mean / sd of the differences, and the two-sided p, raw and Holm-adjusted; "
            f"* = significant at α = {cmp.alpha}, two-sided, Holm–Bonferroni over the k = {k} operators of this "
            f"table, per metric. Not significant means we cannot tell, not that they are equal.")
    weak: dict[int, list[str]] = {}
    for g, r in rows:
        if untestable(r, cmp.alpha) and g.upsampler not in weak.setdefault(r["n_pairs"], []):
            weak[r["n_pairs"]].append(g.upsampler)
    if not weak:
        return head, ""
    parts = [f"No test can reach α = {cmp.alpha} with {n} pair{'s' if n != 1 else ''} "
             f"({', '.join(ups)}): below 3 pairs this report uses the exact sign-flip test, whose p cannot go "
             f"below 2/2^{n} = {p_floor(n):.3f}." for n, ups in sorted(weak.items())]
    need, need_sf = pairs_needed(cmp.alpha), pairs_needed(cmp.alpha, sign_flip_only=True)
    parts.append(f"Those cells read untestable: run at least {need} matching seeds per operator (from 3 pairs "
                 f"the paired t-test is used, which can reach any p; the exact sign-flip test alone would need "
                 f"{need_sf}).")
    return head, " ".join(parts)


def _md(text: Any) -> str:
    """A table cell for GitHub markdown: HTML-escaped, pipes and newlines neutralised."""
    return html.escape(" ".join(str(text).split())).replace("|", "\\|")


def _tests_used(cmp: Comparison, section: Section) -> list[str]:
    return sorted({r["test"] for r in cmp.rows if (r["task"], r["data"], r["variant"]) ==
                   (section.task, section.data, section.variant) and r["test"]})


# ---- comparison.md ----------------------------------------------------------------------------------------

def summary_header(section: Section) -> list[str]:
    return ["upsampler", "n ok", "n failed", *[label_dir(m) for m in section.headline],
            *[name for key, name in COST_COLUMNS if key in section.metrics]]


REFERENCE_NOTE = ("the same metrics on real images, by the same code: FID and spectral FD of as many real images "
                  "as generated ones, from outside the reference set (the real-vs-real floor no generator can beat "
                  "at this n), and the checkerboard score of the real reference images (results.json "
                  "protocol.real_floor).")


def _section_decimals(cmp: Comparison, section: Section) -> dict[str, int]:
    return {r["metric"]: r["decimals"] for r in cmp.rows if (r["task"], r["data"], r["variant"]) ==
            (section.task, section.data, section.variant) and "decimals" in r}


def summary_cells(cmp: Comparison, section: Section, g: Group) -> list[str]:
    cells = [g.upsampler, str(g.n_ok), str(g.n_failed)]
    cells += [fmt_mean_std(cmp.row(section, g.upsampler, m)) for m in section.headline]
    cells += [fmt_mean_std(cmp.row(section, g.upsampler, key)) for key, _ in COST_COLUMNS if key in section.metrics]
    return cells


def _md_table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> list[str]:
    out = ["| " + " | ".join(_md(h) for h in header) + " |",
           "|" + "|".join("---" if i < numeric_from else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(cmp: Comparison) -> str:
    n_ok = sum(r.ok for r in cmp.runs)
    lines = ["# Upsampler comparison", "",
             f"{len(cmp.runs)} runs ({n_ok} ok, {len(cmp.runs) - n_ok} failed or incomplete). "
             "Cells are mean ± sample std over seeds; 95% CIs use Student's t.", ""]
    for s in cmp.sections:
        lines += [f"## {_md(s.title)}", ""]
        body = [summary_cells(cmp, s, g) for g in s.groups]
        if s.reference():
            body.append([REFERENCE_NAME, *[t for t, _ in s.reference_cells(_section_decimals(cmp, s))]])
        lines += _md_table(summary_header(s), body)
        lines.append("")
        if s.reference():
            lines += [f"{REFERENCE_NAME}: {_md(REFERENCE_NOTE)}", ""]
        if s.headline and any(g.n_ok >= 2 for g in s.groups):
            lines += ["95% confidence interval of the mean over seeds:", ""]
            lines += _md_table(["upsampler", *[label(m) for m in s.headline]],
                               [[g.upsampler, *[fmt_ci(cmp.row(s, g.upsampler, m)) for m in s.headline]]
                                for g in s.groups])
            lines.append("")
        base = s.group(cmp.baseline) if cmp.baseline else None
        if base is not None and s.headline:
            tests = _tests_used(cmp, s)
            head, power = _paired_note(cmp, s)
            lines += [f"Against the baseline `{_md(cmp.baseline)}`: {_md(head)} "
                      f"Test: {_md('; '.join(tests) or 'none')}.", ""]
            if power:
                lines += [f"**{_md(power)}**", ""]
            lines += _md_table(["upsampler", "pairs", *[f"Δ {label_dir(m)}" for m in s.headline]],
                               [[g.upsampler, str(cmp.row(s, g.upsampler, s.headline[0])["n_pairs"] or 0),
                                 *[fmt_diff(cmp.row(s, g.upsampler, m), cmp.alpha) for m in s.headline]]
                                for g in s.groups if g is not base])
            lines.append("")
        elif cmp.baseline:
            lines += [f"No `{_md(cmp.baseline)}` runs here: no paired tests.", ""]
        bad = [r for g in s.groups for r in g.runs if not r.ok]
        if bad:
            lines += ["Failed or incomplete runs:", ""]
            lines += _md_table(["upsampler", "seed", "status", "error", "run dir"],
                               [[r.upsampler, str(r.seed), r.status, r.error or "", str(r.run_dir)] for r in bad],
                               numeric_from=99)
            lines.append("")
    orphan = [r for r in cmp.runs if r.status == "unreadable"]
    if orphan and not cmp.sections:
        lines += ["No readable runs."]
    return "\n".join(lines).rstrip() + "\n"


# ---- comparison.csv ----------------------------------------------------------------------------------------

CSV_FIELDS = ["task", "data", "variant", "upsampler", "metric", "direction", "n_ok", "n_failed", "n_runs", "mean",
              "std", "ci95_low", "ci95_high", "seeds", "baseline", "n_pairs", "diff_mean", "diff_ci95_low",
              "diff_ci95_high", "d_z", "p_value", "p_holm", "p_min", "test", "significant"]


def render_csv(cmp: Comparison) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in cmp.rows:
        w.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()})
    return buf.getvalue()


# ---- figures -----------------------------------------------------------------------------------------------

def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fig_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return _png_data_uri(buf.getvalue())


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(names: Sequence[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    zoo = _zoo_names()
    return {n: cmap(_up_key(n)[0] % 10 if n in zoo else (len(zoo) + i) % 10) for i, n in enumerate(names)}


BOUNDS = {"test/miou": (0.0, 1.0), "test/pixel_acc": (0.0, 1.0), "val/miou": (0.0, 1.0), "test/fid": (0.0, None)}


def _clip_axis(ax, metric: str, values: Sequence[float]) -> None:
    """Keep the y axis inside a metric's possible range (CIs of 2 seeds reach far beyond it), with the
    seeds' own values always visible."""
    lo, hi = BOUNDS.get(metric, (None, None))
    if lo is None and hi is None:
        return
    new_lo, new_hi = ax.get_ylim()
    vals = _finite(values)
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
        arrow = {"max": " (↑ better)", "min": " (↓ better)"}.get(direction(m) or "", "")
        ax.set_title(label(m) + arrow, fontsize=9)
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
        arrow = {"max": " (↑ better)", "min": " (↓ better)"}.get(direction(quality) or "", "")
        ax.set_ylabel(label(quality) + arrow)
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
            freqs[g.upsampler] = _finite_or_nan(f)
            curves.setdefault(g.upsampler, []).append(_finite_or_nan(p))
            if real is None and isinstance(sp.get("real"), list) and len(sp["real"]) == len(f):
                real = (_finite_or_nan(f), _finite_or_nan(sp["real"]))
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


def _embed_file(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_EMBED_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return _png_data_uri(data) if data.startswith(b"\x89PNG") else None


# ---- comparison.html ---------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1280px;
padding:0 16px;color:#1b1f24;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;padding-top:10px;border-top:2px solid #d0d7de}
h3{font-size:15px;margin:20px 0 6px}.meta{color:#57606a}
table{border-collapse:collapse;margin:6px 0 14px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:right;vertical-align:top;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
th{background:#f0f3f6;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}
th.sorted-desc::after{content:" ▼"}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#f8fafc}tr.baseline td{background:#fff8c5}
tr.reference td{font-style:italic;background:#eef6ee}
td.sig{font-weight:600}td.better{color:#0a6e2a}td.worse{color:#a40e26}td.bad,tr.failed td{color:#a40e26}
td.text{text-align:left;max-width:560px;overflow-wrap:anywhere;white-space:normal}
img{max-width:100%;border:1px solid #e4e8ec;background:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}
figure{margin:0}figcaption{font-size:12px;color:#57606a;overflow-wrap:anywhere}
pre{background:#f6f8fa;padding:8px 10px;overflow-x:auto;font-size:12px;border-radius:4px;white-space:pre-wrap;
overflow-wrap:anywhere}
.tag{display:inline-block;background:#ddf4ff;color:#0550ae;border-radius:10px;padding:0 8px;margin:0 3px 0 0;
font-size:12px}
.note{color:#57606a;font-size:13px}details{margin:8px 0}
"""

# Sorts tables of class "sortable" by clicking a header (numbers by their data-v attribute).
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains("sorted-asc");
      t.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      function key(r) { var c = r.cells[i]; var v = c.getAttribute("data-v");
        return v !== null && v !== "" ? parseFloat(v) : c.textContent; }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") {
          if (isNaN(x)) return 1; if (isNaN(y)) return -1; return asc ? x - y : y - x; }
        return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x)); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _td(text: Any, value: float | None = None, cls: str = "") -> str:
    v = "" if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) else repr(float(value))
    c = f' class="{cls}"' if cls else ""
    return f'<td{c} data-v="{v}">{_e(text)}</td>'


def _html_table(header: Sequence[str], rows: Sequence[str], cls: str = "sortable") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></div>")


def _sweep_commands(runs: Sequence[Run]) -> list[str]:
    """`python train.py -m ...` for every sweep dir (multirun.yaml) the runs came from."""
    out: list[str] = []
    seen: set[Path] = set()
    for r in runs:
        for d in (r.run_dir.parent, r.run_dir.parent.parent):
            f = d / "multirun.yaml"
            if d in seen or not f.is_file():
                continue
            seen.add(d)
            cfg = _read_yaml(f)
            task = (((cfg or {}).get("hydra") or {}).get("overrides") or {}).get("task") if isinstance(cfg, dict) \
                else None
            if isinstance(task, list):
                out.append("python train.py -m " + " ".join(shlex.quote(str(o)) for o in task))
            break
    return out


def _protocols(section: Section) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for g in section.groups:
        for r in g.ok_runs:
            for k, v in (r.protocol or {}).items():
                s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                if s not in out.setdefault(str(k), []):
                    out[str(k)].append(s)
    return out


def _datasets(section: Section) -> list[str]:
    out: list[str] = []
    for g in section.groups:
        for r in g.ok_runs:
            if r.dataset:
                s = json.dumps(r.dataset, sort_keys=True)
                if s not in out:
                    out.append(s)
    return out


def _section_html(cmp: Comparison, s: Section) -> str:
    parts = [f"<h2>{_e(s.title)}</h2>"]
    base = s.group(cmp.baseline) if cmp.baseline else None
    # summary
    rows = []
    cost_keys = [k for k, _ in COST_COLUMNS if k in s.metrics]
    for g in s.groups:
        cells = [_td(g.upsampler), _td(g.n_ok, g.n_ok), _td(g.n_failed, g.n_failed, "bad" if g.n_failed else "")]
        for m in [*s.headline, *cost_keys]:
            row = cmp.row(s, g.upsampler, m)
            cells.append(_td(fmt_mean_std(row), row["mean"] if row else None))
        cls = "baseline" if g is base else ("failed" if not g.n_ok else "")
        rows.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    if s.reference():
        cells = [_td(REFERENCE_NAME)] + [_td(t, v) for t, v in s.reference_cells(_section_decimals(cmp, s))]
        rows.append('<tr class="reference">' + "".join(cells) + "</tr>")
    parts.append("<h3>Summary</h3>")
    parts.append('<p class="note">mean ± sample std over seeds (n ok). Click a column header to sort.</p>')
    parts.append(_html_table(summary_header(s), rows))
    if s.reference():
        parts.append(f'<p class="note">{_e(REFERENCE_NAME)}: {_e(REFERENCE_NOTE)}</p>')
    if s.headline and any(g.n_ok >= 2 for g in s.groups):
        rows = []
        for g in s.groups:
            cells = [_td(g.upsampler)]
            for m in s.headline:
                row = cmp.row(s, g.upsampler, m)
                cells.append(_td(fmt_ci(row), row["ci95_low"] if row else None))
            rows.append(f'<tr class="{"baseline" if g is base else ""}">' + "".join(cells) + "</tr>")
        parts.append("<h3>95% confidence intervals</h3>")
        parts.append('<p class="note">of the mean over seeds, Student t with n − 1 degrees of freedom.</p>')
        parts.append(_html_table(["upsampler", *[label(m) for m in s.headline]], rows))
    # baseline
    if base is not None and s.headline:
        tests = _tests_used(cmp, s)
        rows = []
        for g in s.groups:
            if g is base:
                continue
            first = cmp.row(s, g.upsampler, s.headline[0])
            n_pairs = (first["n_pairs"] or 0) if first else 0
            cells = [_td(g.upsampler), _td(n_pairs, n_pairs)]
            for m in s.headline:
                row = cmp.row(s, g.upsampler, m)
                cls = ""
                if row is not None and row["significant"] == "yes":
                    better = {"max": row["diff_mean"] > 0, "min": row["diff_mean"] < 0}.get(direction(m))
                    cls = "sig" if better is None else ("sig better" if better else "sig worse")
                cells.append(_td(fmt_diff(row, cmp.alpha), row["diff_mean"] if row else None, cls))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"<h3>Against the baseline {_e(cmp.baseline)}</h3>")
        head, power = _paired_note(cmp, s)
        parts.append(f'<p class="note">{_e(head[0].upper() + head[1:])} Significant cells are green when better, '
                     f"red when worse. Test: {_e('; '.join(tests) or 'none')}.</p>")
        if power:
            parts.append(f'<p class="note"><strong>{_e(power)}</strong></p>')
        parts.append(_html_table(["upsampler", "pairs", *[f"Δ {label_dir(m)}" for m in s.headline]], rows))
    elif cmp.baseline:
        parts.append(f'<p class="note">No {_e(cmp.baseline)} runs in this group: no paired tests '
                     "(<code>--baseline NAME</code> picks another).</p>")
    # charts
    charts = [(bar_chart(cmp, s), "bar chart"), (cost_scatter(cmp, s), "quality vs cost"),
              (spectrum_plot(s), "azimuthal spectra")]
    charts = [(u, alt) for u, alt in charts if u]
    if charts:
        parts.append("<h3>Charts</h3>")
        parts += [f'<p><img alt="{_e(alt)}" src="{u}"></p>' for u, alt in charts]
    if not any(alt == "azimuthal spectra" for _, alt in charts) and s.task == "gan":
        parts.append('<p class="note">No overlaid spectra: the runs carry no <code>spectrum</code> entry; each '
                     'run\'s own spectrum figure is in the gallery below.</p>')
    # gallery
    figs = []
    for g in s.groups:
        run = next((r for r in sorted(g.ok_runs, key=lambda r: (r.seed is None, r.seed or 0))), None)
        if run is None:
            continue
        for name in [*FIGURES, SPECTRUM_FIGURE]:
            uri = _embed_file(run.run_dir / name)
            if uri:
                figs.append(f'<figure><img alt="{_e(g.upsampler)} {_e(name)}" src="{uri}"><figcaption>'
                            f'<b>{_e(g.upsampler)}</b> · seed {_e(run.seed)} · {_e(name)}<br>{_e(run.run_dir)}'
                            "</figcaption></figure>")
    if figs:
        parts.append("<h3>Samples and predictions (first seed of each upsampler)</h3>")
        parts.append('<div class="grid">' + "".join(figs) + "</div>")
    # failures
    bad = [r for g in s.groups for r in g.runs if not r.ok]
    if bad:
        parts.append("<h3>Failed and incomplete runs</h3>")
        rows = ['<tr class="failed">' + _td(r.upsampler) + _td(r.seed, r.seed) + _td(r.status)
                + _td(r.error or "", cls="text") + _td(r.run_dir, cls="text") + "</tr>" for r in bad]
        parts.append(_html_table(["upsampler", "seed", "status", "error", "run dir"], rows))
    # protocol, data, tags, commands
    protocols = _protocols(s)
    if protocols:
        parts.append("<h3>Protocol</h3><table><tbody>" + "".join(
            f'<tr><th>{_e(k)}</th><td class="text">{"<br>".join(_e(v) for v in vs)}</td></tr>'
            for k, vs in protocols.items()) + "</tbody></table>")
    datasets = _datasets(s)
    if datasets:
        parts.append("<h3>Data</h3>" + "".join(f"<pre>{_e(d)}</pre>" for d in datasets))
    tags = sorted({t for g in s.groups for r in g.runs for t in r.tags})
    if tags:
        parts.append("<p>Tags: " + "".join(f'<span class="tag">{_e(t)}</span>' for t in tags) + "</p>")
    runs = [r for g in s.groups for r in g.runs]
    sweeps = _sweep_commands(runs)
    parts.append("<h3>Commands</h3>")
    if sweeps:
        parts.append("<p>Sweeps:</p>" + "".join(f"<pre>{_e(c)}</pre>" for c in sweeps))
    per_run = "\n".join(f"{r.command}    # {r.status}, {r.run_dir}" for r in runs if r.overrides)
    if per_run:
        parts.append(f"<details><summary>Each run ({len(runs)})</summary><pre>{_e(per_run)}</pre></details>")
    return "<section>" + "".join(parts) + "</section>"


def _all_metrics_html(cmp: Comparison) -> str:
    rows = []
    for r in cmp.rows:
        if not r["metric"]:
            continue
        sig = r["significant"] == "yes"
        rows.append("<tr>" + _td(r["upsampler"]) + _td(" · ".join(x for x in (r["task"], r["data"], r["variant"]) if x),
                                                        cls="text")
                    + _td(r["metric"], cls="text") + _td(r["n_ok"], r["n_ok"]) + _td(r["n_failed"], r["n_failed"])
                    + _td(fmt(r["mean"]), r["mean"]) + _td(fmt(r["std"]), r["std"])
                    + _td(fmt_ci(r), r["ci95_low"]) + _td(fmt(r["diff_mean"]), r["diff_mean"])
                    + _td(fmt_ci({**r, "ci95_low": r["diff_ci95_low"], "ci95_high": r["diff_ci95_high"]}),
                          r["diff_ci95_low"])
                    + _td(fmt(r["d_z"], 2), r["d_z"]) + _td(fmt_p(r["p_value"]), r["p_value"])
                    + _td(fmt_p(r["p_holm"]), r["p_holm"], "sig" if sig else "")
                    + _td(fmt_p(r["p_min"]), r["p_min"]) + _td(r["test"], cls="text") + "</tr>")
    table = _html_table(["upsampler", "group", "metric", "n ok", "n failed", "mean", "std", "95% CI",
                         f"Δ vs {cmp.baseline}", "Δ 95% CI", "d_z", "p", "p Holm", "smallest possible p", "test"],
                        rows)
    return f"<details><summary>All metrics ({len(rows)} rows, as in comparison.csv)</summary>{table}</details>"


def render_html(cmp: Comparison) -> str:
    script_hash = base64.b64encode(hashlib.sha256(SORT_JS.encode("utf-8")).digest()).decode("ascii")
    # Defence in depth: everything is escaped, and the policy lets only our own sorting script run.
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; "
           "base-uri 'none'; form-action 'none'")
    n_ok = sum(r.ok for r in cmp.runs)
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [
        "<h1>upsample-zoo: upsampler comparison</h1>",
        f'<p class="meta">{len(cmp.runs)} runs ({n_ok} ok, {len(cmp.runs) - n_ok} failed or incomplete) · '
        f"baseline {_e(cmp.baseline or 'none')} · generated {_e(now)}<br>from "
        + ", ".join(f"<code>{_e(p)}</code>" for p in cmp.paths) + "</p>",
    ]
    if not cmp.sections:
        body.append("<p>No runs found.</p>")
    body += [_section_html(cmp, s) for s in cmp.sections]
    unreadable = [r for r in cmp.runs if r.status == "unreadable" and not any(r in g.runs for s in cmp.sections
                                                                                for g in s.groups)]
    if unreadable:
        body.append("<h2>Unreadable results</h2>" + _html_table(
            ["run dir", "error"], ["<tr>" + _td(r.run_dir, cls="text") + _td(r.error, cls="text") + "</tr>"
                                   for r in unreadable]))
    if cmp.rows:
        body.append("<h2>All metrics</h2>" + _all_metrics_html(cmp))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>upsample-zoo comparison</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body)
            + f"\n<script>{SORT_JS}</script>\n</body></html>\n")


# ---- wandb --------------------------------------------------------------------------------------------------

def log_wandb(cmp: Comparison, out_dir: Path, project: str = "upsample-zoo") -> Path:
    """Log the comparison (the CSV rows) as a wandb.Table; offline unless WANDB_API_KEY is set."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"
    import wandb

    columns = [c for c in CSV_FIELDS]
    data = [[(None if isinstance(r[c], float) and not math.isfinite(r[c]) else r[c]) for c in columns]
            for r in cmp.rows]
    run = wandb.init(project=project, dir=str(out_dir), job_type="compare", name=f"compare_{out_dir.name}",
                     config={"paths": cmp.paths, "baseline": cmp.baseline, "alpha": cmp.alpha}, reinit=True)
    try:
        run.log({"comparison": wandb.Table(columns=columns, data=data)})
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir


# ---- headless browser (the browser test and scripts/screenshot_report.py) ------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def chromium(html_path: str | os.PathLike, *args: str, chromium_bin: str = CHROMIUM, timeout: float = 120,
             user_data_dir: str | os.PathLike | None = None) -> subprocess.CompletedProcess[str]:
    """Open a local HTML file in headless Chromium with the extra ``args`` (no network is used)."""
    if not Path(html_path).is_file():
        raise FileNotFoundError(f"no such file: {html_path}")
    if not Path(chromium_bin).is_file():
        raise FileNotFoundError(f"{chromium_bin} not found: apt-get install chromium chromium-driver")

    with tempfile.TemporaryDirectory(prefix="uz-chromium-") as tmp:
        cmd = [chromium_bin, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir or tmp}", *args,
               Path(html_path).resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1200, height: int = 2000,
               **kwargs: Any) -> Path:
    """Render the page and save a PNG of its first ``width`` x ``height`` pixels."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    proc = chromium(html_path, f"--screenshot={png_path}", f"--window-size={width},{height}", **kwargs)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return png_path


def dump_dom(html_path: str | os.PathLike, **kwargs: Any) -> str:
    """The DOM after the page loaded and its scripts ran, serialised."""
    proc = chromium(html_path, "--dump-dom", **kwargs)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return proc.stdout


# ---- entry points --------------------------------------------------------------------------------------------

def compare(paths: Sequence[str | os.PathLike], baseline: str | None = "bilinear", out: str | os.PathLike | None = None,
            alpha: float = ALPHA, use_wandb: bool = False) -> dict[str, Path]:
    """Read the runs, write comparison.{md,csv,html} into ``out`` (default: the single folder given, else
    ./comparison) and return their paths."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    if out is None:
        out = paths[0] if len(paths) == 1 and paths[0].is_dir() else Path("comparison")
    out = Path(out)
    runs = load_runs(paths)
    cmp = summarize(runs, baseline=baseline, alpha=alpha, paths=[str(p) for p in paths])
    written = {
        "md": atomic_write_text(out / "comparison.md", render_markdown(cmp)),
        "csv": atomic_write_text(out / "comparison.csv", render_csv(cmp)),
        "html": atomic_write_bytes(out / "comparison.html", render_html(cmp).encode("utf-8")),
    }
    if use_wandb:
        written["wandb"] = log_wandb(cmp, out)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="sweep/run folders (searched recursively for "
                        "results.json) or results.json files")
    parser.add_argument("--baseline", default="bilinear",
                        help="upsampler the others are tested against (default bilinear; 'none' for no tests)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the PATH when it is a single folder, else ./comparison)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level (default 0.05)")
    parser.add_argument("--wandb", action="store_true", help="also log the table as a wandb.Table (offline unless "
                        "WANDB_API_KEY is set)")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    baseline = None if str(args.baseline).lower() in ("none", "") else args.baseline
    try:
        written = compare(args.paths, baseline=baseline, out=args.out, alpha=args.alpha, use_wandb=args.wandb)
    except FileNotFoundError as exc:
        print(f"upsample-zoo: error: {exc}", file=sys.stderr)
        return 2
    md = written["md"].read_text(encoding="utf-8")
    print(md)
    for k in ("md", "csv", "html", "wandb"):
        if k in written:
            print(f"wrote {written[k]}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upsample-zoo compare", description=__doc__.split("\n\n")[0])
    return run_from_args(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
