"""comparison.md: the tables of tables.py as GitHub markdown, with the notes between them."""

from __future__ import annotations

import html
from typing import Any

from upsample_zoo.report.model import Comparison, Section
from upsample_zoo.report.tables import (
    REFERENCE_NAME,
    REFERENCE_NOTE,
    Table,
    ci_table,
    failures_table,
    paired_note,
    paired_table,
    summary_table,
)


def md(text: Any) -> str:
    """A table cell for GitHub markdown: HTML-escaped, pipes and newlines neutralised."""
    return html.escape(" ".join(str(text).split())).replace("|", "\\|")


def md_table(table: Table) -> list[str]:
    out = ["| " + " | ".join(md(h) for h in table.header) + " |",
           "|" + "|".join("---" if i < table.numeric_from else "---:" for i in range(len(table.header))) + "|"]
    out += ["| " + " | ".join(md(c.text) for c in row.cells) + " |" for row in table.rows]
    return out + [""]


def _section(cmp: Comparison, s: Section) -> list[str]:
    lines = [f"## {md(s.title)}", "", *md_table(summary_table(cmp, s))]
    if s.reference():
        lines += [f"{REFERENCE_NAME}: {md(REFERENCE_NOTE)}", ""]
    if s.headline and any(g.n_ok >= 2 for g in s.groups):
        lines += ["95% confidence interval of the mean over seeds:", "", *md_table(ci_table(cmp, s))]
    if cmp.baseline and s.group(cmp.baseline) is not None and s.headline:
        head, power = paired_note(cmp, s)
        lines += [f"Against the baseline `{md(cmp.baseline)}`: {md(head)} "
                  f"Test: {md('; '.join(cmp.tests_used(s)) or 'none')}.", ""]
        if power:
            lines += [f"**{md(power)}**", ""]
        lines += md_table(paired_table(cmp, s))
    elif cmp.baseline:
        lines += [f"No `{md(cmp.baseline)}` runs here: no paired tests.", ""]
    failures = failures_table(s)
    if failures.rows:
        lines += ["Failed or incomplete runs:", "", *md_table(failures)]
    return lines


def render_markdown(cmp: Comparison) -> str:
    n_ok = sum(r.ok for r in cmp.runs)
    lines = ["# Upsampler comparison", "",
             f"{len(cmp.runs)} runs ({n_ok} ok, {len(cmp.runs) - n_ok} failed or incomplete). "
             "Cells are mean ± sample std over seeds; 95% CIs use Student's t.", ""]
    for s in cmp.sections:
        lines += _section(cmp, s)
    if not cmp.sections and any(r.status == "unreadable" for r in cmp.runs):
        lines += ["No readable runs."]
    return "\n".join(lines).rstrip() + "\n"
