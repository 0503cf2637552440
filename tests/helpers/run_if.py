"""``RunIf``: one skip marker for what a test needs beyond the suite's own files (a GPU, the headless Chromium,
a file of ../shared/data), so that every conditional skip says the same kind of reason in the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def RunIf(*, gpu: bool = False, chromium: bool = False, shared: Path | None = None) -> pytest.MarkDecorator:  # noqa: N802 - a marker, named as Lightning's
    """``@RunIf(gpu=True)``, ``@RunIf(chromium=True)``, ``@RunIf(shared=CIFAR_JPEG)``: skip, saying why, unless
    the machine has it."""
    from upsample_zoo.report.browser import CHROMIUM

    missing = []
    if gpu and not torch.cuda.is_available():
        missing.append("needs a GPU")
    if chromium and not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} not found: apt-get install chromium chromium-driver")
    if shared is not None and not Path(shared).exists():
        missing.append(f"{shared} not present (../shared/data)")
    return pytest.mark.skipif(bool(missing), reason="; ".join(missing) or "everything it needs is here")
