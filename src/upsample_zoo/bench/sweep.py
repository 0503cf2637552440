"""Row 7, sweep throughput: GAN jobs (full mode) as one sweep with ``hydra/launcher=joblib`` (n_jobs=2, one
torch thread per job) ÷ the same sweep run sequentially, wall time of the whole command; and where the time
goes: per-job wall and fit time from each job's results.json, the per-job cost of giving up the second thread,
and the time outside the jobs (start-up, imports, workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

from upsample_zoo.bench.measure import Failed, Summary, fmt, fmt_spread, log, ratio_summary, summarize
from upsample_zoo.bench.settings import TORCH_DEFAULT_THREADS, Settings
from upsample_zoo.bench.workloads import compose_config
from upsample_zoo.report.table_model import Table, md_plain, md_table
from upsample_zoo.results import RunResult

PARALLEL = "joblib, n_jobs=2, 1 torch thread per job"


@dataclass
class SweepRow:
    wall_s: Summary
    jobs_ok: list[int]
    threads: list[int]
    job_wall_s: Summary
    job_fit_s: Summary
    jobs_wall_s: Summary
    outside_jobs_s: Summary


@dataclass
class Sweep:
    jobs: int
    command: str
    rows: dict[str, SweepRow]
    speedup: Summary
    sequential: str
    speedup_vs_sequential_1thread: Summary | None
    speedup_jobs_only: Summary
    job_slowdown_1thread: Summary


@dataclass
class Skipped:
    skipped: str


@dataclass
class Launcher:
    """One way to run the sweep: launcher overrides, extra environment, jobs at once."""

    overrides: list[str]
    env: dict[str, str]
    parallel: int


def joblib_available() -> str | None:
    """None when ``hydra/launcher=joblib`` can be used, else why not."""
    if find_spec("hydra_plugins") is None or find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        return "hydra-joblib-launcher is not installed (pip install hydra-joblib-launcher)"
    return None


def _sweep_jobs(sweep_dir: Path) -> list[RunResult]:
    return [RunResult.read(p) for p in sorted(sweep_dir.glob("*/results.json"))]


def sweep_time_split(wall: float, jobs: list[RunResult], parallel: int) -> dict:
    """Where one sweep command's wall time went, from its jobs' results.json: the mean job (wall, fit, threads)
    and the time outside the jobs, ``wall - sum(job walls) / parallel`` (process start, imports, Hydra, workers;
    for parallel jobs an estimate that assumes perfectly balanced workers)."""
    walls = [float(j.cost["wall_s"]) for j in jobs]
    fits = [float(j.cost.get("fit_s") or 0.0) for j in jobs]
    n = max(1, len(walls))
    return {"job_wall_s": sum(walls) / n, "job_fit_s": sum(fits) / n, "jobs_wall_s": sum(walls),
            "outside_jobs_s": wall - sum(walls) / parallel,
            "threads": sorted({int(j.torch_threads or 0) for j in jobs})}


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{what} exited {proc.returncode}: {tail[0]}")


def launchers(s: Settings) -> tuple[dict[str, Launcher], str, str | None]:
    """The sequential sweeps (at torch's default threads and/or 1 thread, or the bench's count) and the joblib
    one, by label; and the labels of the sequential baseline and of the 1-thread sequential sweep, if any."""
    def threads_env(n: int) -> dict[str, str]:
        return {} if n == TORCH_DEFAULT_THREADS else {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}

    counts: list[int] = []
    for t in s.sweep_sequential_threads:
        n = int({"default": TORCH_DEFAULT_THREADS, "bench": torch.get_num_threads()}.get(t, t))
        if n not in counts:
            counts.append(n)
    labels = {n: f"sequential, {n} torch thread{'s' if n > 1 else ''}"
                 f"{' (torch default)' if n == TORCH_DEFAULT_THREADS else ''}" for n in counts}
    modes = {labels[n]: Launcher(["hydra/launcher=basic"], threads_env(n), 1) for n in counts}
    # loky gives each of the 2 workers cores // 2 threads by itself; the variables make it 1 on any machine
    modes[PARALLEL] = Launcher(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                               {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, 2)
    return modes, labels[counts[0]], labels.get(1)


def _row(walls: list[float], ok: list[int], split: list[dict]) -> SweepRow:
    return SweepRow(wall_s=summarize(walls), jobs_ok=ok, threads=split[-1]["threads"],
                    **{k: summarize([d[k] for d in split])
                       for k in ("job_wall_s", "job_fit_s", "jobs_wall_s", "outside_jobs_s")})


def run(s: Settings, work: Path) -> Sweep | Skipped:
    why = joblib_available()
    if why:
        return Skipped(why)
    root = work / "sweep_root"
    single = list(s.sweep_overrides)
    cfg = compose_config(single, root)
    extra = ["hydra.callbacks.compare.enabled=false"] if "compare" in (cfg.hydra.get("callbacks") or {}) else []
    args = [*single, f"upsampler={','.join(s.sweep_upsamplers)}", *extra]
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root)}
    env.pop("HYDRA_FULL_ERROR", None)
    # one untimed job first, as a real sweep's first job would: it builds the data, converts the FID weights and
    # caches the real statistics, which every timed job then loads
    _run([sys.executable, "-m", "upsample_zoo.train", *single, f"upsampler={s.sweep_upsamplers[0]}",
          f"hydra.run.dir={work / 'sweep_warmup'}"], env, "sweep warm-up job")
    modes, seq, seq1 = launchers(s)
    walls: dict[str, list[float]] = {m: [] for m in modes}
    ok: dict[str, list[int]] = {m: [] for m in modes}
    split: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(s.sweep_repeats):
        for name, la in (list(modes.items()) if r % 2 == 0 else list(modes.items())[::-1]):
            sweep_dir = work / f"sweep_{len(walls[name])}_{list(modes).index(name)}"
            t0 = time.perf_counter()
            _run([sys.executable, "-m", "upsample_zoo.train", "-m", *args, *la.overrides,
                  f"hydra.sweep.dir={sweep_dir}"], {**env, **la.env}, f"sweep ({name})")
            wall = time.perf_counter() - t0
            jobs = _sweep_jobs(sweep_dir)
            ok[name].append(sum(job.ok for job in jobs))
            walls[name].append(wall)
            split[name].append(sweep_time_split(wall, [j for j in jobs if j.ok], la.parallel))
            log(f"sweep {name}: {wall:.1f} s, {ok[name][-1]}/{len(s.sweep_upsamplers)} jobs ok, "
                f"{split[name][-1]['job_wall_s']:.1f} s per job")
    return Sweep(jobs=len(s.sweep_upsamplers), command="python train.py -m " + " ".join(args),
                 rows={m: _row(walls[m], ok[m], split[m]) for m in modes},
                 speedup=ratio_summary(walls[seq], walls[PARALLEL]), sequential=seq,
                 speedup_vs_sequential_1thread=ratio_summary(walls[seq1], walls[PARALLEL]) if seq1 else None,
                 # the jobs alone: the sequential sweep's job time / the parallel sweep's, per worker
                 speedup_jobs_only=ratio_summary([d["jobs_wall_s"] for d in split[seq]],
                                                 [d["jobs_wall_s"] / 2 for d in split[PARALLEL]]),
                 job_slowdown_1thread=ratio_summary([d["job_wall_s"] for d in split[PARALLEL]],
                                                    [d["job_wall_s"] for d in split[seq]]))


def _table(sw: Sweep) -> list[str]:
    table = Table(["launcher", "wall s", "jobs ok", "torch threads per job", "s per job", "of which fit",
                   "outside the jobs s"])
    for name, r in sw.rows.items():
        ok = ", ".join(f"{k}/{sw.jobs}" for k in r.jobs_ok)
        threads = ", ".join(str(t) for t in r.threads or []) or "n/a"
        table.add(name, fmt_spread(r.wall_s), ok, threads, fmt_spread(r.job_wall_s), fmt_spread(r.job_fit_s),
                  fmt_spread(r.outside_jobs_s))
    return [f"`{sw.command}`\n", *md_table(table, md_plain)[:-1]]


def render(sw: Sweep | Skipped | Failed) -> list[str]:
    """Row 7's markdown lines."""
    jobs = sw.jobs if isinstance(sw, Sweep) else 4
    lines = [f"## 7. Sweep throughput: {jobs} jobs, joblib (n_jobs=2) vs sequential, wall time of the "
             "whole command\n"]
    if isinstance(sw, Skipped):
        return [*lines, f"Skipped: {sw.skipped}.\n"]
    if isinstance(sw, Failed):
        return [*lines, f"error: {sw.error}\n"]
    lines += _table(sw)
    line = f"\nSequential wall ({sw.sequential}) ÷ joblib wall: **{fmt_spread(sw.speedup)}**"
    if sw.speedup_vs_sequential_1thread and len(sw.rows) > 2:
        line += (f"; against a sequential sweep at 1 thread: {fmt_spread(sw.speedup_vs_sequential_1thread)} "
                 "(what the parallel jobs alone buy)")
    lines.append(line + ".\n")
    if sw.job_slowdown_1thread and sw.speedup_jobs_only:
        slow = sw.job_slowdown_1thread["median"]
        lines.append(f"Where the time goes: a job at 1 thread, two at once, takes {fmt(slow)}x as long as the same "
                     f"job alone at {sw.sequential.split(', ')[1]}, so two parallel jobs can gain at most "
                     f"2 / {fmt(slow)} = {fmt(2 / slow)}x from the jobs themselves (measured on the job times alone: "
                     f"{fmt_spread(sw.speedup_jobs_only)}); the rest of the wall time is outside the jobs "
                     "(interpreter start-up, imports, Hydra, the joblib workers' own start-up), the last column.\n")
    return lines
