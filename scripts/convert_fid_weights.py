"""Resolve (and if needed convert) the offline FID Inception weights; optionally time feature extraction.

    python scripts/convert_fid_weights.py [--cache-dir .cache] [--weights-path FILE] [--bench 64]
"""

from __future__ import annotations

import argparse
import time

import torch

from upsample_zoo.metrics import fid, fid_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", default=".cache", help="the app's ${paths.cache_dir}")
    p.add_argument("--weights-path", default=None, help="metrics.fid.weights_path, if set")
    p.add_argument("--bench", type=int, default=0, help="time Inception on this many 32x32 images")
    p.add_argument("--batch-size", type=int, default=50)
    args = p.parse_args()

    t0 = time.perf_counter()
    w = fid_weights.resolve_fid_weights(args.cache_dir, args.weights_path)
    print(f"{w.source}: {w.path} ({w.path.stat().st_size:,} bytes, digest {w.digest[:16]}) "
          f"in {time.perf_counter() - t0:.2f} s")
    if args.bench:
        metric = fid.build_fid_metric(args.cache_dir, args.weights_path)
        x = torch.randint(0, 256, (args.bench, 3, 32, 32), dtype=torch.uint8)
        with torch.inference_mode():
            metric.inception(x[: args.batch_size])  # warm-up
            t0 = time.perf_counter()
            for batch in x.split(args.batch_size):
                metric.inception(batch)
            dt = time.perf_counter() - t0
        print(f"Inception features: {args.bench / dt:.1f} img/s ({torch.get_num_threads()} threads, "
              f"batch {args.batch_size})")


if __name__ == "__main__":
    main()
