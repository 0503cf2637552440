"""Write a docs results page from sweeps (upsample_zoo.report.page): the command, commit, machine and dates of
the runs, a caveat, and the comparison's tables.

    python scripts/results_page.py logs/segmentation/multiruns/<sweep> --title "..." \
        --note "the data's caveat" --out docs/results/<name>.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from upsample_zoo.atomic import atomic_write_text
from upsample_zoo.report.page import render_page


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="results_page.py", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="sweep folders (or results.json files)")
    p.add_argument("--title", required=True)
    p.add_argument("--out", required=True, help="the page to write (markdown)")
    p.add_argument("--note", default="", help="the caveat printed above the tables")
    p.add_argument("--machine", default=None, help="the machine, for runs that predate results.json's machine")
    p.add_argument("--baseline", default="bilinear")
    args = p.parse_args(argv)
    command = "python scripts/results_page.py " + " ".join(shlex.quote(a) for a in argv)
    page = render_page(args.paths, args.title, args.note, args.machine, args.baseline, command)
    atomic_write_text(Path(args.out), page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
