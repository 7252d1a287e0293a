"""seedwatch: poll feeds, fold stories, score against seeds, alert on watch rules.

The pipeline, one module (or package) a stage::

    config/ -> scheduler -> fetch -> parse -> normalize -> stories -> classify/ -> rules/
            -> storage/ (item + story + outbox alerts in one transaction) -> alerts/ (delivery)

``pipeline.prepare`` strings the stateless stages together (in worker processes, see
``parallel``), ``pipeline.judge`` the ones that need the live models; ``daemon`` runs the ticks.
"""

import os

# Before numpy loads: the classifier's matrices are a batch of one feed's items, far too small
# for OpenBLAS's worker threads, which spin while they wait for work. Measured on the cold
# start: the daemon's CPU halved (28 -> 14 CPU-s for 20,000 items) with one thread. A value
# set in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
