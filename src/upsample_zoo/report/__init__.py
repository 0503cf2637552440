"""The comparison report: runs.py loads results.json files, stats.py describes and tests, comparison.py groups
runs into sections, tables.py builds the tables once, markdown.py and html.py draw them, charts.py plots,
export.py writes the CSV and wandb, cli.py is ``upsample-zoo compare``."""

from upsample_zoo.report.cli import compare, main
from upsample_zoo.report.comparison import Comparison, summarize
from upsample_zoo.report.runs import Run, load_runs

__all__ = ["Comparison", "Run", "compare", "load_runs", "main", "summarize"]
