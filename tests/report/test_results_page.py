"""A docs results page generated from sweeps (upsample_zoo.report.page, scripts/results_page.py): its command,
commit, machine, dates and caveat come from the runs, and its tables are the comparison's own."""

from __future__ import annotations

import datetime as dt
import itertools
import os

from upsample_zoo.report.comparison import summarize
from upsample_zoo.report.markdown import render_markdown
from upsample_zoo.report.page import render_page
from upsample_zoo.report.runs import load_runs

from ..helpers.runs import write_run

MACHINE = {"cpu": "Test CPU 9000", "cpus_usable": 2, "gpu": None}


def _sweep(root, machine=MACHINE):
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - upsampler=bilinear,tconv\n"
                                        "    - seed=0,1,2\n")
    for (i, up), s in itertools.product(enumerate(["bilinear", "tconv"]), range(3)):
        d = write_run(root, f"{up}_s{s}", upsampler=up, seed=s, metrics={"test/miou": 0.4 + 0.05 * i + 0.01 * s},
                      extra={"git": "abc1234", "versions": {"upsample_zoo": "0.1.0", "torch": "2.14.1"},
                             "torch_threads": 1, **({"machine": machine} if machine else {})})
        stamp = dt.datetime(2026, 12, 4, 10, i * 10 + s, tzinfo=dt.timezone.utc).timestamp()
        os.utime(d / "results.json", (stamp, stamp))
    return root


def test_the_page_states_where_its_numbers_come_from(tmp_path):
    root = _sweep(tmp_path / "sweep")
    page = render_page([root], "A title", note="A caveat.", command="make results-pages")
    lines = page.splitlines()
    assert lines[0] == "# A title"
    assert "- **Command**: `python train.py -m upsampler=bilinear,tconv seed=0,1,2`" in lines
    assert "- **Commit**: `abc1234` (upsample-zoo 0.1.0, torch 2.14.1)" in lines
    assert "- **Machine**: Test CPU 9000, 2 usable cores, GPU none; torch threads per run: 1" in lines
    assert "- **Date**: 2026-12-04 10:00 – 2026-12-04 10:12 UTC (when each run's results.json was written)" in lines
    assert "**Caveat.** A caveat." in lines
    # the tables are the comparison's own markdown, below its title
    report = render_markdown(summarize(load_runs([root])))
    assert page.endswith(report.split("\n", 2)[2])


def test_runs_without_a_machine_say_so_or_take_it_from_the_command_line(tmp_path):
    root = _sweep(tmp_path / "sweep", machine=None)
    assert "not recorded by these runs" in render_page([root], "t")
    given = render_page([root], "t", machine="a 2-core box")
    assert "- **Machine**: a 2-core box (stated on the command line: these runs predate results.json's " \
           "`machine`); torch threads per run: 1" in given.splitlines()
