"""Session fixtures: a throw-away project root and the one real smoke sweep. Plain helpers live in
tests/helpers/ and are imported from there; no test module imports another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers.cli import run_cli
from .helpers.runs import EVIL_TAG
from .helpers.zoo import SMOKE_UPSAMPLERS


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory) -> Path:
    """UPSAMPLE_ZOO_ROOT for the whole session: data, caches and logs never touch the repo."""
    root = tmp_path_factory.mktemp("zoo_root")
    os.environ["UPSAMPLE_ZOO_ROOT"] = str(root)
    return root


@pytest.fixture(scope="session")
def smoke_sweep(zoo_root, tmp_path_factory) -> Path:
    """`python train.py -m upsampler=nearest,tconv,pixel_shuffle seed=0,1 debug=smoke`, once per session
    (6 smoke jobs in one process), with a hostile tag for the escaping checks."""
    sweep = tmp_path_factory.mktemp("smoke_sweep")
    proc = run_cli(["-m", f"upsampler={','.join(SMOKE_UPSAMPLERS)}", "seed=0,1", "debug=smoke",
                    f"++tags=['{EVIL_TAG}']", f"hydra.sweep.dir={sweep}"], zoo_root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "comparison written to" in proc.stdout
    return sweep
