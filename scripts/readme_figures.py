"""The README's figures for a GAN sweep, from its run folders: one sample grid per upsampler (the first seed's
``samples.png``, side by side) and the report's azimuthal-spectrum plot against real, as PNG files.

    python scripts/readme_figures.py logs/gan/multiruns/<sweep> docs/cifar10
    -> docs/cifar10_samples.png, docs/cifar10_spectrum.png
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from upsample_zoo.report import load_runs, summarize  # noqa: E402
from upsample_zoo.report.charts import spectrum_plot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("prefix", type=Path, help="output path prefix: <prefix>_samples.png, <prefix>_spectrum.png")
    parser.add_argument("--baseline", default="bilinear")
    args = parser.parse_args()
    cmp = summarize(load_runs([args.sweep]), baseline=args.baseline)
    section = cmp.sections[0]
    grids = []
    for g in section.groups:
        run = min(g.ok_runs, key=lambda r: r.seed if r.seed is not None else 0, default=None)
        if run is not None and (run.run_dir / "samples.png").is_file():
            grids.append((f"{g.upsampler} (seed {run.seed})", Image.open(run.run_dir / "samples.png")))
    cols = min(4, len(grids))
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img) in zip(axes.flat, grids):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    args.prefix.parent.mkdir(parents=True, exist_ok=True)
    samples = args.prefix.with_name(args.prefix.name + "_samples.png")
    fig.savefig(samples, dpi=110)
    spectrum = args.prefix.with_name(args.prefix.name + "_spectrum.png")
    uri = spectrum_plot(section)
    if uri:
        spectrum.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    print(samples, spectrum if uri else "(no spectra)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
