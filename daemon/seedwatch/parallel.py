"""Use both cores: parse and normalize in worker processes, the rest in the daemon.

parse and normalize are pure functions of (feed, fetched body, now): they run in a process pool
and hand back plain values (pickled dataclasses). Scoring and matching stay in the calling
thread because the classifier learns from the stream (``observe``) and must see items in the
order they are stored; the database writes stay in the daemon as before.

    pool = ParsePool()                        # once, at start (fork before threads are busy)
    done = pool.process(feed, result, now=now, scorer=..., matcher=...)   # instead of process()
    pool.close()

A body too small to be worth the trip (the pickling costs more than the parse) is parsed
inline.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from seedwatch.normalize import normalize_feed
from seedwatch.parse import parse
from seedwatch.pipeline import Matcher, Processed, Scorer, process_items
from seedwatch.types import FeedRef, FetchResult, Item, ParsedFeed

log = logging.getLogger(__name__)

INLINE_BELOW = 4096  # bytes of body parsed in the calling thread


def parse_normalize(
    feed: FeedRef, result: FetchResult, now: datetime
) -> tuple[ParsedFeed, tuple[Item, ...]]:
    """The pure front half of the pipeline (runs in a worker process)."""
    parsed = parse(result)
    items = normalize_feed(feed, parsed, fetched_at=now, base_url=result.url)
    return parsed, tuple(items)


class ParsePool:
    """A process pool for ``parse_normalize``; ``workers=0`` parses inline (tests, 1 core)."""

    def __init__(self, workers: int | None = None) -> None:
        n = (os.cpu_count() or 1) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if n > 0:
            # spawn, not fork: the daemon has threads and open database connections.
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx)

    def parse(self, feed: FeedRef, result: FetchResult, now: datetime
              ) -> tuple[ParsedFeed, tuple[Item, ...]]:
        body = result.body or b""
        if self._pool is None or len(body) < INLINE_BELOW:
            return parse_normalize(feed, result, now)
        return self._pool.submit(parse_normalize, feed, result, now).result()

    def process(
        self,
        feed: FeedRef,
        result: FetchResult,
        *,
        now: datetime,
        scorer: Scorer,
        matcher: Matcher,
    ) -> Processed:
        """``pipeline.process`` with the parse in a worker process; same result."""
        parsed, items = self.parse(feed, result, now)
        return Processed(parsed, process_items(feed, items, scorer=scorer, matcher=matcher))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
