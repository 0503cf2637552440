"""The report's tables as one model (``Table`` of ``Row``s of ``Cell``s), built once from the comparison and
drawn by both renderers (markdown.py, html.py); and the number formats every cell uses."""

from __future__ import annotations

import math
from typing import Any

from upsample_zoo.report.comparison import Comparison, Group, Section, decimals_for, label
from upsample_zoo.report.stats import ALPHA, POWER, detectable_d_z, p_floor, pairs_needed
from upsample_zoo.report.table_model import Cell, Row, Table

REFERENCE_NAME = "real (reference)"
def reference_note(s: Section) -> str:
    """What the reference row is, with the n its floor was scored at (results.json protocol.real_floor_n; a
    reference split too small for the floor gives fewer real images than generated ones, and says so)."""
    ok = [r for g in s.groups for r in g.ok_runs]
    got = sorted({(r.protocol.get("real_floor_n"), r.protocol.get("real_floor_n_requested")) for r in ok
                  if isinstance(r.protocol.get("real_floor_n"), int)})
    if not got:
        n = "as many real images as generated ones"
    else:
        n = ", ".join(f"n = {have:,} real images" + (f" (FEWER than the {want:,} generated: all the reference split "
                                                     f"has outside the reference set)" if want and have < want else
                                                     " (as many as generated)") for have, want in got)
    scored = "FID and spectral FD"
    if "test/kid" in s.reference():  # the k-NN metrics come with KID (the same features, tasks/gan.py)
        scored = "FID, KID, precision, recall, density, coverage and spectral FD"
    return (f"the same metrics on real images, by the same code: {scored} of {n}, from outside the "
            "reference set (the real-vs-real floor no generator can beat at this n), and the checkerboard score of "
            "the real reference images (results.json protocol.real_floor).")


# ---- number formats

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
        decimals = decimals_for(x)
    return f"{x:,.{decimals}f}"


def fmt_mean_std(row: dict[str, Any] | None) -> str:
    if row is None or not row["n_ok"]:
        return "–"
    mean, std = row["mean"], row["std"]
    if float(mean).is_integer() and (not math.isfinite(std) or std == 0):
        return f"{int(mean):,}"  # counts (params) and other constants
    d = row.get("decimals", decimals_for(mean))
    return fmt(mean, d) if not math.isfinite(std) else f"{fmt(mean, d)} ± {fmt(std, d)}"


def fmt_ci(row: dict[str, Any] | None) -> str:
    if row is None or not math.isfinite(row["ci95_low"]):
        return "–"
    d = row.get("decimals", decimals_for(row["mean"]))
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
    d = row.get("decimals", decimals_for(row["mean"]))
    s = f"{row['diff_mean']:+,.{d}f}"
    if math.isfinite(row["diff_ci95_low"]):
        s += f" [{row['diff_ci95_low']:+,.{d}f}, {row['diff_ci95_high']:+,.{d}f}]"
    if math.isfinite(row["d_z"]):
        s += f" d={row['d_z']:.2f}"
    if untestable(row, alpha):
        return s + f" (p={fmt_p(row['p_value'])}, untestable)"
    s += f" (p={fmt_p(row['p_value'])}, Holm {fmt_p(row['p_holm'])})"
    return s + " *" if row["significant"] == "yes" else s


# ---- the tables

def summary_header(section: Section) -> list[str]:
    return ["upsampler", "n ok", "n failed", *[section.label_dir(m) for m in section.headline],
            *[label(key) for key in section.cost_keys]]


def _mean_cell(cmp: Comparison, section: Section, g: Group, metric: str) -> Cell:
    row = cmp.row(section, g.upsampler, metric)
    text = fmt_mean_std(row)
    if row and 0 < row["n_ok"] < g.n_ok:  # a NaN value of an ok run is left out of this metric only: say so
        text += f" (n={row['n_ok']})"
    return Cell(text, row["mean"] if row else None)


def reference_cells(section: Section, decimals: dict[str, int]) -> list[Cell]:
    """The reference row's cells after the upsampler name: the mean (± std when the runs disagree)."""
    ref = section.reference()
    cells = [Cell("–"), Cell("–")]
    for m in section.headline:
        d = ref.get(m)
        if d is None:
            cells.append(Cell("–"))
            continue
        text = fmt(d["mean"], decimals.get(m))
        if math.isfinite(d["std"]) and d["std"] > 0:
            text += f" ± {fmt(d['std'], decimals.get(m))}"
        cells.append(Cell(text, d["mean"]))
    return cells + [Cell("–") for _ in section.cost_keys]


def summary_table(cmp: Comparison, s: Section) -> Table:
    base = s.group(cmp.baseline) if cmp.baseline else None
    table = Table(summary_header(s))
    for g in s.groups:
        cells = [Cell(g.upsampler), Cell(str(g.n_ok), g.n_ok), Cell(str(g.n_failed), g.n_failed,
                                                                     "bad" if g.n_failed else "")]
        cells += [_mean_cell(cmp, s, g, m) for m in [*s.headline, *s.cost_keys]]
        table.rows.append(Row(cells, "baseline" if g is base else ("failed" if not g.n_ok else "")))
    if s.reference():
        table.rows.append(Row([Cell(REFERENCE_NAME), *reference_cells(s, cmp.decimals(s))], "reference"))
    return table


