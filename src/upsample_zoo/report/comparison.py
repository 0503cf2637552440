"""The comparison: runs grouped by (task, data, variant) into sections, and by upsampler into groups, with one
statistics row per group and metric (the CSV rows; every table of the report reads them). A group holds one ok
run per seed (``runs.latest_per_seed``): the summary and the paired tests see the same values, and repeated
runs of a seed are listed as superseded, never counted."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from upsample_zoo.metrics.facts import lookup
from upsample_zoo.report.runs import Run, latest_per_seed, zoo_order
from upsample_zoo.report.stats import ALPHA, describe, detectable_d_z, finite, holm, p_floor, paired_test
from upsample_zoo.results import COST_FACTS
from upsample_zoo.tasks.declarations import TaskDeclaration, declared

# the cost columns of the report's tables, in order (their labels and directions: results.COST_FACTS)
COST_COLUMNS = ["cost/params_upsamplers", "cost/params_total", "cost/train_img_per_s", "cost/wall_s"]
ARROWS = {"max": " ↑", "min": " ↓"}


def label(metric: str) -> str:
    """A cost's label ('train img/s'); any other metric's label is its task's (:meth:`Section.label`)."""
    fact = lookup(COST_FACTS, metric)
    return fact.label if fact else metric


@dataclass
class Group:
    task: str
    data: str
    variant: str
    upsampler: str
    runs: list[Run]  # one ok run per seed, and every failed or incomplete one
    superseded: list[tuple[Run, Run]] = field(default_factory=list)  # (older ok run, the run that replaced it)

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
        return finite(r.metrics.get(metric) for r in self.ok_runs)

    def by_seed(self, metric: str) -> dict[int, float]:
        """The value per seed: that of the seed's one ok run (the same values ``values`` describes)."""
        out: dict[int, float] = {}
        for r in self.ok_runs:
            v = finite([r.metrics.get(metric)])
            if r.seed is not None and v:
                out[r.seed] = v[0]
        return out


@dataclass
class Section:
    """All groups of one (task, data, variant): one table in the report."""

    task: str
    data: str
    variant: str
    groups: list[Group]
    metrics: list[str]
    headline: list[str]
    declaration: TaskDeclaration | None = None  # what the runs (or this package) declare of the task

    def label(self, metric: str) -> str:
        own = self.declaration.label(metric) if self.declaration else metric
        return label(metric) if own == metric else own

    def direction(self, metric: str) -> str | None:
        own = self.declaration.direction(metric) if self.declaration else None
        cost = lookup(COST_FACTS, metric)
        return own or (cost.direction if cost else None)

    def label_dir(self, metric: str) -> str:
        """The label with its better direction: 'mIoU ↑', 'FID ↓'."""
        return self.label(metric) + ARROWS.get(self.direction(metric) or "", "")

    @property
    def title(self) -> str:
        return " · ".join(x for x in (self.task, self.data, self.variant) if x)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.task, self.data, self.variant

    def group(self, upsampler: str | None) -> Group | None:
        return next((g for g in self.groups if g.upsampler == upsampler), None)

    @property
    def cost_keys(self) -> list[str]:
        return [key for key in COST_COLUMNS if key in self.metrics]

    def reference(self) -> dict[str, dict[str, float]]:
        """The reference row: headline metric -> describe() of its real-image counterpart over the ok runs
        (the task's declared references; a difference to real reads 0 on real); {} when no run has one."""
        return self._reference

    @functools.cached_property
    def _reference(self) -> dict[str, dict[str, float]]:
        ok = [r for g in self.groups for r in g.ok_runs]
        out = {}
        for m, ref in (self.declaration or declared(self.task)).references.items():
            if m in self.headline and ref is not None:
                d = describe(finite(r.metrics.get(ref) for r in ok))
                if d["n"]:
                    out[m] = d
        if out and "test/checkerboard_db_vs_ref" in self.headline and "test/checkerboard_db" in out:
            out["test/checkerboard_db_vs_ref"] = {**out["test/checkerboard_db"], "mean": 0.0, "std": 0.0}
        return out


@dataclass
class Comparison:
    runs: list[Run]
    sections: list[Section]
    rows: list[dict[str, Any]]  # one per group x metric (the CSV)
    baseline: str | None
    alpha: float
    paths: list[str]

    @functools.cached_property
    def _by_key(self) -> dict[tuple[str, ...], dict[str, Any]]:
        """The rows by (task, data, variant, upsampler, metric): every table cell looks one up."""
        out: dict[tuple[str, ...], dict[str, Any]] = {}
        for r in self.rows:
            out.setdefault((r["task"], r["data"], r["variant"], r["upsampler"], r["metric"]), r)
        return out

    def row(self, section: Section, upsampler: str, metric: str) -> dict[str, Any] | None:
        return self._by_key.get((*section.key, upsampler, metric))

    def section_rows(self, section: Section) -> list[dict[str, Any]]:
        return [r for r in self.rows if (r["task"], r["data"], r["variant"]) == section.key]

    def decimals(self, section: Section) -> dict[str, int]:
        return {r["metric"]: r["decimals"] for r in self.section_rows(section) if "decimals" in r}

    def tests_used(self, section: Section) -> list[str]:
        return sorted({r["test"] for r in self.section_rows(section) if r["test"]})

    @property
    def superseded(self) -> list[tuple[Run, Run]]:
        return [pair for s in self.sections for g in s.groups for pair in g.superseded]


