"""Use every core: ``pipeline.prepare`` (parse, normalize, analyse, match) in worker processes.

prepare is a pure function of (feed, fetched body, now) and the CPU-heavy half of ingest, so
it runs in a process pool and hands back plain values (pickled dataclasses). Classifying,
matching and the database writes stay in the daemon, which holds the live models.

    pool = PreparePool(workers)               # once; the processes start on first use
    prepared = pool.prepare(feed, result, now=now, analyzer=..., stories=...)
    for prints in pool.fingerprints(batches_of_items, settings): ...   # at start-up
    pool.close()

A body too small to be worth the trip is prepared in the calling thread.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from seedwatch.config.model import WatchlistConfig
from seedwatch.errors import ParseError
from seedwatch.pipeline import Analyzer, Prepared, prepare
from seedwatch.rules import Watchlist, compile_watchlist
from seedwatch.stories.fingerprint import Fingerprint, fingerprint
from seedwatch.stories.settings import StorySettings
from seedwatch.types import FeedRef, FetchResult, Item

log = logging.getLogger(__name__)

# Bytes of body below which a body is prepared in the calling thread. The round trip to a
# worker (pickling, pipes, the executor's thread hand-offs) costs about 0.8 ms of CPU
# whatever the size; a 2.3 KB body (3 items) takes 1.8 ms to prepare, so sending it costs
# half as much again, a 3.7 KB one a quarter more, a 36 KB one (50 items) 7 % more
# (measured side by side: the same bodies inline and through a pool of two).
INLINE_BELOW = 4096


@functools.lru_cache(maxsize=2)
def _watchlist(source: WatchlistConfig) -> Watchlist:
    """A worker's copy of the daemon's watchlist, compiled once per version (its word caches
    then fill in the worker)."""
    return compile_watchlist(source)


def prepare_in_worker(
    feed: FeedRef,
    result: FetchResult,
    *,
    now: datetime,
    analyzer: Analyzer,
    stories: StorySettings,
    watch: WatchlistConfig | None,
) -> Prepared:
    """``pipeline.prepare`` with the watchlist sent as its source (the compiled one holds an
    automaton and caches, too much to send with every body)."""
    matcher = _watchlist(watch) if watch is not None else None
    return prepare(feed, result, now=now, analyzer=analyzer, stories=stories, watch=matcher)


def fingerprint_all(items: Sequence[Item], settings: StorySettings) -> list[Fingerprint]:
    """The story fingerprints of ``items`` (module level: it pickles by name)."""
    return [fingerprint(it, settings) for it in items]


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
        watch: Watchlist | None = None,
    ) -> Prepared:
        """``pipeline.prepare``, in a worker process when the body is worth it. ``watch``:
        the live watchlist, whose queries are matched there too."""
        if self.workers <= 0 or len(result.body or b"") < INLINE_BELOW:
            return prepare(feed, result, now=now, analyzer=analyzer, stories=stories, watch=watch)
        pool = self._executor()
        source = watch.source if watch is not None else None
        try:
            return pool.submit(
                prepare_in_worker, feed, result, now=now, analyzer=analyzer, stories=stories,
                watch=source,
            ).result()
        except BrokenProcessPool as e:
            # A worker died (killed, out of memory) while this or another body was in it:
            # this feed records the error, and the next body gets a fresh pool.
            self._drop(pool)
            log.error("parse: worker process died feed=%s", feed.name)
            raise ParseError(feed.url, "the parser process died; retried at the next poll") from e

    def fingerprints(
        self, batches: Iterable[Sequence[Item]], settings: StorySettings
    ) -> Iterator[list[Fingerprint]]:
        """The fingerprints of each batch, batch by batch in order, computed in the workers:
        a start-up after a busy day fingerprints hundreds of thousands of stored items again,
        at about 0.2 ms each. A few batches at a time are in flight (bounded memory); a
        batch whose worker died is done in the calling thread."""
        if self.workers <= 0:
            for batch in batches:
                yield fingerprint_all(batch, settings)
            return
        pending: deque[tuple[Sequence[Item], Future[list[Fingerprint]] | None]] = deque()

        def submit(batch: Sequence[Item]) -> None:
            try:
                pending.append((batch, self._executor().submit(fingerprint_all, batch, settings)))
            except BrokenProcessPool:
                self._drop(None)
                pending.append((batch, None))

        def first() -> list[Fingerprint]:
            batch, future = pending.popleft()
            if future is not None:
                try:
                    return future.result()
                except BrokenProcessPool:
                    self._drop(None)
                    log.error("parse: worker process died while fingerprinting stored items")
            return fingerprint_all(batch, settings)

        for batch in batches:
            submit(batch)
            if len(pending) > 2 * self.workers:
                yield first()
        while pending:
            yield first()

    def _drop(self, pool: ProcessPoolExecutor | None) -> None:
        """Forget a broken pool (``pool``, or whichever is current): the next use starts a
        fresh one."""
        with self._lock:
            broken = self._pool if pool is None else pool
            if self._pool is broken:
                self._pool = None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