def ci_table(cmp: Comparison, s: Section) -> Table:
    base = s.group(cmp.baseline) if cmp.baseline else None
    table = Table(["upsampler", *[s.label(m) for m in s.headline]])
    for g in s.groups:
        rows = [cmp.row(s, g.upsampler, m) for m in s.headline]
        table.rows.append(Row([Cell(g.upsampler), *[Cell(fmt_ci(r), r["ci95_low"] if r else None) for r in rows]],
                              "baseline" if g is base else ""))
    return table


def _diff_cell(cmp: Comparison, row: dict[str, Any] | None, direction: str | None) -> Cell:
    """A paired difference; significant cells are "better" or "worse" by the metric's direction."""
    cls = ""
    if row is not None and row["significant"] == "yes":
        better = {"max": row["diff_mean"] > 0, "min": row["diff_mean"] < 0}.get(direction or "")
        cls = "sig" if better is None else ("sig better" if better else "sig worse")
    return Cell(fmt_diff(row, cmp.alpha), row["diff_mean"] if row else None, cls)


def paired_table(cmp: Comparison, s: Section) -> Table:
    base = s.group(cmp.baseline)
    table = Table(["upsampler", "pairs", *[f"Δ {s.label_dir(m)}" for m in s.headline]])
    for g in s.groups:
        if g is base:
            continue
        first = cmp.row(s, g.upsampler, s.headline[0])
        n_pairs = (first["n_pairs"] or 0) if first else 0
        cells = [Cell(g.upsampler), Cell(str(n_pairs), n_pairs)]
        diffs = [_diff_cell(cmp, cmp.row(s, g.upsampler, m), s.direction(m)) for m in s.headline]
        table.rows.append(Row(cells + diffs))
    return table


def failures_table(s: Section) -> Table:
    bad = [r for g in s.groups for r in g.runs if not r.ok]
    return Table(["upsampler", "seed", "status", "error", "run dir"],
                 [Row([Cell(r.upsampler), Cell(str(r.seed), r.seed), Cell(r.status), Cell(r.error or "", cls="text"),
                       Cell(str(r.run_dir), cls="text")], "failed") for r in bad], numeric_from=99)


SE_NOTE = ("each run’s own estimate ± its standard error (a delete-one-block jackknife over the generated and "
           "real features, the metric’s _se in results.json): the uncertainty of one score at this n; the spread "
           "over seeds above adds each generator’s own variation to it.")


def per_run_se_tables(cmp: Comparison, s: Section) -> list[tuple[str, Table]]:
    """For each headline metric whose runs report a standard error (``<metric>_se``, e.g. KID): one row per
    upsampler, one column per seed, 'value ± SE'."""
    out = []
    for m in s.headline:
        runs = [r for g in s.groups for r in g.ok_runs if math.isfinite(r.metrics.get(f"{m}_se", math.nan))]
        if not runs:
            continue
        seeds = sorted({r.seed for r in runs}, key=lambda x: (x is None, x))
        d = cmp.decimals(s).get(m)
        table = Table(["upsampler", *[f"seed {x}" for x in seeds]])
        for g in s.groups:
            by_seed = {r.seed: r for r in g.ok_runs}
            cells = []
            for x in seeds:
                r = by_seed.get(x)
                v, se = (r.metrics.get(m), r.metrics.get(f"{m}_se")) if r else (None, None)
                ok = v is not None and se is not None and math.isfinite(v) and math.isfinite(se)
                cells.append(Cell(f"{fmt(v, d)} ± {fmt(se, d)}" if ok else "–", v if ok else None))
            table.rows.append(Row([Cell(g.upsampler), *cells]))
        out.append((s.label(m), table))
    return out


def superseded_lines(s: Section) -> list[str]:
    """One line per ok run that a later run of the same operator and seed replaced (not counted anywhere)."""
    return [f"superseded: {old.run_dir} ({old.upsampler}, seed {old.seed}), replaced by a later run: {new.run_dir}"
            for g in s.groups for old, new in g.superseded]


