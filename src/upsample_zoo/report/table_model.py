"""One table model for every table the project prints (``Table`` of ``Row``s of ``Cell``s) and its markdown
form: the comparison report draws it in markdown and HTML, the bench's rows and the probe in markdown."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from upsample_zoo.errors import flat


@dataclass
class Cell:
    text: str
    value: float | None = None  # what the HTML table sorts by
    cls: str = ""


@dataclass
class Row:
    cells: list[Cell]
    cls: str | None = None  # the HTML row class ("baseline", "failed", ...); None: no class attribute


@dataclass
class Table:
    header: list[str]
    rows: list[Row] = field(default_factory=list)
    numeric_from: int = 1  # markdown: the columns from here on are right-aligned
    align: str = ""  # markdown, when given: one letter per column, l(eft) or r(ight); overrides numeric_from

    def add(self, *cells: Any) -> Table:
        """A row of plain cells (their text: ``str(cell)``)."""
        self.rows.append(Row([c if isinstance(c, Cell) else Cell(str(c)) for c in cells]))
        return self

    def right_aligned(self, i: int) -> bool:
        return self.align[i] == "r" if self.align else i >= self.numeric_from


def md(text: Any) -> str:
    """A table cell for GitHub markdown: HTML-escaped, pipes and newlines neutralised."""
    return html.escape(flat(text)).replace("|", "\\|")


def md_plain(text: Any) -> str:
    """A table cell of the project's own text (the bench, the probe): pipes and newlines neutralised only."""
    return flat(text).replace("|", "\\|")


def md_table(table: Table, cell: Callable[[Any], str] = md) -> list[str]:
    """The table in GitHub markdown, then an empty line."""
    out = ["| " + " | ".join(cell(h) for h in table.header) + " |",
           "|" + "|".join("---:" if table.right_aligned(i) else "---" for i in range(len(table.header))) + "|"]
    out += ["| " + " | ".join(cell(c.text) for c in row.cells) + " |" for row in table.rows]
    return out + [""]
