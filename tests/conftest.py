"""Session fixtures: a throw-away project root, the one real smoke sweep and the shared in-process smoke runs.
Plain helpers live in tests/helpers/ and are imported from there; no test module imports another."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from .helpers.cli import run_cli, run_in_process
from .helpers.runs import EVIL_TAG
from .helpers.zoo import SMOKE_UPSAMPLERS


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory) -> Iterator[Path]:
    """UPSAMPLE_ZOO_ROOT for the rest of the session, restored at its end: data, caches and logs never touch
    the repo, and nothing leaks out of the session."""
    root = tmp_path_factory.mktemp("zoo_root")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UPSAMPLE_ZOO_ROOT", str(root))
        yield root


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


@pytest.fixture(scope="session")
def smoke_run(zoo_root, tmp_path_factory) -> Callable[[Sequence[str]], tuple[Path, dict]]:
    """``smoke_run(overrides)`` -> (run dir, results.json): one in-process run (helpers.cli.run_in_process) per
    distinct override list for the whole session, so the tests that check the same run share it (the GAN and
    segmentation smoke run of each operator: its own checks, the real-vs-real floor, the same-seed rerun, the
    atomic checkpoint write). Read-only for the tests."""
    runs: dict[tuple[str, ...], tuple[Path, dict]] = {}

    def get(overrides: Sequence[str]) -> tuple[Path, dict]:
        key = tuple(overrides)
        if key not in runs:
            out = tmp_path_factory.mktemp(re.sub(r"[^\w.-]+", "_", "_".join(key))[:60])
            runs[key] = (out, run_in_process(list(key), out))
        return runs[key]

    return get


@pytest.fixture(scope="session")
def gan_pair_sweep(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(root, sweep dir, the finished process): two GAN smoke jobs at once (joblib, two processes) in a fresh
    root, nothing generated or cached before. Read-only: the cache test reads its logs, the rescore test works
    on a copy."""
    base = tmp_path_factory.mktemp("gan_pair")
    root, sweep = base / "root", base / "sweep"
    proc = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "task=gan", "debug=smoke", "seed=0,1",
                    f"hydra.sweep.dir={sweep}", "hydra.callbacks.compare.enabled=false"], root, timeout=600)
    return root, sweep, proc
