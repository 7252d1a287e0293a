"""Use every core: ``pipeline.prepare`` (parse, normalize, analyse) in worker processes.

prepare is a pure function of (feed, fetched body, now) and the CPU-heavy half of ingest, so
it runs in a process pool and hands back plain values (pickled dataclasses). Classifying,
matching and the database writes stay in the daemon, which holds the live models.

    pool = PreparePool(workers)               # once; the processes start on first use
    prepared = pool.prepare(feed, result, now=now, analyzer=..., stories=...)
    pool.close()

A body too small to be worth the trip is prepared in the calling thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from seedwatch.errors import ParseError
from seedwatch.pipeline import Analyzer, Prepared, prepare
from seedwatch.stories.settings import StorySettings
from seedwatch.types import FeedRef, FetchResult

log = logging.getLogger(__name__)

# Bytes of body below which the pickling round trip costs more than the parse it would move.
INLINE_BELOW = 2048


def default_workers() -> int:
    """One per core the process may run on; none on a single core (nothing to gain)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


class PreparePool:
    """A process pool for ``pipeline.prepare``; ``workers=0`` prepares inline."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the daemon has threads and open database connections.
                ctx = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
            return self._pool

    def prepare(
        self,
        feed: FeedRef,
        result: FetchResult,
        *,
        now: datetime,
        analyzer: Analyzer,
        stories: StorySettings,
    ) -> Prepared:
        """``pipeline.prepare``, in a worker process when the body is worth it."""
        if self.workers <= 0 or len(result.body or b"") < INLINE_BELOW:
            return prepare(feed, result, now=now, analyzer=analyzer, stories=stories)
        pool = self._executor()
        try:
            return pool.submit(
                prepare, feed, result, now=now, analyzer=analyzer, stories=stories
            ).result()
        except BrokenProcessPool as e:
            # A worker died (killed, out of memory) while this or another body was in it:
            # this feed records the error, and the next body gets a fresh pool.
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            log.error("parse: worker process died feed=%s", feed.name)
            raise ParseError(feed.url, "the parser process died; retried at the next poll") from e

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
