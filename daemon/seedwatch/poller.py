"""One poll pass: claim due feeds, then for each (in a worker pool, politely per host)

    fetch -> pipeline.prepare (in a worker process) -> pipeline.judge
          -> storage.store_batch -> storage.record_fetch

One feed's failure is recorded against that feed and never stops the others. Between polls
the poller remembers, per feed, when it last got a whole body, how often the feed publishes
and whether the operator was told it went stale (``storage.feeds.PollState``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import requests
from sqlalchemy.orm import Session

from seedwatch import metrics
from seedwatch.alerts.schedule import not_before_for
from seedwatch.classify import Analysis
from seedwatch.errors import (
    FeedError,
    GoneError,
    HTTPStatusError,
    SeedwatchError,
    TooLargeError,
    redact_url,
)
from seedwatch.fetch import fetch, make_session
from seedwatch.pipeline import Prepared, Processed, judge, without
from seedwatch.runtime import Runtime
from seedwatch.schedule import (
    PollOutcome,
    adaptive_interval,
    cache_lifetime,
    full_fetch_due,
    is_stale,
    next_check,
    publishing_gap,
)
from seedwatch.storage import queries
from seedwatch.storage.feeds import (
    Deferred,
    FeedHealth,
    PollContext,
    PollState,
    poll_context,
    run_deferred,
)
from seedwatch.storage.leases import renew_feed_lease
from seedwatch.textutil import html_to_text, one_line
from seedwatch.types import FeedRef, FetchResult, Item, StoreOutcome

log = logging.getLogger(__name__)

_local = threading.local()

# feedparser and the sanitizer need roughly ten times a body's size while parsing it (a 12 MB
# body peaked at ~140 MB). Large bodies are parsed one at a time, so the daemon's peak memory
# is one large parse, not ``workers`` of them.
LARGE_BODY = 1024 * 1024
MAX_TITLE = 500
# Feeds claimed per pass and fetching thread. A pass has a fixed cost (the claim, the last
# records' commit, threads waking) and ends with every thread but one idle, waiting for the
# pass's slowest feed (up to the fetch deadline): at 16 per thread a round over 10,000 due
# feeds took 80 passes, at 64 it takes 20 (steady_state.py, same run: 4,000 feeds 3.97/4.61 ->
# 3.61/4.22 CPU-s; 10,000 feeds 10.85/10.80 -> 10.39/11.29, within the noise). Feeds waiting
# in a pass past a quarter of the lease renew it (see poll_due), so a long pass loses none.
CLAIM_PER_WORKER = 64
_large_parse = threading.BoundedSemaphore(1)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  # glibc only: musl and others lack it
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load_libc() if sys.platform.startswith("linux") else None
if _libc is not None:
    # M_ARENA_MAX: glibc gives each worker thread its own heap arena (up to 8 per core), and
    # memory freed in one is not reused by another, so a pass over large feeds piles up RSS.
    # Two arenas keep the contention low and the peak bounded (mallopt(3)).
    _libc.mallopt(-8, 2)
    # M_MMAP_THRESHOLD: blocks from 256 KiB up (numpy temporaries of a batch, large bodies)
    # get their own mapping, returned to the system when freed. Left to glibc, the threshold
    # rises after the first such free, and they are carved from the heap, which then holds
    # the high-water mark of every pass (measured: 630 MB RSS with 84 MB in use).
    _libc.mallopt(-3, 256 * 1024)


@contextlib.contextmanager
def _large_parse_slot() -> Iterator[None]:
    """Hold the one large-parse slot; afterwards hand the freed heap back to the system.

    glibc keeps freed memory in per-thread arenas and raises its mmap threshold after a big
    free, so parses done one at a time in different worker threads still add up in RSS
    (measured: 360 MB vs 480-870 MB for the hostile set). malloc_trim releases it.
    """
    with _large_parse:
        try:
            yield
        finally:
            _trim_heap()


def _trim_heap() -> None:
    if _libc is not None:
        _libc.malloc_trim(0)


def _session(rt: Runtime) -> requests.Session:
    """One requests Session per worker thread (Session is not safe to share across threads)."""
    sess: requests.Session | None = getattr(_local, "session", None)
    if sess is None or getattr(_local, "http", None) is not rt.config.http:
        sess = make_session(rt.config.http)
        _local.session = sess
        _local.http = rt.config.http
    return sess


@dataclass
class PassReport:
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    failed: int = 0
    new_items: int = 0
    duplicates: int = 0
    alerts: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Seen:
    """What one poll learnt, for scheduling and the feed's poll state."""

    result: FetchResult | None = None
    done: Processed | None = None
    outcome: StoreOutcome = field(default_factory=StoreOutcome)
    # Read once before the fetch and reused when recording (the feed is leased to us).
    context: PollContext | None = None


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status and 100 <= status < 600 else "none"


