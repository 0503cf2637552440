"""Row 2, framework overhead: the Lightning task's training-step throughput ÷ a plain PyTorch loop's (same
model, batch, optimizer, losses and in-memory data), from interleaved step pairs; Lightning's own per-step work
on a near-zero-compute copy of the task; and the plain step at torch's default thread count vs one thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from upsample_zoo.bench.measure import (
    Clock,
    Failed,
    Summary,
    fmt,
    fmt_spread,
    log,
    optional,
    ratio_summary,
    summarize,
    torch_threads,
)
from upsample_zoo.bench.settings import TORCH_DEFAULT_THREADS, Settings
from upsample_zoo.bench.workloads import Workload, build_workload, interleaved_fit, plain_block
from upsample_zoo.report.table_model import Table, md_plain, md_table
from upsample_zoo.tasks.declarations import declared


def tiny_overrides(task: str) -> tuple[str, ...]:
    """The task with next to no compute (its declared overrides): what remains per step is the framework's."""
    return declared(task).bench.tiny_overrides


@dataclass
class Framework:
    workload: str
    pairs: int
    plain_step_cpu_s: Summary
    lightning_step_cpu_s: Summary
    overhead_cpu_s: Summary


@dataclass
class Threads:
    default_threads: int
    default_step_s: Summary
    one_thread_step_s: Summary
    one_thread_speedup: Summary


@dataclass
class Overhead:
    workload: str
    batch_size: int
    pairs: int
    torch_threads: int
    plain_step_s: Summary
    lightning_step_s: Summary
    ratio: Summary
    threads: Threads | None = optional()
    framework: Framework | None = None
    overhead_ms_per_step: float | None = None
    ratio_implied: float | None = None


def framework_overhead(task: str, s: Settings, device: torch.device, root: Path) -> Framework:
    """Lightning's own cost per training step (hooks, closures, optimizer wrappers, self.log, the loop), in CPU
    time of the main thread: the same interleaved pairs on a near-zero-compute copy of the task, where all
    work runs on the main thread (one torch thread), so it counts work done whoever else holds the CPU."""
    w = build_workload(task, tiny_overrides(task), root / f"tiny_{task}", device)
    with torch_threads(1):  # every op on the main thread (its CPU clock sees all the work), no barrier waits
        p, lt = interleaved_fit(w, s.overhead_tiny_steps, device, root)
    diffs = [b.thread - a.thread for a, b in zip(p, lt)]
    return Framework(workload=w.describe, pairs=len(p), plain_step_cpu_s=summarize([c.thread for c in p]),
                     lightning_step_cpu_s=summarize([c.thread for c in lt]), overhead_cpu_s=summarize(diffs))


def threads_row(w: Workload, s: Settings, device: torch.device) -> Threads:
    """The plain training step at torch's default thread count vs one thread (interleaved blocks of one warm-up
    and one timed step). On an idle machine more threads win on big convolutions; when other jobs hold the
    cores, every parallel region waits for its slowest thread, and one thread can win by a wide margin."""
    n_default = TORCH_DEFAULT_THREADS
    times: dict[int, list[float]] = {n_default: [], 1: []}
    for i in range(s.threads_blocks):
        for n in ((n_default, 1) if i % 2 == 0 else (1, n_default)):
            with torch_threads(n):
                times[n].append(plain_block(w, 1, device).wall)
    ratio = ratio_summary(times[n_default], times[1])
    log(f"threads {w.task_name}: 1 thread runs x{ratio['median']:.2f} the speed of {n_default}")
    return Threads(default_threads=n_default, default_step_s=summarize(times[n_default]),
                   one_thread_step_s=summarize(times[1]), one_thread_speedup=ratio)


