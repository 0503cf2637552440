"""``python -m upsample_zoo.bench``: the same as ``upsample-zoo bench``."""

from upsample_zoo.bench.cli import main

raise SystemExit(main())
