"""Screenshot a comparison.html in headless Chromium (the browser test's own code), e.g. for the README.

    python scripts/screenshot_report.py logs/segmentation/multiruns/<time>/comparison.html docs/comparison.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from upsample_zoo.report.browser import CHROMIUM, screenshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    print(screenshot(args.html, args.png, args.width, args.height, chromium_bin=args.chromium))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
