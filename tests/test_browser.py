"""comparison.html renders in headless Chromium: non-blank, tables and images present, no injected script runs.

Skips when /usr/bin/chromium is absent (`apt-get install chromium chromium-driver`; .ci/run does it).
UPSAMPLE_ZOO_SCREENSHOT=path.png keeps the screenshot (scripts/screenshot_report.py does the same for any report).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from upsample_zoo.report.browser import CHROMIUM, dump_dom, screenshot

from .test_sweep import EVIL_TAG, smoke_sweep  # noqa: F401 - the session-scoped real sweep, run once

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"{CHROMIUM} not found: apt-get install chromium chromium-driver")


def test_report_renders_in_headless_chromium(smoke_sweep, tmp_path):  # noqa: F811
    from PIL import Image

    page = smoke_sweep / "comparison.html"
    png = screenshot(page, tmp_path / "report.png", 1200, 2000)
    if os.environ.get("UPSAMPLE_ZOO_SCREENSHOT"):
        shutil.copyfile(png, os.environ["UPSAMPLE_ZOO_SCREENSHOT"])
    img = Image.open(png).convert("RGB")
    assert img.size == (1200, 2000)
    colors = img.getcolors(maxcolors=1 << 20)
    assert len(colors) > 200, "blank page"  # text, tables and the embedded charts
    white = max(colors)[0] / (img.width * img.height)
    assert white < 0.97, f"{white:.1%} of the page is one colour"

    dom = dump_dom(page)
    assert "<table" in dom and dom.count("<img") >= 3 and "data:image/png;base64," in dom
    assert "<th" in dom and ">nearest<" in dom and ">pixel_shuffle<" in dom
    # the hostile tag is text, not an element: it never ran
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert EVIL_TAG not in dom and dom.count("<script") == 1
    assert "<title>upsample-zoo comparison</title>" in dom
