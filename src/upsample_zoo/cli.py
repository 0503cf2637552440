"""The `upsample-zoo` console script: `compare`, `probe` and `bench` subcommands.

    upsample-zoo compare logs/segmentation/multiruns/<time> [--baseline bilinear] [--out DIR] [--wandb]
    upsample-zoo probe [--seeds 5] [--out logs/probe] [--quick]
    upsample-zoo bench [...]

Training itself is `python train.py ...` (Hydra).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _probe(argv: Sequence[str]) -> int:
    from upsample_zoo.probe import main

    return int(main(list(argv)) or 0)


def _bench(argv: Sequence[str]) -> int:
    try:
        from upsample_zoo.bench import main
    except ImportError as exc:
        print(f"upsample-zoo: error: the bench command is not available in this install "
              f"(upsample_zoo.bench could not be imported: {exc})", file=sys.stderr)
        return 2
    return int(main(list(argv)) or 0)


# subcommands that own their own argument parsing: everything after the name goes to them unchanged
PASSTHROUGH: dict[str, Callable[[Sequence[str]], int]] = {"probe": _probe, "bench": _bench}


def build_parser() -> argparse.ArgumentParser:
    from upsample_zoo import compare

    parser = argparse.ArgumentParser(prog="upsample-zoo", description="Compare upsamplers: reports, probes and "
                                     "benchmarks. Train with `python train.py`.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    compare.add_arguments(sub.add_parser("compare", help="results.json files -> comparison.{md,csv,html}",
                                         description=compare.__doc__.split("\n\n")[0]))
    sub.add_parser("probe", help="init-time checkerboard probe of every zoo upsampler (no data needed)",
                   add_help=False)
    sub.add_parser("bench", help="speed/memory benchmark of the zoo's upsamplers", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        from upsample_zoo.compare import run_from_args

        return run_from_args(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
