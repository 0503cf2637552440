"""Embedded datasets, generated deterministically on first use and written atomically: ``ensure_built`` builds
a set once (under a file lock, into a temp dir, then one rename) and refuses a folder built with other
parameters. The sets themselves: ``voc_synthetic.py`` and ``cifar_synthetic.py``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)


def ensure_built(root: Path, params: dict, build: Callable[[Path, dict], None]) -> Path:
    """Build ``root`` once: under a file lock, into a temp dir beside it, then rename.

    Concurrent sweep jobs wait on the lock instead of building twice, and a crash mid-build leaves
    only a temp dir, never a half-written ``root``. ``meta.json`` (written last) marks completion.
    """
    root = Path(root)
    meta_path = root / "meta.json"
    if meta_path.exists():
        _check_meta(meta_path, params)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        if meta_path.exists():
            _check_meta(meta_path, params)
            return root
        if root.exists():  # a leftover from an interrupted non-atomic copy: never trust it
            shutil.rmtree(root)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        try:
            build(tmp, params)
            (tmp / "meta.json").write_text(json.dumps(params, indent=1, sort_keys=True))
            os.rename(tmp, root)
            log.info("built %s (pid %d) in %.1f s", root, os.getpid(), time.perf_counter() - t0)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def _check_meta(meta_path: Path, params: dict) -> None:
    from upsample_zoo.errors import DataError

    have = json.loads(meta_path.read_text())
    if have != json.loads(json.dumps(params)):
        raise DataError(
            f"{meta_path.parent} was generated with other parameters ({have}); delete it or point "
            "data.root elsewhere to generate the requested set"
        )
