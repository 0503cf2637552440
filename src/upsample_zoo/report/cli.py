"""Compare upsamplers across runs: results.json files -> comparison.{md,csv,html}.

``upsample-zoo compare PATH... [--baseline bilinear] [--out DIR] [--alpha 0.05] [--wandb]``; also run by the
Hydra callback at the end of every multirun, into the sweep dir. Runs are grouped by (task, data, variant,
upsampler) (runs.py, comparison.py); the statistics are in stats.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from upsample_zoo.atomic import atomic_write_bytes, atomic_write_text
from upsample_zoo.cli_args import OneLineParser, ensure_writable, probability, write_or_exit
from upsample_zoo.report.comparison import summarize
from upsample_zoo.report.export import log_wandb, render_csv
from upsample_zoo.report.html import render_html
from upsample_zoo.report.markdown import render_markdown
from upsample_zoo.report.runs import load_runs
from upsample_zoo.report.stats import ALPHA


def compare(paths: Sequence[str | os.PathLike], baseline: str | None = "bilinear", out: str | os.PathLike | None = None,
            alpha: float = ALPHA, use_wandb: bool = False, runs: list | None = None) -> dict[str, Path]:
    """Read the runs (or take ``runs``, already read from ``paths``), write comparison.{md,csv,html} into ``out``
    (default: the single folder given, else ./comparison) and return their paths."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} is not a significance level: use a value in (0, 1), such as 0.05")
    out = output_dir(paths, out)
    runs = load_runs(paths) if runs is None else runs
    cmp = summarize(runs, baseline=baseline, alpha=alpha, paths=[str(p) for p in paths])
    written = {
        "md": atomic_write_text(out / "comparison.md", render_markdown(cmp)),
        "csv": atomic_write_text(out / "comparison.csv", render_csv(cmp)),
        "html": atomic_write_bytes(out / "comparison.html", render_html(cmp).encode("utf-8")),
    }
    montage = prediction_montage(runs, out / "predictions_by_upsampler.png")
    if montage is not None:
        written["predictions"] = montage
    if use_wandb:
        written["wandb"] = log_wandb(cmp, out)
    return written


def prediction_montage(runs: list, path: Path) -> Path | None:
    """The prediction grid (predictions.png) of each operator's lowest ok seed, one row per (task, data,
    variant, upsampler), in one PNG; None when no run drew one. Every row shows the same val images."""
    from upsample_zoo.figures import save_montage

    first: dict[tuple, object] = {}
    for r in sorted((r for r in runs if r.ok and (r.run_dir / "predictions.png").is_file()),
                    key=lambda r: (r.seed if r.seed is not None else -1, str(r.run_dir))):
        first.setdefault((r.task, r.data, r.variant, r.upsampler), r)
    if not first:
        return None
    panels = [(f"{k[3]}{f' · {k[2]}' if k[2] else ''} · seed {r.seed}", r.run_dir / "predictions.png")
              for k, r in sorted(first.items())]
    return save_montage(panels, path)


def output_dir(paths: Sequence[Path], out: str | os.PathLike | None) -> Path:
    """``out``, or by default the single folder given, else ./comparison."""
    if out is None:
        return paths[0] if len(paths) == 1 and paths[0].is_dir() else Path("comparison")
    return Path(out)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="sweep/run folders (searched recursively for "
                        "results.json) or results.json files")
    parser.add_argument("--baseline", default="bilinear",
                        help="upsampler the others are tested against (default bilinear; 'none' for no tests)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the PATH when it is a single folder, else ./comparison)")
    parser.add_argument("--alpha", type=probability, default=ALPHA, help="significance level in (0, 1) (default 0.05)")
    parser.add_argument("--wandb", action="store_true", help="also log the table as a wandb.Table (offline unless "
                        "WANDB_API_KEY is set)")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    prog = "upsample-zoo compare"
    baseline = None if str(args.baseline).lower() in ("none", "") else args.baseline
    missing = [str(p) for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"{prog}: error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = load_runs([Path(p) for p in args.paths])  # read once: checked here, compared below
    if not runs:
        print(f"{prog}: error: no results.json under {', '.join(map(str, args.paths))}; give a sweep or run folder "
              "(or results.json files) that training wrote", file=sys.stderr)
        return 1
    out = output_dir([Path(p) for p in args.paths], args.out)
    ensure_writable(prog, out)
    written = write_or_exit(prog, out, lambda: compare(args.paths, baseline=baseline, out=out, alpha=args.alpha,
                                                       use_wandb=args.wandb, runs=runs))
    md = written["md"].read_text(encoding="utf-8")
    print(md)
    for k in ("md", "csv", "html", "predictions", "wandb"):
        if k in written:
            print(f"wrote {written[k]}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="upsample-zoo compare", description=__doc__.split("\n\n")[0])
    return run_from_args(add_arguments(parser).parse_args(argv))
