"""One poll pass: claim due feeds, then for each (in a worker pool, politely per host)

    fetch -> pipeline.process -> storage.store_batch -> storage.record_fetch

One feed's failure is recorded against that feed and never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from seedwatch import metrics
from seedwatch.errors import FeedError, GoneError, HTTPStatusError, SeedwatchError, redact_url
from seedwatch.fetch import fetch, make_session
from seedwatch.pipeline import process
from seedwatch.runtime import Runtime
from seedwatch.schedule import PollOutcome, next_check
from seedwatch.storage import queries
from seedwatch.types import FeedRef, FetchResult, StoreOutcome

log = logging.getLogger(__name__)

_local = threading.local()


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


def poll_feed(rt: Runtime, feed: FeedRef, *, force: bool = False) -> StoreOutcome:
    """Poll one feed end to end. Raises nothing for feed problems: they are recorded."""
    cfg = rt.config
    result: FetchResult | None = None
    error: FeedError | None = None
    outcome = StoreOutcome()
    ttl: float | None = None
    title: str | None = None
    started = time.monotonic()
    try:
        with rt.limiter.slot(feed.url):
            result = fetch(_session(rt), feed, cfg.http, force=force)
        metrics.observe_stage("fetch", time.monotonic() - started)
        unchanged = result.not_modified or (
            result.body_hash is not None and result.body_hash == feed.last_hash
        )
        if not unchanged:
            now = rt.clock.now()
            t0 = time.monotonic()
            done = process(feed, result, now=now, scorer=rt.classifier, matcher=rt.watchlist)
            metrics.observe_stage("process", time.monotonic() - t0)
            title = done.feed.title or None
            if done.feed.ttl_minutes:
                ttl = done.feed.ttl_minutes * 60.0
            t0 = time.monotonic()
            with rt.write_lock, rt.sessions() as s:
                outcome = queries.store_batch(
                    s,
                    feed.id,
                    done.items,
                    now=now,
                    story_lookup=rt.stories.find,
                )
            if outcome.new_items:
                _index_new(rt, outcome)
            metrics.observe_stage("store", time.monotonic() - t0)
    except FeedError as e:
        error = e
    except SeedwatchError as e:  # storage trouble etc.: record against the feed, keep going
        error = FeedError(feed.url, str(e))
    except Exception as e:  # a bug must not kill the pass; it is logged with its traceback
        log.exception("poll: unexpected error feed=%s", feed.name)
        error = FeedError(feed.url, f"internal error: {type(e).__name__}")
    _record(rt, feed, result, error, ttl=ttl, title=title)
    status = "error" if error else ("not_modified" if result and result.not_modified else "ok")
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


def _index_new(rt: Runtime, outcome: StoreOutcome) -> None:
    """Teach the story index and the classifier the items just stored."""
    with rt.write_lock, rt.sessions() as s:
        for item, story_id in queries.items_with_stories(s, outcome.new_items):
            rt.stories.add(item, story_id)
            # The classifier learns word statistics and its calibration from the stream.
            rt.classifier.observe(item.title, item.text)


def _record(
    rt: Runtime,
    feed: FeedRef,
    result: FetchResult | None,
    error: FeedError | None,
    *,
    ttl: float | None,
    title: str | None,
) -> None:
    cfg = rt.config
    now = rt.clock.now()
    with rt.write_lock, rt.sessions() as s:
        prior_errors = queries.feed_error_count(s, feed.id)
        retry_after = error.retry_after if isinstance(error, HTTPStatusError) else None
        po = PollOutcome(
            ok=error is None,
            error_count=prior_errors + 1 if error else 0,
            retry_after=retry_after,
            ttl=ttl,
        )
        when = next_check(
            now, po, interval=queries.feed_interval(s, feed.id), schedule=cfg.schedule,
            rng=rt.rng,
        )
        health = queries.record_fetch(
            s, feed.id, now=now, next_check=when, result=result, error=error, title=title,
            failing_after=cfg.schedule.failing_after,
        )
        op = cfg.operator_channel
        if op:
            if error is not None and health.error_count == cfg.schedule.failing_after:
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
        s.commit()


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
    with rt.write_lock, rt.sessions() as s:
        feeds = queries.claim_due_feeds(
            s, rt.clock.now(), limit=max(cfg.schedule.workers * 16, 64), owner=rt.owner,
            lease=cfg.schedule.lease, all_feeds=all_feeds,
        )
    report.feeds = len(feeds)
    if not feeds:
        return report
    lock = threading.Lock()

    def one(feed: FeedRef) -> None:
        if stop is not None and stop.is_set():
            return  # left due: its lease expires and the next start polls it
        res: StoreOutcome | None = None
        err: FeedError | None = None
        try:
            res = poll_feed(rt, feed, force=all_feeds)
        except FeedError as e:
            err = e
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

    with ThreadPoolExecutor(max_workers=cfg.schedule.workers, thread_name_prefix="poll") as pool:
        list(pool.map(one, feeds))
    return report
