"""comparison.html: the tables of tables.py, the charts, the runs' own figures and the protocol, through the
Jinja2 template ``templates/comparison.html.j2`` with ``comparison.css`` and ``sort.js`` inlined, so the page
is one self-contained file that works offline."""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from upsample_zoo.report.charts import bar_chart, cost_scatter, png_data_uri, spectrum_plot
from upsample_zoo.report.comparison import Comparison, Section
from upsample_zoo.report.runs import sweep_commands
from upsample_zoo.report.tables import (
    REFERENCE_NAME,
    SE_NOTE,
    Cell,
    Row,
    Table,
    all_metrics_table,
    ci_table,
    failures_table,
    paired_note,
    paired_table,
    per_run_se_tables,
    reference_note,
    summary_table,
    superseded_lines,
)

TEMPLATES = Path(__file__).parent / "templates"
MAX_EMBED_BYTES = 8 * 2**20
FIGURES = ["predictions.png", "samples.png", "grid_error.png", "spectrum_azimuthal.png"]  # embedded per operator


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def sort_key(value: Any) -> str:
    """A cell's data-v attribute: the number the sortable table orders by, '' for none."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    return repr(float(value)) if ok else ""


class _JoinedLinesLoader(jinja2.FileSystemLoader):
    """Joins each template's lines without their indentation: the markup is indented in the file, not in the
    page (the template writes its newlines explicitly)."""

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        return "".join(line.strip() for line in source.splitlines()), filename, uptodate


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=_JoinedLinesLoader(TEMPLATES), autoescape=False, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(esc=esc, sortkey=sort_key)
    return env


@dataclass
class Figure:
    upsampler: str
    name: str
    uri: str
    seed: int | None
    run_dir: Path


def _embed_file(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_EMBED_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return png_data_uri(data) if data.startswith(b"\x89PNG") else None


def _figures(s: Section) -> list[Figure]:
    """The figures the first seed of each operator wrote beside its results.json."""
    out = []
    for g in s.groups:
        run = next((r for r in sorted(g.ok_runs, key=lambda r: (r.seed is None, r.seed or 0))), None)
        for name in FIGURES if run is not None else []:
            uri = _embed_file(run.run_dir / name)
            if uri:
                out.append(Figure(g.upsampler, name, uri, run.seed, run.run_dir))
    return out


def _protocols(section: Section) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in (r for g in section.groups for r in g.ok_runs):
        for k, v in (r.protocol or {}).items():
            s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            if s not in out.setdefault(str(k), []):
                out[str(k)].append(s)
    return out


def _datasets(section: Section) -> list[str]:
    out: list[str] = []
    for r in (r for g in section.groups for r in g.ok_runs):
        s = json.dumps(r.dataset, sort_keys=True) if r.dataset else None
        if s and s not in out:
            out.append(s)
    return out


def _section_view(cmp: Comparison, s: Section) -> dict[str, Any]:
    """What the template's section macro shows, every table and text already built."""
    view: dict[str, Any] = {"title": s.title, "summary": summary_table(cmp, s), "reference": bool(s.reference()),
                            "reference_note": reference_note(s),
                            "ci": ci_table(cmp, s) if s.headline and any(g.n_ok >= 2 for g in s.groups) else None,
                            "paired": None, "only_baseline": (len(s.groups) == 1 and bool(cmp.baseline)
                                                              and s.group(cmp.baseline) is not None)}
    if cmp.baseline and s.group(cmp.baseline) is not None and s.headline and len(s.groups) > 1:
        head, power, warning = paired_note(cmp, s)
        view.update(paired=paired_table(cmp, s), paired_head=head[0].upper() + head[1:], power=power,
                    warning=warning, tests="; ".join(cmp.tests_used(s)) or "none")
    charts = [(bar_chart(cmp, s), "bar chart"), (cost_scatter(cmp, s), "quality vs cost"),
              (spectrum_plot(s), "azimuthal spectra")]
    view["charts"] = [(u, alt) for u, alt in charts if u]
    view["no_spectra"] = bool(s.declaration and s.declaration.records_spectra) and charts[2][0] is None
    old = [r for g in s.groups for r, _ in g.superseded]
    runs = [r for g in s.groups for r in g.runs] + old
    view.update(figures=_figures(s), failures=failures_table(s), protocols=_protocols(s), datasets=_datasets(s),
                tags=sorted({t for r in runs for t in r.tags}), sweeps=sweep_commands(runs), n_runs=len(runs),
                superseded=superseded_lines(s), per_run_se=per_run_se_tables(cmp, s),
                per_run="\n".join(f"{r.command}    # {'superseded' if r in old else r.status}, {r.run_dir}"
                                   for r in runs if r.overrides))
    return view


def _unreadable_table(cmp: Comparison) -> Table:
    """Unreadable results.json files that no section lists."""
    listed = [r for s in cmp.sections for g in s.groups for r in g.runs]
    return Table(["run dir", "error"], [Row([Cell(str(r.run_dir), cls="text"), Cell(str(r.error), cls="text")])
                                        for r in cmp.runs if r.status == "unreadable" and r not in listed])


def render_html(cmp: Comparison) -> str:
    js = "\n" + (TEMPLATES / "sort.js").read_text(encoding="utf-8")
    script_hash = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    # Defence in depth: everything is escaped, and the policy lets only our own sorting script run.
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; "
           "base-uri 'none'; form-action 'none'")
    return _environment().get_template("comparison.html.j2").render(
        nl="\n", csp=csp, css="\n" + (TEMPLATES / "comparison.css").read_text(encoding="utf-8"), js=js,
        n_runs=len(cmp.runs), n_ok=sum(r.ok for r in cmp.runs) - len(cmp.superseded),
        n_superseded=len(cmp.superseded), baseline=cmp.baseline, paths=cmp.paths,
        now=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        sections=[_section_view(cmp, s) for s in cmp.sections], unreadable=_unreadable_table(cmp),
        all_metrics=all_metrics_table(cmp) if cmp.rows else None,
        reference_name=REFERENCE_NAME, se_note=SE_NOTE)