def poll_feed(
    rt: Runtime,
    feed: FeedRef,
    *,
    force: bool = False,
    context: PollContext | None = None,
    records: _Records | None = None,
) -> StoreOutcome:
    """Poll one feed end to end. Raises the FeedError it recorded when the poll failed.

    ``context``: the feed's poll context when the caller has just read it (renewing the
    lease reads it in the same statement). ``records``: where a quiet poll's record may wait
    for a shared commit (the caller flushes it); without it, every poll commits its own."""
    cfg = rt.config
    seen = _Seen(context=context)
    error: FeedError | None = None
    started = time.monotonic()
    try:
        if seen.context is None:
            with rt.sessions() as s:
                seen.context = poll_context(s, feed.id)
        ctx = seen.context
        interval = ctx.interval or cfg.schedule.interval
        full = force or full_fetch_due(ctx.state.full_at, rt.clock.now(), interval)
        with rt.limiter.slot(feed.url):
            seen.result = fetch(_session(rt), feed, cfg.http, force=full)
        metrics.observe_stage("fetch", time.monotonic() - started)
        metrics.HTTP_STATUS.labels(_status_class(seen.result.status)).inc()
        result = seen.result
        # A body identical to the last one parsed is not parsed again (servers without
        # validators, and our periodic unconditional fetches, send the same bytes).
        unchanged = result.not_modified or (
            result.body_hash is not None and result.body_hash == feed.last_hash
        )
        if not unchanged:
            now = rt.clock.now()
            t0 = time.monotonic()
            big = len(result.body) > LARGE_BODY
            with _large_parse_slot() if big else contextlib.nullcontext():
                prepared = rt.prepare_pool.prepare(
                    feed, result, now=now, analyzer=rt.classifier.analyzer,
                    stories=rt.stories.settings, watch=rt.watchlist,
                )
            # Items the feed already holds are left out before scoring and matching: a
            # changed document mostly repeats them, and they would only be counted as
            # duplicates after paying for both.
            with rt.sessions() as s:
                known = queries.known_keys(s, feed.id, [it.key for it in prepared.items])
            repeated = len(prepared.items)
            prepared = without(prepared, known)
            repeated -= len(prepared.items)
            seen.done = judge(feed, prepared, scorer=rt.classifier, matcher=rt.watchlist)
            metrics.observe_stage("process", time.monotonic() - t0)
            t0 = time.monotonic()
            rules = [r.config for r in rt.watchlist.rules]
            position = {it.key: i for i, it in enumerate(prepared.items)}

            def story_of(items: Sequence[Item]) -> list[int | None]:
                prints = [prepared.fingerprints[position[it.key]] for it in items]
                return [m.story_id if m else None for m in rt.stories.match_many(prints)]

            with rt.write_lock, rt.sessions() as s:
                seen.outcome = queries.store_batch(
                    s,
                    feed.id,
                    seen.done.items,
                    now=now,
                    story_lookup=story_of,
                    # Digest rules and quiet hours hold their alerts until they may go out.
                    not_before=not_before_for(rules, now),
                    follow_up={
                        r.name: r.follow_up_outlets for r in rules if r.follow_up_outlets
                    },
                )
                # Under the same lock: the next feed's lookup must see these items.
                _index_new(rt, seen.outcome, prepared, position)
            if repeated:
                seen.outcome = replace(
                    seen.outcome, duplicates=seen.outcome.duplicates + repeated
                )
            metrics.observe_stage("store", time.monotonic() - t0)
    except FeedError as e:
        error = e
        if isinstance(e, TooLargeError):
            _trim_heap()  # up to max_bytes were decoded and dropped in this thread's arena
        if isinstance(e, HTTPStatusError):
            metrics.HTTP_STATUS.labels(_status_class(e.status)).inc()
    except SeedwatchError as e:  # storage trouble etc.: record against the feed, keep going
        error = FeedError(feed.url, str(e))
    except Exception as e:  # a bug must not kill the pass; it is logged with its traceback
        log.exception("poll: unexpected error feed=%s", feed.name)
        error = FeedError(feed.url, f"internal error: {type(e).__name__}")
    t0 = time.monotonic()
    _record(rt, feed, seen, error, records)
    metrics.observe_stage("record", time.monotonic() - t0)
    got = seen.result
    outcome = seen.outcome
    status = "error" if error else ("not_modified" if got and got.not_modified else "ok")
    if error is None and got is not None and not got.not_modified and seen.done is None:
        status = "unchanged"
    metrics.POLLS.labels(outcome=status).inc()
    if error is not None:
        log.warning(
            "poll: failed feed=%s url=%s status=%s error=%s",
            feed.name, redact_url(feed.url), getattr(error, "status", "-"), error.message,
        )
    else:
        log.info(
            "poll: done feed=%s status=%s new=%d duplicates=%d alerts=%d",
            feed.name, status, len(outcome.new_items), outcome.duplicates, len(outcome.alerts),
        )
    metrics.ITEMS.labels(kind="new").inc(len(outcome.new_items))
    metrics.ITEMS.labels(kind="duplicate").inc(outcome.duplicates)
    if error is not None:
        raise error
    return outcome


