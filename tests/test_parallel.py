"""parallel.PreparePool: the worker processes give what the calling thread would, errors come
back as the same FeedError, and a worker that dies costs one feed a recorded error, not the pool."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seedwatch.classify import Analysis, analyze
from seedwatch.config.model import RuleConfig, WatchlistConfig
from seedwatch.errors import ParseError
from seedwatch.parallel import INLINE_BELOW, PreparePool
from seedwatch.pipeline import Prepared, judge, prepare
from seedwatch.rules import Watchlist, compile_watchlist
from seedwatch.stories.fingerprint import Fingerprint, fingerprint
from seedwatch.stories.settings import StorySettings
from seedwatch.types import FeedRef, FetchResult, Score

FEED = FeedRef(id=7, url="http://news.test/feed.xml", name="news")
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = StorySettings()


def _rss(n: int) -> bytes:
    items = "".join(
        f"<item><title>Border guards of Tajikistan report incident {i}</title>"
        f"<link>http://news.test/{i}</link><guid>g{i}</guid>"
        f"<pubDate>Sat, 28 Nov 2026 {i % 12:02d}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;Officials in Dushanbe said {i} militants crossed the "
        f"border near Khorog; the security service opened a case.&lt;/p&gt;</description></item>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<link>http://news.test/</link><ttl>30</ttl>{items}</channel></rss>"
    ).encode()


def _result(body: bytes) -> FetchResult:
    return FetchResult(
        requested_url=FEED.url, url=FEED.url, status=200,
        headers=(("content-type", "application/rss+xml"),), body=body,
    )


def _plain(fp: Fingerprint) -> tuple[object, ...]:
    # Fingerprints hold numpy arrays (no ==): compare their fields as lists.
    return tuple(v.tolist() if hasattr(v, "tolist") else v for v in astuple(fp))


def _comparable(p: Prepared) -> tuple[object, ...]:
    prints = tuple(_plain(fp) for fp in p.fingerprints)
    return (p.feed, p.dates, p.items, p.analyses, prints)


@pytest.fixture
def pool() -> Iterator[PreparePool]:
    p = PreparePool(2)
    yield p
    p.close()


def _run(pool: PreparePool, body: bytes) -> Prepared:
    return pool.prepare(FEED, _result(body), now=NOW, analyzer=analyze, stories=SETTINGS)


def test_worker_gives_what_the_calling_thread_gives(pool: PreparePool) -> None:
    body = _rss(20)
    assert len(body) >= INLINE_BELOW
    inline = prepare(FEED, _result(body), now=NOW, analyzer=analyze, stories=SETTINGS)
    before = set(multiprocessing.active_children())
    remote = _run(pool, body)
    assert set(multiprocessing.active_children()) - before, "no worker process was started"
    assert len(remote.items) == 20
    assert remote.feed.items == ()  # the raw entries stay in the worker
    assert remote.feed.ttl_minutes == 30 and len(remote.dates) == 20
    assert _comparable(remote) == _comparable(inline)


def test_parse_error_in_a_worker_comes_back_as_parse_error(pool: PreparePool) -> None:
    body = b"<html><body>" + b"not a feed " * (INLINE_BELOW // 8) + b"</body></html>"
    with pytest.raises(ParseError) as raised:
        _run(pool, body)
    assert raised.value.url == FEED.url
    assert raised.value.message


def test_a_dead_worker_costs_one_feed_then_the_pool_is_rebuilt(pool: PreparePool) -> None:
    _run(pool, _rss(20))  # starts the workers
    workers = [p for p in multiprocessing.active_children() if p.pid is not None]
    assert workers
    for p in workers:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(p.is_alive() for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ParseError, match="parser process died"):
        _run(pool, _rss(20))
    assert len(_run(pool, _rss(20)).items) == 20


def test_inline_pool_starts_no_process() -> None:
    pool = PreparePool(0)
    before = set(multiprocessing.active_children())
    assert len(_run(pool, _rss(20)).items) == 20
    assert set(multiprocessing.active_children()) == before
    pool.close()


def test_stored_items_are_fingerprinted_in_the_workers_in_order(pool: PreparePool) -> None:
    # The start-up rebuild of the story index: many batches, more than are kept in flight.
    items = prepare(FEED, _result(_rss(60)), now=NOW, analyzer=analyze, stories=SETTINGS).items
    batches = [items[i : i + 7] for i in range(0, len(items), 7)]
    before = set(multiprocessing.active_children())
    got = [fp for prints in pool.fingerprints(batches, SETTINGS) for fp in prints]
    assert set(multiprocessing.active_children()) - before, "no worker process was started"
    assert [_plain(fp) for fp in got] == [_plain(fingerprint(it, SETTINGS)) for it in items]


def test_fingerprinting_survives_a_dead_worker(pool: PreparePool) -> None:
    items = prepare(FEED, _result(_rss(20)), now=NOW, analyzer=analyze, stories=SETTINGS).items
    list(pool.fingerprints([items[:1]], SETTINGS))  # starts the workers
    for p in multiprocessing.active_children():
        if p.pid is not None:
            os.kill(p.pid, signal.SIGKILL)
    time.sleep(0.5)
    got = [fp for prints in pool.fingerprints([items[:10], items[10:]], SETTINGS) for fp in prints]
    assert [_plain(fp) for fp in got] == [_plain(fingerprint(it, SETTINGS)) for it in items]


def _watchlist(*rules: RuleConfig) -> Watchlist:
    return compile_watchlist(WatchlistConfig(path=Path("/nonexistent/watchlist.toml"), rules=rules))


class _FixedScores:
    """Every item gets the same verdict: the rules' score filters are what is tested."""

    def __init__(self, score: float) -> None:
        self.score = Score(score=score, topic="security", relevant=score >= 0.5)

    def score_many(self, analyses: Sequence[Analysis]) -> list[Score]:
        return [self.score] * len(analyses)


