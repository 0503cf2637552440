"""Measuring and reporting helpers shared by the rows: summaries of repeated measurements, paired ratios,
FLOP counts, clocks and timers, number formatting, and the JSON form of the result dataclasses."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

Summary = dict[str, Any]  # summarize(): median, q1, q3, min, max, n, samples


def summarize(samples: Iterable[float]) -> Summary:
    """Median, quartiles (inclusive method), min, max and count of a list of measurements."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        raise ValueError("summarize: no samples")
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else (xs[0],) * 3
    return {"median": statistics.median(xs), "q1": q1, "q3": q3, "min": xs[0], "max": xs[-1], "n": len(xs),
            "samples": xs}


def ratio_summary(num: Sequence[float], den: Sequence[float]) -> Summary:
    """num/den from paired, interleaved measurements: the ratio of the medians, and the per-pair spread."""
    pairs = [a / b for a, b in zip(num, den)]
    s = summarize(pairs)
    s["median_of_pairs"] = s["median"]
    s["median"] = statistics.median(num) / statistics.median(den)
    return s


def fit_exponent(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x): y ~ c x^k -> k."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("fit_exponent needs at least two (x, y) points")
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("fit_exponent needs at least two different x")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of running ``fn`` (convolutions, matmuls and their backward passes; 2 per multiply-add), counted
    by ``torch.utils.flop_counter.FlopCounterMode``. Elementwise ops, resampling and softmax count zero."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def forward_backward(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor | None = None,
                     guide: torch.Tensor | None = None) -> None:
    """One forward+backward as inside a network: gradients for the weights and for the input (and for the
    guide of a guided operator, as for a U-Net skip)."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    if guide is not None:
        guide.grad = None
    y = module(x) if guide is None else module(x, guide=guide)
    y.backward(torch.ones_like(y) if grad is None else grad)


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak memory of running ``fn``, in bytes above what was allocated before it: the running sum of the
    allocations and frees that the profiler records for ``device`` (every tensor PyTorch's allocator hands out,
    autograd's saved tensors and gradients included), at its maximum."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == _DEVICE_TYPE[device.type]),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


_DEVICE_TYPE = {"cpu": torch._C._autograd.DeviceType.CPU, "cuda": torch._C._autograd.DeviceType.CUDA}
CONV_OPS = ("aten::convolution", "aten::convolution_backward")  # every conv and tconv, with the ops inside them


def conv_share(fn: Callable[[], Any]) -> float:
    """The share of ``fn``'s CPU op time spent in convolutions (forward and backward, the ops they call
    included), from one profiled call: where an operator's time goes, convolutions or the rest (resampling,
    window ops, softmax, elementwise). The profiler's per-op overhead weighs on many-small-op code a little."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.cpu_time_total for e in events if e.key in CONV_OPS) / total if total else 0.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (synchronized on a GPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def autorange_calls(fn: Callable[[], Any], min_run_time: float, min_samples: int = 1) -> list[float]:
    """Seconds per call of ``fn`` from ``torch.utils.benchmark.Timer.blocked_autorange`` (its own warm-up and
    block sizing, at this thread count, synchronized on an accelerator): one figure per block, repeated until
    there are at least ``min_samples`` (a call slower than ``min_run_time`` fills a block alone)."""
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    times: list[float] = []
    while len(times) < max(1, min_samples):
        times += timer.blocked_autorange(min_run_time=min_run_time).times
    return times


@dataclasses.dataclass
class Clock:
    """Seconds of one measured stretch: wall, process CPU (all threads) and this thread's CPU."""

    wall: float = 0.0
    cpu: float = 0.0
    thread: float = 0.0

    @staticmethod
    def now() -> Clock:
        return Clock(time.perf_counter(), time.process_time(), time.thread_time())

    def __add__(self, other: Clock) -> Clock:
        return Clock(self.wall + other.wall, self.cpu + other.cpu, self.thread + other.thread)

    def __sub__(self, other: Clock) -> Clock:
        return Clock(self.wall - other.wall, self.cpu - other.cpu, self.thread - other.thread)


class Stopwatch:
    """start()/stop() -> Clock, synchronized on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.t0 = Clock()

    def start(self) -> None:
        sync(self.device)
        self.t0 = Clock.now()

    def stop(self) -> Clock:
        sync(self.device)
        return Clock.now() - self.t0


class Accumulator:
    """A context manager that adds the wall seconds spent inside it to ``seconds`` (synchronized on a GPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Accumulator:
        sync(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.seconds += time.perf_counter() - self._t0


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if v == 0:
        return "0"
    mag = abs(v)
    if mag >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{max(0, digits - 1 - int(math.floor(math.log10(mag))))}f}" if mag < 10 ** digits else f"{v:.0f}"


def percent(frac: float | None) -> str:
    """A checkerboard share of the test epoch; the GAN's is composed with the FID section's img/s."""
    return fmt(frac * 100) + "%" if frac is not None else "n/a (needs the FID section)"


def fmt_spread(s: Summary | None, scale: float = 1.0, digits: int = 3) -> str:
    """'median (min–max)' of a summary."""
    if not s:
        return "n/a"
    return f"{fmt(s['median'] * scale, digits)} ({fmt(s['min'] * scale, digits)}–{fmt(s['max'] * scale, digits)})"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)




@dataclasses.dataclass
class Failed:
    """A row (or a whole section) that raised: reported, while the others still run."""

    error: str


def optional(default: Any = None) -> Any:
    """A dataclass field that bench.json leaves out while it is None (a key that only some runs have)."""
    return dataclasses.field(default=default, metadata={"omit_none": True})


def json_key(key: str) -> Any:
    """A (required) dataclass field whose bench.json key is not a Python name."""
    return dataclasses.field(metadata={"key": key})


def to_json(obj: Any) -> Any:
    """The JSON form of a result: dataclasses become dicts with their fields in order (``optional`` ones
    left out while None); dicts, lists and tuples are converted recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.metadata.get("key", f.name): to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_none") and getattr(obj, f.name) is None)}
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj
