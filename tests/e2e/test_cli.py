"""The console commands: compare, probe and bench dispatch, and compare --wandb in an offline run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from upsample_zoo import cli

from ..helpers.runs import small_sweep


@pytest.fixture
def tree(tmp_path) -> Path:
    return small_sweep(tmp_path / "sweep")


def test_cli_compare_probe_bench(tree, tmp_path, monkeypatch, capsys):
    assert cli.main(["compare", str(tree), "--out", str(tmp_path / "o"), "--baseline", "tconv"]) == 0
    assert "Against the baseline `tconv`" in capsys.readouterr().out
    assert cli.main(["compare", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    seen = {}
    import upsample_zoo.probe

    monkeypatch.setattr(upsample_zoo.probe, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    assert cli.main(["probe", "--quick", "--out", "x"]) == 0 and seen["argv"] == ["--quick", "--out", "x"]
    monkeypatch.setitem(sys.modules, "upsample_zoo.bench", None)  # as if the module were absent
    assert cli.main(["bench", "--help"]) == 2
    assert "bench command is not available" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_console_script_wandb_offline(tree, tmp_path):
    """--wandb logs a wandb.Table in an offline run: no account, no network (the base URL is a closed port)."""
    env = {**os.environ, "WANDB_API_KEY": "", "WANDB_MODE": "", "WANDB_BASE_URL": "http://127.0.0.1:9",
           "WANDB_SILENT": "true"}
    out = tmp_path / "w"
    proc = subprocess.run([sys.executable, "-m", "upsample_zoo.cli", "compare", str(tree), "--out", str(out),
                           "--wandb"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| tconv |" in proc.stdout
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list((runs[0] / "files" / "media" / "table").rglob("comparison*.table.json"))
    debug_log = (runs[0] / "logs" / "debug-internal.log").read_text(errors="replace")
    assert "127.0.0.1:9" not in debug_log and "api.wandb.ai" not in debug_log