def decimals_for(x: float) -> int:
    """Decimals that show about 4 significant digits of x (3 for 0 and non-finite, at most 4)."""
    if not math.isfinite(x) or x == 0:
        return 3
    return int(min(4, max(0, 3 - math.floor(math.log10(abs(x))))))


def _metric_order(metrics: Iterable[str], head: Sequence[str]) -> list[str]:

    def key(m: str) -> tuple:
        cost = m.startswith("cost/")
        return (m not in head, cost, head.index(m) if m in head else 0, not m.startswith("test/"), m)

    return sorted(set(metrics), key=key)


def _stats_row(section: Section, g: Group, metric: str, base: Group | None, baseline: str | None) -> dict[str, Any]:
    """One CSV row: the group's description of the metric, and its paired test against the baseline."""
    d = describe(g.values(metric)) if metric else describe([])
    nan = float("nan")
    row: dict[str, Any] = {
        "task": section.task, "data": section.data, "variant": section.variant, "upsampler": g.upsampler,
        "metric": metric, "direction": section.direction(metric) or "", "n_ok": d["n"], "n_failed": g.n_failed,
        "n_runs": len(g.runs) + len(g.superseded), "n_superseded": len(g.superseded), "mean": d["mean"],
        "std": d["std"], "ci95_low": d["ci_low"], "ci95_high": d["ci_high"],
        "seeds": " ".join(str(s) for s in sorted({r.seed for r in g.ok_runs if r.seed is not None})),
        "baseline": baseline if base is not None else "", "n_pairs": None, "diff_mean": nan, "diff_ci95_low": nan,
        "diff_ci95_high": nan, "d_z": nan, "p_value": nan, "p_holm": nan, "p_min": nan, "test": "", "significant": "",
        "d_z_80_holm": nan, "d_z_80_raw": nan,
    }
    if base is not None and g is not base and metric and not metric.startswith("cost/params"):
        xs, bs = g.by_seed(metric), base.by_seed(metric)
        seeds = sorted(set(xs) & set(bs))
        t = paired_test([xs[s] for s in seeds], [bs[s] for s in seeds])
        row.update(n_pairs=t["n_pairs"], diff_mean=t["diff"], diff_ci95_low=t["ci_low"], diff_ci95_high=t["ci_high"],
                   d_z=t["d_z"], p_value=t["p"], p_min=t["p_min"], test=t["test"])
    return row


def _finish_section_rows(mine: list[dict[str, Any]], metrics: list[str], alpha: float) -> None:
    """Holm-Bonferroni over the upsamplers of the table, per metric ("significant" is on the adjusted p); the
    smallest |d_z| the paired t-test detects with 80% power at alpha / k (Holm's first step) and at alpha, where
    the t-test is used (>= 3 pairs); and one number format per column: decimals from the largest |mean| of that
    metric in this section."""
    for m in metrics:
        family = [r for r in mine if r["metric"] == m and math.isfinite(r["p_value"])]
        for r, q in zip(family, holm([r["p_value"] for r in family])):
            r.update(p_holm=q, holm_k=len(family), significant="yes" if q < alpha else "no")
            if p_floor(r["n_pairs"]) == 0.0:
                r.update(d_z_80_holm=detectable_d_z(r["n_pairs"], alpha / len(family)),
                         d_z_80_raw=detectable_d_z(r["n_pairs"], alpha))
    for m in metrics:
        means = [abs(r["mean"]) for r in mine if r["metric"] == m and math.isfinite(r["mean"]) and r["mean"]]
        d = decimals_for(max(means)) if means else 3
        for r in mine:
            if r["metric"] == m:
                r["decimals"] = d


def summarize(runs: list[Run], baseline: str | None = "bilinear", alpha: float = ALPHA,
              paths: Sequence[str] = ()) -> Comparison:
    by_key: dict[tuple[str, str, str], dict[str, list[Run]]] = {}
    for r in runs:
        by_key.setdefault((r.task, r.data, r.variant), {}).setdefault(r.upsampler, []).append(r)
    sections: list[Section] = []
    rows: list[dict[str, Any]] = []
    for (task, data, variant), ups in sorted(by_key.items()):
        groups = [Group(task, data, variant, u, *latest_per_seed(ups[u])) for u in sorted(ups, key=zoo_order)]
        # the newest run's declaration (results.json ``declared``), else this package's for older runs
        newest = max((r for g in groups for r in g.runs), key=lambda r: r.mtime_ns)
        decl = declared(task, newest.declared)
        metrics = _metric_order({m for g in groups for r in g.ok_runs for m in r.metrics}, decl.headline)
        headline = [m for m in decl.headline if m in metrics]
        if not headline:  # a task that declares nothing: its test metrics (at most 4)
            headline = [m for m in metrics if m.startswith("test/") and m.count("/") == 1][:4]
        section = Section(task, data, variant, groups, metrics, headline, decl)
        sections.append(section)
        base = section.group(baseline) if baseline else None
        mine = [_stats_row(section, g, m, base, baseline) for g in groups for m in metrics or [""]]
        _finish_section_rows(mine, metrics, alpha)
        rows += mine
    return Comparison(runs, sections, rows, baseline, alpha, [str(p) for p in paths])
