"""``upsample-zoo bench``: the command line, the run of the chosen sections (a broken row is reported, the
others still run), and the writing of bench.md and bench.json."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from upsample_zoo.bench import checkerboard, data, fid_speed, overhead, scaling, sweep, upsamplers
from upsample_zoo.bench.environment import MatmulPeak, choose_threads, device_info, load_average, matmul_peak
from upsample_zoo.bench.measure import Failed, log, to_json, torch_threads
from upsample_zoo.bench.report import BenchResult, headline, render_markdown
from upsample_zoo.bench.settings import FULL, QUICK, SECTIONS, TORCH_DEFAULT_THREADS, Settings
from upsample_zoo.bench.workloads import Workload, build_workload, plain_block, workload_overrides
from upsample_zoo.errors import one_line
from upsample_zoo.metrics.fid_weights import default_cache_dir
from upsample_zoo.tasks.declarations import package_declarations


def build_parser() -> argparse.ArgumentParser:
    from upsample_zoo.cli_args import OneLineParser

    p = OneLineParser(
        prog="upsample-zoo bench",
        description="Where the time goes, as ratios measured in one run: upsamplers vs the matmul peak, Lightning "
                    "vs a plain loop, data loading vs training, FID extraction, checkerboard cost, scaling, sweeps. "
                    "Writes bench.md and bench.json; the last stdout line is one JSON object.")
    p.add_argument("--quick", action="store_true", help="smaller sizes, the same code paths: a check in minutes")
    p.add_argument("--out", default="logs/bench", help="folder for bench.md and bench.json (default: logs/bench)")
    p.add_argument("--only", default=None,
                   help=f"comma-separated subset of sections: {','.join(SECTIONS)} (default: all)")
    p.add_argument("--upsamplers", default=None, help="comma-separated upsamplers for row 1: zoo names or your own "
                   "classes (mypkg.MyUp); default: the whole zoo")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", default="auto",
                   help="torch threads for the measurements: a number, or auto (default): torch's own choice on an "
                        "idle machine, else the cores the load average leaves free (at least 1); threads that wait "
                        "on busy cores stall every parallel region and the figures would measure the neighbours")
    return p


class Run:
    """One bench run's shared state: its results, the workloads built so far, and the guard around sections."""

    def __init__(self, res: BenchResult, s: Settings, device: torch.device, work: Path) -> None:
        self.res, self.s, self.device, self.work = res, s, device, work
        self.workloads: dict[str, Workload] = {}

    def section(self, name: str, fn: Callable[[], Any]) -> Any:
        log(f"--- {name}")
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - a broken row is reported, the others still run
            traceback.print_exc()
            self.res.errors[name] = one_line(e)
            return Failed(one_line(e))

    def workload(self, task: str) -> Workload:
        if task not in self.workloads:
            self.workloads[task] = build_workload(task, workload_overrides(task, self.s), self.work / f"wl_{task}",
                                                  self.device)
        return self.workloads[task]

    def overhead(self) -> dict[str, float]:
        """Row 2 into the results; returns the plain loop's training img/s per task (what row 3 compares with)."""
        consumption: dict[str, float] = {}
        self.res.overhead = {}
        for task in package_declarations():
            r = self.section(f"overhead/{task}",
                             lambda task=task: overhead.run(self.workload(task), self.s, self.device, self.work))
            self.res.overhead[task] = r
            if isinstance(r, overhead.Overhead):
                consumption[task] = r.batch_size / r.plain_step_s["median"]
        return consumption

    def consumption(self) -> dict[str, float]:
        """The plain loop's training img/s per task without row 2: two blocks of plain steps each."""
        consumption: dict[str, float] = {}
        for task in package_declarations():
            def plain_only(task=task):
                w, n = self.workload(task), self.s.overhead_steps
                steps = [plain_block(w, n, self.device).wall / n for _ in range(2)]
                return w.batch_size / statistics.median(steps)
            rate = self.section(f"consumption/{task}", plain_only)
            if isinstance(rate, float):
                consumption[task] = rate
        return consumption


def run_bench(s: Settings, sections: Sequence[str], device: torch.device, work: Path, command: str,
              ups: Sequence[str] | None = None) -> BenchResult:
    res = BenchResult(mode=s.mode, command=command, settings=s, device=device_info(device),
                      load_avg_start=load_average())
    t_start = time.perf_counter()
    run = Run(res, s, device, work)
    res.matmul = run.section("matmul", lambda: matmul_peak(s.matmul_n, max(5, s.repeats), device))
    peak = (res.matmul.gflops["median"] if isinstance(res.matmul, MatmulPeak) else None) or 0.0
    if "upsamplers" in sections:
        res.upsamplers = run.section("upsamplers", lambda: upsamplers.run(s, device, peak, ups, work))
    consumption = run.overhead() if "overhead" in sections else run.consumption() if "data" in sections else {}
    if "data" in sections:
        res.data = run.section("data", lambda: data.run(s, work, consumption))
    if "fid" in sections:
        res.fid = run.section("fid", lambda: fid_speed.run(s, device, peak, work, default_cache_dir()))
    if "checkerboard" in sections:
        fid_img_s = res.fid.project_img_s["median"] if isinstance(res.fid, fid_speed.Fid) else None
        res.checkerboard = {key: run.section(f"checkerboard/{key}", lambda task=task, kind=kind: checkerboard.run(
            task, kind, s, device, work, run.workload, fid_img_s)) for task in package_declarations()
            for key, kind in checkerboard.rows(task)}
    if "scaling" in sections:
        res.scaling = run.section("scaling", lambda: scaling.run(s, device, work))
    if "sweep" in sections:
        res.sweep = run.section("sweep", lambda: sweep.run(s, work))
    res.wall_s = time.perf_counter() - t_start
    res.load_avg_end = load_average()
    return res


def _usage_error(msg: str) -> int:
    print(f"upsample-zoo: error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    from upsample_zoo.atomic import atomic_write_json, atomic_write_text
    from upsample_zoo.cli_args import ensure_writable, write_or_exit

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = QUICK if args.quick else FULL
    sections = SECTIONS if not args.only else tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        return _usage_error(f"unknown bench sections {unknown}; choose from {', '.join(SECTIONS)}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads, why = choose_threads(args.threads)
    if threads is None:
        return _usage_error(why)
    log(f"torch threads: {threads} ({why})")
    ups = [u.strip() for u in args.upsamplers.split(",")] if args.upsamplers else None
    command = "upsample-zoo bench " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    ensure_writable("upsample-zoo bench", out)
    work = Path(tempfile.mkdtemp(prefix="upsample-zoo-bench-"))
    try:
        # restored afterwards: a caller in the same process (tests, a notebook) keeps its own thread
        # count, and with it its own float summation order
        with torch_threads(threads):
            res = run_bench(settings, sections, device, work, command.strip(), ups)
        res.threads = {"used": threads, "why": why, "torch_default": TORCH_DEFAULT_THREADS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.headline = headline(res)
    md = render_markdown(res)
    write_or_exit("upsample-zoo bench", out, lambda: (atomic_write_json(out / "bench.json", to_json(res)),
                                                      atomic_write_text(out / "bench.md", md)))
    print(md, flush=True)
    log(f"wrote {out / 'bench.md'} and {out / 'bench.json'}")
    print(json.dumps(res.headline), flush=True)
    return 1 if res.errors else 0
