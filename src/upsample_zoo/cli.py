"""The `upsample-zoo` console script: `train`, `compare`, `rescore`, `probe` and `bench` subcommands.

    upsample-zoo train upsampler=tconv debug=smoke      (= python train.py ..., from any directory)
    upsample-zoo compare logs/segmentation/multiruns/<time> [--baseline bilinear] [--out DIR] [--wandb]
    upsample-zoo rescore logs/gan/multiruns/<time> [--jobs -1] [--no-report]
    upsample-zoo probe [--seeds 5] [--out logs/probe] [--quick]
    upsample-zoo bench [...]

"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _train(argv: Sequence[str]) -> int:
    from upsample_zoo.train import main

    sys.argv = ["upsample-zoo train", *argv]  # @hydra.main parses sys.argv
    main()
    return 0


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
PASSTHROUGH: dict[str, Callable[[Sequence[str]], int]] = {"train": _train, "probe": _probe, "bench": _bench}


def build_parser() -> argparse.ArgumentParser:
    from upsample_zoo import __version__
    from upsample_zoo.cli_args import OneLineParser
    from upsample_zoo.report import cli as compare

    parser = OneLineParser(prog="upsample-zoo", description="Compare upsamplers: training, reports, "
                                     "probes and benchmarks.")
    parser.add_argument("--version", action="version", version=f"upsample-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("train", help="train one run or a sweep (-m): Hydra overrides, as python train.py",
                   add_help=False)
    compare.add_arguments(sub.add_parser("compare", help="results.json files -> comparison.{md,csv,html}",
                                         description=compare.__doc__.split("\n\n")[0]))
    from upsample_zoo import rescore

    rescore.add_arguments(sub.add_parser("rescore", description=rescore.__doc__.split("\n\n")[0],
                                         help="finished jobs' test phase again, with today's metric code"))
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
        from upsample_zoo.report.cli import run_from_args

        return run_from_args(args)
    if args.command == "rescore":
        from upsample_zoo.rescore import run_from_args as rescore_from_args

        return rescore_from_args(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
