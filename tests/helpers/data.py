"""Real data for tests: a few images streamed out of the shared CIFAR-10 JPEG archive."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path


def extract_subset(archive: Path, dest: Path, want: dict[str, int]) -> dict[str, int]:
    """Stream the archive and write the first ``want[split]`` JPEGs of each split (no full extraction)."""
    got = dict.fromkeys(want, 0)
    pattern = re.compile(r"^(?:\./)?(train|test)/([a-z]+)/(\d+)\.jpg$")
    with tarfile.open(archive, "r|gz") as tf:
        for m in tf:
            match = pattern.match(m.name)
            if not m.isfile() or not match or got[match[1]] >= want[match[1]]:
                continue
            out = dest / match[1] / match[2] / f"{match[3]}.jpg"  # rebuilt from the match: no path tricks
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tf.extractfile(m).read())
            got[match[1]] += 1
            if got == want:
                break
    return got
