"""comparison.md: the tables of tables.py as GitHub markdown, with the notes between them."""

from __future__ import annotations

import html
from typing import Any

from upsample_zoo.errors import flat
from upsample_zoo.report.comparison import Comparison, Section
from upsample_zoo.report.table_model import md, md_table
from upsample_zoo.report.tables import (
    REFERENCE_NAME,
    SE_NOTE,
    ci_table,
    failures_table,
    paired_note,
    paired_table,
    per_run_se_tables,
    reference_note,
    summary_table,
    superseded_lines,
)


def md_text(text: Any) -> str:
    """A paragraph: HTML-escaped, newlines neutralised; pipes stay (outside a table they are plain text)."""
    return html.escape(flat(text))


def _section(cmp: Comparison, s: Section) -> list[str]:
    lines = [f"## {md(s.title)}", "", *md_table(summary_table(cmp, s))]
    if s.reference():
        lines += [f"{REFERENCE_NAME}: {md(reference_note(s))}", ""]
    if s.headline and any(g.n_ok >= 2 for g in s.groups):
        lines += ["95% confidence interval of the mean over seeds:", "", *md_table(ci_table(cmp, s))]
    for name, table in per_run_se_tables(cmp, s):
        lines += [f"{md(name)}, per run: {md(SE_NOTE)}", "", *md_table(table)]
    if cmp.baseline and s.group(cmp.baseline) is not None and len(s.groups) == 1:
        lines += [f"Only `{md(cmp.baseline)}` here: no other operator to test against it.", ""]
    elif cmp.baseline and s.group(cmp.baseline) is not None and s.headline:
        head, power, warning = paired_note(cmp, s)
        lines += [f"Against the baseline `{md(cmp.baseline)}`: {md(head)} "
                  f"Test: {md('; '.join(cmp.tests_used(s)) or 'none')}.", ""]
        if power:
            lines += [md_text(power), ""]
        if warning:
            lines += [f"**{md_text(warning)}**", ""]
        lines += md_table(paired_table(cmp, s))
    elif cmp.baseline:
        lines += [f"No `{md(cmp.baseline)}` runs here: no paired tests.", ""]
    failures = failures_table(s)
    if failures.rows:
        lines += ["Failed or incomplete runs:", "", *md_table(failures)]
    superseded = superseded_lines(s)
    if superseded:
        lines += ["Superseded runs (an operator and seed run again; only the latest counts, these are in no "
                  "number above):", "", *[f"- {md_text(x)}" for x in superseded], ""]
    return lines


def render_markdown(cmp: Comparison) -> str:
    n_sup = len(cmp.superseded)
    n_ok = sum(r.ok for r in cmp.runs) - n_sup
    sup = f", {n_sup} superseded by a later run of the same seed" if n_sup else ""
    lines = ["# Upsampler comparison", "",
             f"{len(cmp.runs)} runs ({n_ok} ok{sup}, {len(cmp.runs) - n_ok - n_sup} failed or incomplete). "
             "Cells are mean ± sample std over seeds, one run per seed; 95% CIs use Student's t.", ""]
    for s in cmp.sections:
        lines += _section(cmp, s)
    if not cmp.sections and any(r.status == "unreadable" for r in cmp.runs):
        lines += ["No readable runs."]
    return "\n".join(lines).rstrip() + "\n"
