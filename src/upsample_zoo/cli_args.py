"""What the command-line tools (compare, probe, bench) share: the one-line usage error, checked numeric
options, and one line when an output cannot be written."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (``<prog>: error: <what>; see <prog> --help``), exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())}; see {self.prog} --help", file=sys.stderr, flush=True)
        raise SystemExit(2)


def number(kind: Callable[[str], T], low: float | None = None, high: float | None = None,
           open_low: bool = False, open_high: bool = False) -> Callable[[str], T]:
    """An argparse ``type`` that parses ``kind`` and refuses values outside [low, high] (or the open ends), with
    the range in the message: ``--alpha 5`` -> ``argument --alpha: 5 is outside (0, 1)``."""
    lo, hi = ("(" if open_low else "[") + ("-inf" if low is None else f"{low:g}"), \
        ("+inf" if high is None else f"{high:g}") + (")" if open_high else "]")

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") \
                from None
        if value != value or (low is not None and (value < low or (open_low and value == low))) or \
                (high is not None and (value > high or (open_high and value == high))):
            raise argparse.ArgumentTypeError(f"{text} is outside {lo}, {hi}")
        return value

    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


positive_int = number(int, low=1)
probability = number(float, low=0, high=1, open_low=True, open_high=True)  # a significance level α


def write_or_exit(prog: str, out: Path, write: Callable[[], T], option: str = "--out") -> T:
    """Run ``write`` (it writes the outputs under ``out``); an OSError (``out`` is a file, read-only, full) is one
    line and exit 1, never a traceback."""
    try:
        return write()
    except OSError as exc:
        where = exc.filename or out
        print(f"{prog}: error: cannot write under {option} {out} ({where}: {exc.strerror or exc}); choose another "
              f"{option}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def ensure_writable(prog: str, out: Path, option: str = "--out") -> None:
    """Before the work: ``out`` can be made and written, else one line and exit 1 (not a traceback after it)."""
    import tempfile

    def probe() -> None:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass

    write_or_exit(prog, out, probe, option)