def _index_new(
    rt: Runtime, outcome: StoreOutcome, prepared: Prepared, position: Mapping[str, int]
) -> None:
    """Teach the story index and the classifier the items just stored (caller holds
    ``rt.write_lock``); ``position``: item key -> its place in ``prepared``."""
    if not outcome.stories:
        return
    learnt: list[Analysis] = []
    for key, story_id in outcome.stories:
        i = position[key]
        rt.stories.add_fingerprint(prepared.fingerprints[i], story_id)
        learnt.append(prepared.analyses[i])
    # The classifier learns word statistics and its calibration from the stream.
    rt.classifier.observe_analyzed(learnt)


def _learn(prior: PollState, seen: _Seen, now: datetime) -> PollState:
    """The feed's poll state after a successful poll."""
    st = prior
    result = seen.result
    if result is not None and not result.not_modified:
        st = replace(st, full_at=now)
    done = seen.done
    if done is not None:
        dates = done.prepared.dates
        candidates = [min(d, now) for d in dates]
        if prior.newest is not None:
            candidates.append(min(prior.newest, now))
        if not dates and seen.outcome.new_items:
            candidates.append(now)  # undated items: something new appeared now
        newest = max(candidates) if candidates else None
        gap = publishing_gap(dates, now=now)
        feed = done.prepared.feed
        ttl = feed.ttl_minutes * 60.0 if feed.ttl_minutes else None
        st = replace(st, newest=newest, gap=gap if gap is not None else prior.gap, ttl=ttl)
    return st


