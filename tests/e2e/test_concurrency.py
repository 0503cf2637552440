"""Two sweep jobs at once (joblib, two real processes) build the data and the FID statistics once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..helpers.cli import REPO, run_cli


def test_two_jobs_at_once_build_shared_caches_once(gan_pair_sweep):
    root, sweep, proc = gan_pair_sweep  # a fresh root: nothing generated or cached before the two jobs
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sweep.rglob("results.json")]
    assert len(results) == 2 and all(r["status"] == "ok" for r in results), [r.get("error") for r in results]
    logs = "".join(p.read_text() for p in sweep.rglob("*.log") if p.name != "error.log")
    pids = {line.split("(pid ")[1].split(")")[0] for line in logs.splitlines() if "cifar_synthetic (pid" in line}
    assert logs.count("cifar_synthetic (pid") == 1, "the synthetic set was built more than once"
    # two real image sets get Inception statistics: the reference and the real-vs-real floor, each once
    computed = [line.split("-> ")[-1] for line in logs.splitlines() if "FID real statistics:" in line]
    assert len(computed) == len(set(computed)) == 2, f"FID statistics computed more than once: {computed}"
    assert len(pids) == 1
    assert len(list((root / ".cache" / "fid_stats").glob("*.npz"))) == 2
    assert not list((root / "data").glob(".cifar_synthetic.tmp-*")), "a temp build dir was left behind"
    assert {r["seed"] for r in results} == {0, 1}
    assert len({r["pid"] for r in results}) == 2, "the two jobs ran in two processes"


def test_a_second_sweep_into_a_live_sweep_folder_is_refused(tmp_path):
    """Two sweeps in one folder used to train every job twice and interleave their files. The second is refused
    with one line, before it touches the folder, and the first finishes untouched."""
    import time

    sweep = tmp_path / "sweep"
    env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(tmp_path / "root")}
    cmd = [sys.executable, str(REPO / "train.py"), "-m", "upsampler=nearest,bilinear", "debug=smoke",
           "model.base_channels=8", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (sweep / ".sweep.lock").is_file() or not (sweep / ".sweep.lock").read_text():
            assert first.poll() is None and time.monotonic() < deadline, "the first sweep never took the folder"
            time.sleep(0.2)
        second = run_cli([*cmd[2:], "resume=true"], tmp_path / "root", timeout=120)
        assert first.poll() is None, "the first sweep ended before the second one was tried"
        assert second.returncode == 1
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"pid {first.pid} on " in lines[0] and "in use by a running sweep" in lines[0]
        assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    finally:
        first.kill()
    results = [json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))]
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert {r["pid"] for r in results} == {first.pid}  # every job trained once, by the first sweep
    assert not list(sweep.rglob("results.previous.json")) and not list(sweep.rglob("error.log"))
    assert (sweep / "comparison.md").is_file()
