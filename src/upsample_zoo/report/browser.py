"""Headless Chromium for the report: a screenshot and the DOM after its script ran (the browser test and
scripts/screenshot_report.py). No network is used."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def chromium(html_path: str | os.PathLike, *args: str, chromium_bin: str = CHROMIUM, timeout: float = 120,
             user_data_dir: str | os.PathLike | None = None) -> subprocess.CompletedProcess[str]:
    """Open a local HTML file in headless Chromium with the extra ``args`` (no network is used)."""
    if not Path(html_path).is_file():
        raise FileNotFoundError(f"no such file: {html_path}")
    if not Path(chromium_bin).is_file():
        raise FileNotFoundError(f"{chromium_bin} not found: apt-get install chromium chromium-driver")

    with tempfile.TemporaryDirectory(prefix="uz-chromium-") as tmp:
        cmd = [chromium_bin, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir or tmp}", *args,
               Path(html_path).resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1200, height: int = 2000,
               **kwargs: Any) -> Path:
    """Render the page and save a PNG of its first ``width`` x ``height`` pixels."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    proc = chromium(html_path, f"--screenshot={png_path}", f"--window-size={width},{height}", **kwargs)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return png_path


def dump_dom(html_path: str | os.PathLike, **kwargs: Any) -> str:
    """The DOM after the page loaded and its scripts ran, serialised."""
    proc = chromium(html_path, "--dump-dom", **kwargs)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return proc.stdout

