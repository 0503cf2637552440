"""comparison.html renders in headless Chromium: non-blank, tables and images present, no injected script runs.

Skips when /usr/bin/chromium is absent (`apt-get install chromium chromium-driver`; .ci/run does it).
UPSAMPLE_ZOO_SCREENSHOT=path.png keeps the screenshot (scripts/screenshot_report.py does the same for any report).
"""

from __future__ import annotations

import os
import shutil

from upsample_zoo.report.browser import chromium, dump_dom, screenshot

from ..helpers.run_if import RunIf
from ..helpers.runs import EVIL_TAG, golden_tree

pytestmark = RunIf(chromium=True)


def test_report_renders_in_headless_chromium(smoke_sweep, tmp_path):
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


MEASURE = """<script>
var out = {page: document.documentElement.scrollWidth, window: window.innerWidth, boxes: []};
document.querySelectorAll("div.scroll").forEach(function (d) {
  var r = d.getBoundingClientRect();
  out.boxes.push({scroll: d.scrollWidth, client: d.clientWidth, right: r.right,
                  overflow: getComputedStyle(d).overflowX});
});
var pre = document.createElement("pre"); pre.id = "measure"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def test_wide_tables_scroll_inside_their_box_at_1280x900(tmp_path):
    """At a 1280x900 window no table runs off the page: the page is never wider than the window, every table box
    ends inside it, and the tables wider than their box (the all-metrics table at least) scroll in it."""
    import json
    import re

    from upsample_zoo.report import compare

    root = golden_tree(tmp_path / "runs")
    page = compare([root / "seg", root / "gan"], out=tmp_path / "out")["html"].read_text(encoding="utf-8")
    # measuring needs a script of our own: drop the page's script policy in this copy only
    probe = tmp_path / "measure.html"
    probe.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
                     .replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    proc = chromium(probe, "--dump-dom", "--window-size=1280,900")
    m = json.loads(re.search(r'<pre id="measure">(.*?)</pre>', proc.stdout, re.S).group(1).replace("&quot;", '"'))
    assert m["window"] == 1280 and m["page"] <= m["window"], m
    assert m["boxes"] and all(b["overflow"] == "auto" and b["right"] <= m["window"] for b in m["boxes"])
    wide = [b for b in m["boxes"] if b["scroll"] > b["client"]]
    assert wide, "no table is wider than its box: the test page no longer tests scrolling"
