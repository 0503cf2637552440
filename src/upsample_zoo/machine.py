"""The machine a number comes from, in one home: the CPU model, the cores this process may use, the GPU. The
bench's header and every run's results.json (``machine``) describe it the same way."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_machine() -> dict[str, Any]:
    """{"cpu", "cpus_usable", "gpu"}: what a results page says a run ran on (gpu: None without CUDA)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpus_usable": usable_cpus(), "gpu": gpu}