def test_rules_are_matched_in_the_worker_and_score_filters_applied_after(
    pool: PreparePool,
) -> None:
    live = _watchlist(
        RuleConfig(name="any", query="militants AND border", channels=("ops",)),
        RuleConfig(name="sure", query="Khorog", channels=("ops",), min_score=0.6),
        RuleConfig(name="never", query="football", channels=("ops",)),
    )
    remote = pool.prepare(
        FEED, _result(_rss(20)), now=NOW, analyzer=analyze, stories=SETTINGS, watch=live
    )
    inline = prepare(FEED, _result(_rss(20)), now=NOW, analyzer=analyze, stories=SETTINGS)
    assert remote.watch_version == live.version and remote.matched is not None
    assert {m.rule for found in remote.matched for m in found} == {"any", "sure"}
    for score, rules in ((0.9, {"any", "sure"}), (0.3, {"any"})):
        done = judge(FEED, remote, scorer=_FixedScores(score), matcher=live)
        again = judge(FEED, inline, scorer=_FixedScores(score), matcher=live)
        assert all({m.rule for m in p.matches} == rules for p in done.items)
        # The same matches, terms included, as matching in the daemon gives.
        assert [p.matches for p in done.items] == [p.matches for p in again.items]


def test_an_edited_watchlist_matches_again_in_the_daemon(pool: PreparePool) -> None:
    old = _watchlist(RuleConfig(name="old", query="militants", channels=("ops",)))
    new = _watchlist(RuleConfig(name="new", query="Dushanbe", channels=("ops",)))
    assert old.version != new.version
    prepared = pool.prepare(
        FEED, _result(_rss(20)), now=NOW, analyzer=analyze, stories=SETTINGS, watch=old
    )
    done = judge(FEED, prepared, scorer=_FixedScores(0.9), matcher=new)
    assert all([m.rule for m in p.matches] == ["new"] for p in done.items)