def all_metrics_table(cmp: Comparison) -> Table:
    """Every CSV row with a metric: the HTML report's last, folded table."""
    table = Table(["upsampler", "group", "metric", "n ok", "n failed", "mean", "std", "95% CI",
                   f"Δ vs {cmp.baseline}", "Δ 95% CI", "d_z", "p", "p Holm", "smallest possible p", "test"])
    for r in cmp.rows:
        if not r["metric"]:
            continue
        diff_ci = fmt_ci({**r, "ci95_low": r["diff_ci95_low"], "ci95_high": r["diff_ci95_high"]})
        table.rows.append(Row([
            Cell(r["upsampler"]), Cell(" · ".join(x for x in (r["task"], r["data"], r["variant"]) if x), cls="text"),
            Cell(r["metric"], cls="text"), Cell(str(r["n_ok"]), r["n_ok"]), Cell(str(r["n_failed"]), r["n_failed"]),
            Cell(fmt(r["mean"]), r["mean"]), Cell(fmt(r["std"]), r["std"]), Cell(fmt_ci(r), r["ci95_low"]),
            Cell(fmt(r["diff_mean"]), r["diff_mean"]), Cell(diff_ci, r["diff_ci95_low"]),
            Cell(fmt(r["d_z"], 2), r["d_z"]), Cell(fmt_p(r["p_value"]), r["p_value"]),
            Cell(fmt_p(r["p_holm"]), r["p_holm"], "sig" if r["significant"] == "yes" else ""),
            Cell(fmt_p(r["p_min"]), r["p_min"]), Cell(r["test"], cls="text")]))
    return table


def fmt_d(d: float) -> str:
    return f"{d:.1f}" if d >= 1 else f"{d:.2f}"


def power_clause(n: int, k: int, alpha: float) -> str:
    """'with 3 matching seeds and Holm over 6 operators, 80% power needs |d_z| ≥ 8.0 (≥ 3.3 uncorrected)'."""
    seeds = f"{n} matching seed{'s' if n != 1 else ''}"
    if n < 2:
        return f"with {seeds} d_z and the t-test are undefined (they need the spread of 2 or more differences)"
    if p_floor(n) > 0:
        if p_floor(n) > alpha:
            return f"with {seeds} no |d_z|, however large, can reach α (see below)"
        return f"with {seeds} the exact sign-flip test is used, for which no power is computed here"
    need, raw = detectable_d_z(n, alpha / k), detectable_d_z(n, alpha)
    if k == 1:
        return f"with {seeds} and 1 operator tested, {POWER:.0%} power needs |d_z| ≥ {fmt_d(raw)}"
    return (f"with {seeds} and Holm over {k} operators, {POWER:.0%} power needs |d_z| ≥ {fmt_d(need)} "
            f"(≥ {fmt_d(raw)} uncorrected)")


def paired_note(cmp: Comparison, section: Section) -> tuple[str, str, str]:
    """Plain text, for markdown and HTML alike: the sentence above the paired table (its statistics); the power
    note (the smallest true |d_z| these seeds detect with 80% power, per pair count and Holm family); and the
    warning ('' when every test could reach alpha)."""
    others = [g for g in section.groups if g.upsampler != cmp.baseline]
    rows = [(g, cmp.row(section, g.upsampler, m)) for g in others for m in section.headline]
    ks = sorted({r["holm_k"] for _, r in rows if r is not None and r.get("holm_k")}) or [0]
    k = str(ks[0]) if len(ks) == 1 else f"{ks[0]}–{ks[-1]}"
    head = (f"mean paired difference (upsampler − {cmp.baseline}) over matching seeds, its 95% CI (paired t), "
            f"Cohen’s d_z = mean / sd of the differences, and the two-sided p, raw and Holm-adjusted; "
            f"* = significant at α = {cmp.alpha}, two-sided, Holm–Bonferroni over the k = {k} operators of this "
            f"table, per metric. Not significant means we cannot tell, not that they are equal.")
    families = sorted({(r["n_pairs"], r["holm_k"]) for _, r in rows if r is not None and r.get("holm_k")})
    power = f"Power: {'; '.join(power_clause(n, fk, cmp.alpha) for n, fk in families)}." if families else ""
    if any(p_floor(n) == 0 for n, _ in families):
        power += (f" That is the smallest true |d_z| the two-sided paired t-test (noncentral t) finds "
                  f"{POWER:.0%} of the time at α/k, Holm’s first step for k operators, or at α = {cmp.alpha} "
                  f"uncorrected: a cell without * leaves any smaller true difference open.")
    weak: dict[int, list[str]] = {}
    for g, r in rows:
        if untestable(r, cmp.alpha) and g.upsampler not in weak.setdefault(r["n_pairs"], []):
            weak[r["n_pairs"]].append(g.upsampler)
    if not weak:
        return head, power, ""
    parts = [f"No test can reach α = {cmp.alpha} with {n} pair{'s' if n != 1 else ''} "
             f"({', '.join(ups)}): below 3 pairs this report uses the exact sign-flip test, whose p cannot go "
             f"below 2/2^{n} = {p_floor(n):.3f}." for n, ups in sorted(weak.items())]
    need, need_sf = pairs_needed(cmp.alpha), pairs_needed(cmp.alpha, sign_flip_only=True)
    parts.append(f"Those cells read untestable: run at least {need} matching seeds per operator (from 3 pairs "
                 f"the paired t-test is used, which can reach any p; the exact sign-flip test alone would need "
                 f"{need_sf}).")
    return head, power, " ".join(parts)