def run(w: Workload, s: Settings, device: torch.device, root: Path) -> Overhead:
    """Lightning ÷ plain training-step throughput, two ways.

    - **Direct**: wall time of interleaved (Lightning, plain) step pairs on the real workload, default threads:
      the figure the issue asks for; on a shared machine it is as noisy as the machine.
    - **Implied**: Lightning's own per-step work, measured on a near-zero-compute copy of the task (CPU time,
      robust to load), added to the real workload's fastest plain step: plain / (plain + overhead). Taking the
      fastest plain step (the least disturbed one) makes it conservative.
    """
    plain: list[Clock] = []
    light: list[Clock] = []
    for _ in range(s.overhead_fits):
        p, lt = interleaved_fit(w, s.overhead_steps, device, root)
        plain += p
        light += lt
    out = Overhead(workload=w.describe, batch_size=w.batch_size, pairs=len(plain),
                   torch_threads=torch.get_num_threads(), plain_step_s=summarize([c.wall for c in plain]),
                   lightning_step_s=summarize([c.wall for c in light]),
                   ratio=ratio_summary([c.wall for c in plain], [c.wall for c in light]))
    compare_threads = not s.quick or declared(w.task_name).bench.quick_threads
    if device.type == "cpu" and s.threads_blocks and compare_threads and TORCH_DEFAULT_THREADS > 1:
        out.threads = threads_row(w, s, device)
    out.framework = framework_overhead(w.task_name, s, device, root)
    overhead = max(0.0, out.framework.overhead_cpu_s["median"])
    fastest = out.plain_step_s["min"]
    out.overhead_ms_per_step = out.framework.overhead_cpu_s["median"] * 1e3
    out.ratio_implied = fastest / (fastest + overhead)
    log(f"overhead {w.task_name}: Lightning/plain throughput {out.ratio['median']:.3f} (direct, wall), "
        f"{out.ratio_implied:.3f} (implied: {overhead * 1e3:.2f} ms/step framework work)")
    return out


def _threads_lines(ov: dict[str, Overhead | Failed]) -> list[str]:
    thr = {t: r.threads for t, r in ov.items() if isinstance(r, Overhead) and r.threads}
    if not thr:
        return []
    lines = ["Threads: the plain training step at torch's default thread count vs 1 thread (interleaved, one "
             "warm-up and one timed step each); > 1 means one thread is faster on this machine right now.\n"]
    table = Table(["task", "default threads", "ms/step", "1 thread ms/step", "1 thread ÷ default, speed"])
    for t, r in thr.items():
        table.add(t, r.default_threads, fmt_spread(r.default_step_s, 1e3), fmt_spread(r.one_thread_step_s, 1e3),
                  fmt_spread(r.one_thread_speedup))
    return lines + md_table(table, md_plain)


def render(ov: dict[str, Overhead | Failed]) -> list[str]:
    lines = ["## 2. Framework overhead: Lightning training-step throughput ÷ plain PyTorch loop\n",
             "Same model, batch, optimizer and in-memory batches; Trainer with logger, checkpointing, progress bar "
             "and model summary off. Each Lightning step is followed by a plain step on the same batch (pairs a "
             "few hundred ms apart); a Lightning step is everything from one step's start to the next one's, minus "
             "the plain step in between. The first pair warms up. Target ≥ 0.97 (must ≥ 0.95).\n"]
    table = Table(["task", "workload", "pairs", "plain ms/step", "Lightning ms/step", "**ratio (direct, wall)**",
                   "framework ms/step (CPU)", "ratio (implied)"], numeric_from=2)
    for task, r in ov.items():
        if isinstance(r, Failed):
            table.add(task, f"error: {r.error}", "", "", "", "", "", "")
            continue
        table.add(task, r.workload, r.pairs, fmt_spread(r.plain_step_s, 1e3), fmt_spread(r.lightning_step_s, 1e3),
                  f"**{fmt_spread(r.ratio)}**", fmt_spread(r.framework.overhead_cpu_s, 1e3), fmt(r.ratio_implied))
    lines += md_table(table, md_plain)[:-1]
    lines.append("\n*Framework ms/step*: Lightning's own work per step (hooks, closures, optimizer wrappers, "
                 "`self.log`), from interleaved pairs on a near-zero-compute copy of each task, main-thread CPU time "
                 "(robust to load). *Implied* = fastest plain step ÷ (it + framework ms): what the direct ratio "
                 "reads on an idle machine, conservatively.\n")
    return lines + _threads_lines(ov)
