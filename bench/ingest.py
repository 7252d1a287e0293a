"""End-to-end ingest benchmark (issue 2): seedwatch vs the `reader` library, one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/ingest.py --feeds 300 --items 50

The same measurement as bench/cold_start.py, whose code it runs: N generated feeds served from
a separate process on 127.0.0.1; each contender in its own subprocess (fetch, parse, normalize,
score, match and store for seedwatch; update_feeds into its own SQLite file for reader); items/s,
wall, CPU, peak RSS and the ratio. Kept under this name because issue 2 asks for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/ is not a package: cold_start is imported from beside this file.
from cold_start import main

if __name__ == "__main__":
    main()
