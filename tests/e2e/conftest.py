"""tests/e2e: everything that trains, sweeps or runs the CLI or a browser. Every test here is ``slow`` (`make
test` runs it, `make test-fast` leaves it out), marked once, here, instead of module by module."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