class _Records:
    """Poll records that share one commit: the quiet polls of a pass (nothing stored, no
    error) are written ``FLUSH_EVERY`` at a time instead of one transaction each; a 304's
    whole bookkeeping is one UPDATE, and the commit and session around it cost as much."""

    FLUSH_EVERY = 32

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lock = threading.Lock()
        self._todo: list[Callable[[Session, Deferred | None], None]] = []

    def add(self, write: Callable[[Session, Deferred | None], None]) -> None:
        with self._lock:
            self._todo.append(write)
            full = len(self._todo) >= self.FLUSH_EVERY
        if full:
            self.flush()

    def flush(self) -> None:
        """Write what is waiting, in one transaction. If it fails, those feeds keep their
        leases until they expire and are polled again (a 304 costs nothing twice)."""
        with self._lock:
            todo, self._todo = self._todo, []
        if todo:
            with self.rt.write_lock, self.rt.sessions() as s:
                # The feeds' UPDATEs, alike in shape, go out together as executemany.
                deferred: Deferred = {}
                for write in todo:
                    write(s, deferred)
                run_deferred(s, deferred)
                s.commit()


def _record(
    rt: Runtime, feed: FeedRef, seen: _Seen, error: FeedError | None, records: _Records | None
) -> None:
    cfg = rt.config
    now = rt.clock.now()
    result = seen.result
    done = seen.done

    def write(s: Session, defer: Deferred | None) -> None:
        ctx = seen.context if seen.context is not None else poll_context(s, feed.id)
        prior = ctx.state
        state = _learn(prior, seen, now) if error is None else prior
        lifetimes = [state.ttl] if state.ttl else []
        if error is None and result is not None:
            cached = cache_lifetime(dict(result.headers), now)
            if cached:
                lifetimes.append(cached)
        retry_after = error.retry_after if isinstance(error, HTTPStatusError) else None
        po = PollOutcome(
            ok=error is None,
            error_count=ctx.error_count + 1 if error else 0,
            retry_after=retry_after,
            ttl=max(lifetimes) if lifetimes else None,
        )
        interval = rt.configured_interval(feed)
        if interval is None:
            interval = adaptive_interval(state.gap, cfg.schedule)
        if interval is None:
            interval = ctx.interval
        when = next_check(now, po, interval=interval, schedule=cfg.schedule, rng=rt.rng)
        # feedparser hands titles over as (sanitized) HTML; the feed's title is shown in
        # alerts and `status`, so it is stored as one line of plain text like item titles.
        title = (
            one_line(html_to_text(done.prepared.feed.title))[:MAX_TITLE] if done is not None
            else ""
        )
        stale = error is None and is_stale(state.newest, state.gap, now, last_success=now)
        if error is None:
            state = replace(state, stale=stale)
        health = queries.record_fetch(
            s, feed.id, now=now, next_check=when, result=result if error is None else None,
            error=error, title=title or None, failing_after=cfg.schedule.failing_after,
            context=ctx, poll_state=state, defer=defer,
        )
        op = cfg.operator_channel
        if op:
            _tell_operator(s, rt, feed, op, error, health, now)
            if stale and not prior.stale:
                assert state.newest is not None
                queries.enqueue_operator_alert(
                    s, channel=op, kind="feed_stale", key=f"{feed.id}:{state.newest.isoformat()}",
                    title=f"seedwatch: feed stale: {feed.name}",
                    body=(f"{feed.name} ({redact_url(feed.url)}) answers but has published "
                          f"nothing since {state.newest:%Y-%m-%d %H:%M} UTC, much longer than "
                          "its usual rate."),
                    now=now,
                )

    if records is not None and error is None and not seen.outcome.new_items:
        records.add(write)
        return
    with rt.write_lock, rt.sessions() as s:
        write(s, None)
        s.commit()


def _tell_operator(
    s: Session,
    rt: Runtime,
    feed: FeedRef,
    op: str,
    error: FeedError | None,
    health: FeedHealth,
    now: datetime,
) -> None:
    """One "failing" alert per failure streak, one "recovered" after it, one "gone"."""
    failing_after = rt.config.schedule.failing_after
    if error is not None and health.error_count == failing_after:
        queries.enqueue_operator_alert(
            s, channel=op, kind="feed_failing", key=str(feed.id),
            title=f"seedwatch: feed failing: {feed.name}",
            body=(f"{feed.name} ({redact_url(feed.url)}) failed "
                  f"{health.error_count} times in a row; last error: {error.message}. "
                  f"seedwatch keeps retrying with backoff."),
            now=now,
        )
    if isinstance(error, GoneError):
        queries.enqueue_operator_alert(
            s, channel=op, kind="feed_gone", key=str(feed.id),
            title=f"seedwatch: feed gone (410): {feed.name}",
            body=f"{feed.name} ({redact_url(feed.url)}) answered 410 Gone; "
                 "polling stopped. Remove it from the config or fix the URL.",
            now=now,
        )
    if error is None and health.was_failing:
        queries.enqueue_operator_alert(
            s, channel=op, kind="feed_recovered", key=f"{feed.id}:{now.isoformat()}",
            title=f"seedwatch: feed recovered: {feed.name}",
            body=f"{feed.name} ({redact_url(feed.url)}) works again.",
            now=now,
        )


