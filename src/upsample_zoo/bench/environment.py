"""The machine the figures come from: CPU model, device, load average, the thread count to measure at, and
the fp32 matmul peak that row 1 and the FID row compare achieved GFLOP/s with."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from typing import Any

import torch

from upsample_zoo.bench.measure import Summary, summarize, time_calls
from upsample_zoo.bench.settings import TORCH_DEFAULT_THREADS
from upsample_zoo.machine import cpu_model, usable_cpus


def device_info(device: torch.device) -> dict[str, Any]:
    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable_cpus(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": str(device), "gpu": None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def choose_threads(option: str, load: list[float] | None = None) -> tuple[int | None, str]:
    """(threads, why) for ``--threads``; (None, error) for a bad value."""
    if option != "auto":
        try:
            n = int(option)
        except ValueError:
            n = 0
        if n < 1:
            return None, f"--threads must be a positive integer or auto, got {option!r}"
        return n, "--threads"
    load = load_average() if load is None else load
    cpus = usable_cpus()
    if not load:
        return TORCH_DEFAULT_THREADS, "auto: torch's default (no load average on this system)"
    free = max(1, min(TORCH_DEFAULT_THREADS, math.ceil(cpus - load[0] - 1e-9)))  # cores not fully taken by others
    if free < TORCH_DEFAULT_THREADS:
        return free, (f"auto: load average {load[0]:.1f} on {cpus} usable CPUs leaves {free} free; torch's default "
                      f"would be {TORCH_DEFAULT_THREADS}, and threads that wait on busy cores stall every parallel "
                      "region")
    return TORCH_DEFAULT_THREADS, f"auto: torch's default (load average {load[0]:.1f} on {cpus} CPUs)"


@dataclass
class MatmulPeak:
    n: int
    dtype: str
    gflops: Summary


def matmul_peak(n: int, repeats: int, device: torch.device) -> MatmulPeak:
    """fp32 matmul GFLOP/s of an n x n product (2 n^3 FLOPs): this machine's practical peak."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    times = time_calls(lambda: torch.mm(a, b), repeats, 1, device)
    rates = [2 * n**3 / t / 1e9 for t in times]
    return MatmulPeak(n=n, dtype="float32", gflops=summarize(rates))
