"""The comparison report of a fixed set of runs equals the golden files written by the report code as it was
before it became the report/ package (since changed on purpose only: one run per seed with the superseded runs
listed, the 80%-power note, the CSV columns n_superseded, d_z_80_holm and d_z_80_raw, the two spectral FD parts
the floor's n in the reference note, "results.json is corrupt"): markdown and CSV byte
for byte, HTML apart from the run root, the timestamp and the chart pixels (see helpers.runs.normalised_report)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from upsample_zoo.report import compare

from ..helpers.runs import golden_tree, normalised_report

pytestmark = pytest.mark.slow  # trains, or runs the CLI, a sweep or a browser: `make test` only

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = golden_tree(tmp_path_factory.mktemp("golden") / "runs")
    return root, compare([root / "seg", root / "gan"], out=root.parent / "out")


@pytest.mark.parametrize("kind", ["md", "csv"])
def test_markdown_and_csv_equal_the_golden_files(report, kind):
    root, written = report
    assert normalised_report(written[kind].read_text(encoding="utf-8"), root) == \
        (GOLDEN / f"comparison.{kind}").read_text(encoding="utf-8")


def test_html_equals_the_golden_file_apart_from_timestamp_and_charts(report):
    root, written = report
    page = written["html"].read_text(encoding="utf-8")
    assert normalised_report(page, root) == (GOLDEN / "comparison.html").read_text(encoding="utf-8")
    # the placeholders hide real content: a timestamp and non-empty charts
    assert re.search(r"generated \d{4}-\d\d-\d\d \d\d:\d\d", page)
    assert all(len(m) > 1000 for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
               if not m.startswith("iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"))  # the 1-px fixture figures aside