def poll_due(
    rt: Runtime,
    *,
    all_feeds: bool = False,
    stop: threading.Event | None = None,
    on_done: Callable[[FeedRef, StoreOutcome | None, FeedError | None], None] | None = None,
) -> PassReport:
    """Claim due feeds (every active feed with ``all_feeds``) and poll them in a pool."""
    report = PassReport()
    cfg = rt.config
    metrics.refresh_gauges(rt.sessions, rt.clock.now(), min_age=metrics.GAUGE_REFRESH)
    claimed_at = rt.clock.now()
    with rt.write_lock, rt.sessions() as s:
        polls = queries.claim_due_polls(
            s, claimed_at, limit=max(cfg.schedule.workers * CLAIM_PER_WORKER, 256), owner=rt.owner,
            lease=cfg.schedule.lease, all_feeds=all_feeds,
        )
    report.feeds = len(polls)
    if not polls:
        return report
    contexts = {feed.id: context for feed, context in polls}
    lock = threading.Lock()
    # A feed waiting in this pass for a worker may outlive its lease, and another daemon may
    # claim it meanwhile. Past a quarter of the lease it is renewed (and skipped if that
    # fails) before the fetch; sooner, the claim itself still has three quarters to run.
    renew_after = claimed_at + timedelta(seconds=cfg.schedule.lease / 4)

    def one(feed: FeedRef) -> None:
        if stop is not None and stop.is_set():
            return  # left due: its lease expires and the next start polls it
        now = rt.clock.now()
        context: PollContext | None = contexts[feed.id]
        if now >= renew_after:
            with rt.sessions() as s:
                context = renew_feed_lease(
                    s, feed.id, owner=rt.owner, now=now, lease=cfg.schedule.lease
                )
            if context is None:
                log.info("poll: lease lost, skipping feed=%s", feed.name)
                return
        res: StoreOutcome | None = None
        err: FeedError | None = None
        try:
            res = poll_feed(rt, feed, force=all_feeds, context=context, records=records)
        except FeedError as e:
            err = e
        except SeedwatchError as e:  # recording itself failed (database down): lease expires
            log.error("poll: could not record feed=%s error=%s", feed.name, e)
            err = FeedError(feed.url, str(e))
        with lock:
            if err is not None:
                report.failed += 1
                report.errors.append(f"{feed.name}: {err.message}")
            else:
                report.ok += 1
                assert res is not None
                report.new_items += len(res.new_items)
                report.duplicates += res.duplicates
                report.alerts += len(res.alerts)
        if on_done is not None:
            on_done(feed, res, err)

    # One task per fetching thread, each taking the next feed until none is left: a task
    # (and a Future) per feed cost two thread wake-ups per feed on top of the network's, the
    # executor's queue hand-off and the wait for its result.
    todo = iter([feed for feed, _ in polls])
    take = threading.Lock()

    def drain() -> None:
        while True:
            with take:
                feed = next(todo, None)
            if feed is None:
                return
            one(feed)

    records = _Records(rt)
    try:
        pool = rt.fetchers()
        tasks = [pool.submit(drain) for _ in range(min(cfg.schedule.workers, len(polls)))]
        futures.wait(tasks)  # all of them, even when one raised
        for task in tasks:
            task.result()
    finally:
        records.flush()
    return report
