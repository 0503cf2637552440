"""The init-time checkerboard probe: `python scripts/probe_init.py [--seeds 5] [--out logs/probe] [--quick]`."""
import sys

from upsample_zoo.probe import main

if __name__ == "__main__":
    sys.exit(main())
