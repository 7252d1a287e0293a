"""Polling politely and never giving up quietly (issue 6): adaptive intervals, cache headers,
backoff with one failing/recovered alert, Retry-After, permanent redirects, 410, stuck ETags,
per-host limits, stale feeds and clock jumps -- through the real poller, on loopback, with an
injected clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from sqlalchemy import text

from seedwatch.classify import Analysis
from seedwatch.config.model import ScheduleConfig
from seedwatch.poller import poll_due
from seedwatch.schedule import (
    cache_lifetime,
    full_fetch_due,
    is_stale,
    publishing_gap,
)
from seedwatch.storage.feeds import get_poll_state, stale_feed_ids
from seedwatch.storage.queries import delete_items
from seedwatch.types import Score
from tests.support.feedserver import FeedServer, rss
from tests.support.pollkit import (
    T0,
    FakeClock,
    FeedSpec,
    operator_alerts,
    start,
    status,
    write_poll_config,
)

DAY = 86400.0


def dated(n: int, *, every: float, newest: datetime) -> str:
    items = []
    for i in range(n):
        when = newest - timedelta(seconds=every * i)
        items.append({"title": f"story {i} {every}", "guid": f"g{every}-{i}",
                      "pubDate": format_datetime(when)})
    return rss(items)


def delay(rt_status_next: datetime, clock: FakeClock) -> float:
    return (rt_status_next - clock.now()).total_seconds()


def send(req: BaseHTTPRequestHandler, status: int, body: bytes = b"",
         headers: dict[str, str] | None = None) -> None:
    req.send_response(status)
    for k, v in (headers or {}).items():
        req.send_header(k, v)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


# -- pure parts -------------------------------------------------------------------------------


def test_publishing_gap_is_median_of_recent_dates() -> None:
    dates = [T0 - timedelta(hours=h) for h in (0, 1, 2, 3, 30)]
    assert publishing_gap(dates, now=T0) == 3600
    assert publishing_gap(dates[:2], now=T0) is None
    # Future dates count as now; identical dates are one.
    assert publishing_gap([T0 + timedelta(days=9)] * 3 + [T0 - timedelta(hours=2)], now=T0) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"cache-control": "public, max-age=600"}, 600.0),
        ({"cache-control": 'max-age="60"'}, 60.0),
        ({"cache-control": "max-age=garbage"}, None),
        ({"cache-control": "no-cache, max-age=600"}, None),
        ({"cache-control": "max-age=" + "9" * 400}, 1e12),
        ({"expires": "Sat, 28 Nov 2026 14:00:00 GMT", "date": "Sat, 28 Nov 2026 13:00:00 GMT"},
         3600.0),
        ({"expires": "Sat, 28 Nov 2026 13:00:00 GMT"}, 3600.0),  # against our clock (12:00)
        ({"expires": "0"}, None),
        ({"expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
    ],
)
def test_cache_lifetime(headers: dict[str, str], expected: float | None) -> None:
    assert cache_lifetime(headers, T0) == expected


def test_full_fetch_due_every_day_or_twenty_intervals() -> None:
    assert full_fetch_due(None, T0, 900)
    assert not full_fetch_due(T0 - timedelta(hours=4), T0, 900)
    assert full_fetch_due(T0 - timedelta(hours=5), T0, 900)
    assert full_fetch_due(T0 - timedelta(hours=24), T0, 6 * 3600)
    assert full_fetch_due(T0 + timedelta(hours=1), T0, 900)  # the clock went back


def test_is_stale_needs_a_long_silence_and_a_working_feed() -> None:
    old = T0 - timedelta(days=3)
    assert is_stale(old, 3600, T0, last_success=T0)
    assert not is_stale(T0 - timedelta(days=1), 3600, T0, last_success=T0)
    assert not is_stale(old, 2 * DAY, T0, last_success=T0)  # it posts every other day
    assert not is_stale(old, 3600, T0, last_success=T0 - timedelta(days=5))  # broken, not stale
    assert not is_stale(None, None, T0, last_success=T0)


# -- through the poller -----------------------------------------------------------------------


def test_adaptive_interval_from_publishing_rate(tmp_path: Path, feed_server: FeedServer) -> None:
    clock = FakeClock()
    feed_server.add("/hourly", body=dated(10, every=3600, newest=T0 - timedelta(minutes=5)))
    feed_server.add("/daily", body=dated(10, every=DAY, newest=T0 - timedelta(hours=1)))
    feed_server.add("/busy", body=dated(10, every=60, newest=T0))
    feed_server.add("/fixed", body=dated(10, every=DAY, newest=T0))
    cfg = write_poll_config(tmp_path, [
        FeedSpec("hourly", feed_server.url("/hourly")),
        FeedSpec("daily", feed_server.url("/daily")),
        FeedSpec("busy", feed_server.url("/busy")),
        FeedSpec("fixed", feed_server.url("/fixed"), interval="10m"),
    ])
    rt = start(cfg, clock)
    try:
        assert poll_due(rt).ok == 4
        st = status(rt)
    finally:
        rt.close()
    sched = ScheduleConfig()
    d = {name: delay(row.next_check_at, clock) for name, row in st.items()}
    assert 1800 <= d["hourly"] <= 1800 * 1.05 + 1  # half the median gap
    assert sched.max_interval <= d["daily"] <= sched.max_interval + 61  # capped
    assert sched.min_interval <= d["busy"] <= sched.min_interval * 1.05 + 1  # floored
    assert 600 <= d["fixed"] <= 600 * 1.05 + 1  # the config's own interval wins


def test_ttl_max_age_and_expires_lengthen_the_interval(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    feed_server.add("/ttl", body=rss([{"title": "a", "guid": "1"}], extra="<ttl>120</ttl>"))
    feed_server.add("/maxage", body=rss([{"title": "b", "guid": "2"}]),
                    headers={"Cache-Control": "max-age=10800"})
    expires = format_datetime(datetime.now(UTC) + timedelta(hours=4), usegmt=True)
    feed_server.add("/expires", body=rss([{"title": "c", "guid": "3"}]),
                    headers={"Expires": expires})
    feed_server.add("/huge", body=rss([{"title": "d", "guid": "4"}]),
                    headers={"Cache-Control": "max-age=999999999"})
    cfg = write_poll_config(tmp_path, [FeedSpec(n, feed_server.url(f"/{n}"))
                                       for n in ("ttl", "maxage", "expires", "huge")])
    rt = start(cfg, clock)
    try:
        poll_due(rt)
        st = status(rt)
    finally:
        rt.close()
    d = {name: delay(row.next_check_at, clock) for name, row in st.items()}
    assert 7200 <= d["ttl"] <= 7200 * 1.05 + 1
    assert 10800 <= d["maxage"] <= 10800 + 61
    assert 4 * 3600 - 30 <= d["expires"] <= 4 * 3600 + 61
    assert d["huge"] <= ScheduleConfig().max_interval + 61  # bounded by max_interval


def test_failing_feed_backs_off_alerts_once_and_recovers(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    fails = {"left": 6}

    def flaky(req: BaseHTTPRequestHandler) -> None:
        if fails["left"] > 0:
            fails["left"] -= 1
            send(req, 500, b"boom")
        else:
            send(req, 200, rss([{"title": "back", "guid": "b1"}]).encode(),
                 {"Content-Type": "application/rss+xml"})

    feed_server.add("/flaky", handler=flaky)
    feed_server.add("/ok", body=rss([{"title": "fine", "guid": "f1"}]))
    cfg = write_poll_config(tmp_path, [FeedSpec("flaky", feed_server.url("/flaky")),
                                       FeedSpec("ok", feed_server.url("/ok"))])
    rt = start(cfg, clock)
    delays = []
    try:
        for _ in range(6):
            poll_due(rt)
            row = status(rt)["flaky"]
            delays.append(delay(row.next_check_at, clock))
            clock.set(row.next_check_at + timedelta(seconds=1))
        assert status(rt)["flaky"].error_count == 6
        assert "HTTP 500" in (status(rt)["flaky"].last_error or "")
        failing = [a for a in operator_alerts(rt, tmp_path) if "failing" in str(a)]
        assert len(failing) == 1  # after the 3rd failure, not again on the 4th..6th
        poll_due(rt)
        row = status(rt)["flaky"]
        assert row.error_count == 0 and row.items == 1
        alerts = operator_alerts(rt, tmp_path)
    finally:
        rt.close()
    assert delays == sorted(delays) and delays[0] < delays[-1]
    assert all(d <= DAY + 61 for d in delays)
    assert sum("recovered" in str(a) for a in alerts) == 1
    assert sum("failing" in str(a) for a in alerts) == 1


def test_backoff_never_stops_polling(tmp_path: Path, feed_server: FeedServer) -> None:
    clock = FakeClock()
    feed_server.add("/down", status=503, body=b"down")
    cfg = write_poll_config(tmp_path, [FeedSpec("down", feed_server.url("/down"))])
    rt = start(cfg, clock)
    try:
        for _ in range(14):
            assert poll_due(rt).failed == 1  # due again every time: never dropped
            row = status(rt)["down"]
            assert delay(row.next_check_at, clock) <= DAY + 61
            clock.set(row.next_check_at)
        assert delay(row.next_check_at, clock) <= DAY + 61
    finally:
        rt.close()
    assert feed_server.hits("/down") == 14


@pytest.mark.parametrize(
    ("status_code", "retry_after", "low", "high"),
    [
        (429, "3600", 3600, 3600 * 1.05 + 1),
        (503, "http-date+7200", 7200 - 30, 7200 * 1.05 + 30),
        (429, "Thu, 01 Jan 2015 00:00:00 GMT", 900, 900 * 1.05 + 1),  # past: the interval
        (503, "soon, please", 900, 900 * 1.05 + 1),  # garbage: ignored
        (429, "9" * 40, DAY, DAY + 61),  # absurd: capped at max_backoff
        (429, "-5", 900, 900 * 1.05 + 1),
    ],
)
def test_retry_after_through_the_poller(
    tmp_path: Path, feed_server: FeedServer, status_code: int, retry_after: str,
    low: float, high: float,
) -> None:
    clock = FakeClock()
    if retry_after == "http-date+7200":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=7200), usegmt=True)
    feed_server.add("/limited", status=status_code, body=b"slow down",
                    headers={"Retry-After": retry_after})
    cfg = write_poll_config(tmp_path, [FeedSpec("limited", feed_server.url("/limited"))])
    rt = start(cfg, clock)
    try:
        poll_due(rt)
        row = status(rt)["limited"]
    finally:
        rt.close()
    assert f"HTTP {status_code}" in (row.last_error or "")
    assert low <= delay(row.next_check_at, clock) <= high


def redirect(to: str, code: int) -> dict[str, object]:
    return {"status": code, "headers": {"Location": to}, "content_type": None}


@pytest.mark.parametrize(("code", "moves"), [(301, True), (308, True), (302, False), (307, False)])
def test_permanent_redirects_move_the_feed(
    tmp_path: Path, feed_server: FeedServer, code: int, moves: bool
) -> None:
    clock = FakeClock()
    feed_server.add("/old", status=code, headers={"Location": "/new"}, content_type=None)
    feed_server.add("/new", body=rss([{"title": "moved", "guid": "m"}]))
    old = feed_server.url("/old")
    cfg = write_poll_config(tmp_path, [FeedSpec("f", old)])
    rt = start(cfg, clock)
    try:
        poll_due(rt)
        row = status(rt)["f"]
        assert row.items == 1
        assert row.url == (feed_server.url("/new") if moves else old)
        # The config still names the old URL: a reload must find the same row, not add one.
        rt.reload({"config"})
        assert list(status(rt)) == ["f"] and status(rt)["f"].items == 1
    finally:
        rt.close()


def test_permanent_redirect_to_a_known_feed_or_forbidden_host_does_not_move(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    feed_server.add("/a", status=301, headers={"Location": "/b"}, content_type=None)
    feed_server.add("/b", body=rss([{"title": "b", "guid": "b"}]))
    with FeedServer("127.0.0.2") as other:
        other.add("/x", body=rss([{"title": "x", "guid": "x"}]))
        feed_server.add("/c", status=308, headers={"Location": other.url("/x")}, content_type=None)
        cfg = write_poll_config(
            tmp_path,
            [FeedSpec("a", feed_server.url("/a")), FeedSpec("b", feed_server.url("/b")),
             FeedSpec("c", feed_server.url("/c"))],
            allow='"127.0.0.1/32"',
        )
        rt = start(cfg, clock)
        try:
            poll_due(rt)
            st = status(rt)
        finally:
            rt.close()
        assert other.hits("/x") == 0
    assert st["a"].url == feed_server.url("/a")  # /b is already a feed of its own
    assert st["c"].url == feed_server.url("/c")
    assert st["c"].last_error and "127.0.0.2" in st["c"].last_error
    # /b's item is stored once, under whichever of a and b fetched it first (exact copy).
    assert st["b"].last_error is None and st["a"].items + st["b"].items == 1


def test_gone_stops_polling_and_tells_the_operator(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    feed_server.add("/gone", status=410, body=b"bye")
    feed_server.add("/ok", body=rss([{"title": "ok", "guid": "1"}]))
    cfg = write_poll_config(tmp_path, [FeedSpec("gone", feed_server.url("/gone")),
                                       FeedSpec("ok", feed_server.url("/ok"))])
    rt = start(cfg, clock)
    try:
        poll_due(rt)
        for _ in range(3):
            clock.advance(2 * DAY)
            poll_due(rt)
        row = status(rt)["gone"]
        alerts = operator_alerts(rt, tmp_path)
    finally:
        rt.close()
    assert row.gone and "410" in (row.last_error or "")
    assert feed_server.hits("/gone") == 1 and feed_server.hits("/ok") == 4
    assert sum("gone" in str(a).lower() for a in alerts) == 1


def test_stuck_etag_gets_a_full_fetch_and_same_body_is_not_parsed(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    feed_server.add("/etag", body=rss([{"title": "one", "guid": "1"}]), headers={"ETag": '"v1"'})
    feed_server.add("/plain", body=rss([{"title": "two", "guid": "2"}]))
    cfg = write_poll_config(tmp_path, [FeedSpec("etag", feed_server.url("/etag"), "15m"),
                                       FeedSpec("plain", feed_server.url("/plain"), "15m")])
    rt = start(cfg, clock)
    try:
        first = poll_due(rt)
        assert first.new_items == 2
        for _ in range(3):
            clock.advance(1000)
            again = poll_due(rt)
            assert again.ok == 2
            # Neither the 304 nor the identical body was parsed and stored again.
            assert again.new_items == 0 and again.duplicates == 0
        conditional = [r for r in feed_server.requests if r.path == "/etag"]
        assert all("if-none-match" in r.headers for r in conditional[1:])
        # The server answers 304 forever; after long enough we ignore the validator once.
        clock.advance(5 * 3600)
        poll_due(rt)
        last = [r for r in feed_server.requests if r.path == "/etag"][-1]
        assert "if-none-match" not in last.headers
        with rt.sessions() as s:
            assert get_poll_state(s, status(rt)["etag"].id).full_at == clock.now()
        # A changed body is parsed and stored.
        feed_server.add("/plain", body=rss([{"title": "two", "guid": "2"},
                                            {"title": "three", "guid": "3"}]))
        clock.advance(1000)
        assert poll_due(rt).new_items == 1
    finally:
        rt.close()


def test_changed_document_scores_and_matches_only_its_new_items(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    old = [{"title": f"item {i}", "guid": str(i)} for i in range(5)]
    feed_server.add("/f", body=rss(old))
    cfg = write_poll_config(tmp_path, [FeedSpec("f", feed_server.url("/f"), "15m")])
    rt = start(cfg, clock)
    scored: list[int] = []
    real = rt.classifier.score_many

    def counting(analyses: Sequence[Analysis]) -> list[Score]:
        scored.append(len(analyses))
        return real(analyses)

    monkeypatch.setattr(rt.classifier, "score_many", counting)
    try:
        assert poll_due(rt).new_items == 5
        assert scored == [5]
        # One stored item is deleted (a tombstone stays): it must not come back as new either.
        with rt.sessions() as s:
            gone = s.execute(text("SELECT id FROM items WHERE title = 'item 0'")).scalars().all()
            assert delete_items(s, list(gone), clock.now()) == 1
        feed_server.add("/f", body=rss([{"title": "fresh", "guid": "new"}, *old]))
        clock.advance(1000)
        again = poll_due(rt)
        assert (again.new_items, again.duplicates) == (1, 5)
        assert scored == [5, 1]  # the five repeated items were neither scored nor matched
    finally:
        rt.close()


def test_one_host_is_never_fetched_concurrently_when_per_host_is_1(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "served": 0}

    def slow(req: BaseHTTPRequestHandler) -> None:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.2)  # long enough that a second worker would overlap
        with lock:
            state["now"] -= 1
            state["served"] += 1
        send(req, 200, rss([{"title": req.path, "guid": req.path}]).encode(),
             {"Content-Type": "application/rss+xml"})

    for i in range(4):
        feed_server.add(f"/s{i}", handler=slow)
    cfg = write_poll_config(tmp_path, [FeedSpec(f"s{i}", feed_server.url(f"/s{i}"))
                                       for i in range(4)], http="per_host = 1", workers=4)
    rt = start(cfg, clock)
    try:
        assert poll_due(rt).new_items == 4
    finally:
        rt.close()
    assert state["served"] == 4 and state["max"] == 1


def test_stale_feed_is_flagged_once_and_cleared(tmp_path: Path, feed_server: FeedServer) -> None:
    clock = FakeClock()
    quiet = dated(10, every=3600, newest=T0 - timedelta(days=3))
    feed_server.add("/quiet", body=quiet)
    feed_server.add("/lively", body=dated(10, every=3600, newest=T0 - timedelta(hours=1)))
    cfg = write_poll_config(tmp_path, [FeedSpec("quiet", feed_server.url("/quiet"), "1h"),
                                       FeedSpec("lively", feed_server.url("/lively"), "1h")])
    rt = start(cfg, clock)
    try:
        poll_due(rt)
        ids = {n: r.id for n, r in status(rt).items()}
        with rt.sessions() as s:
            assert stale_feed_ids(s) == {ids["quiet"]}
        for _ in range(2):  # still stale, still one alert
            clock.advance(4000)
            poll_due(rt)
        stale = [a for a in operator_alerts(rt, tmp_path) if "stale" in str(a)]
        assert len(stale) == 1 and "quiet" in str(stale[0])
        feed_server.add("/quiet", body=quiet.replace(
            "<item>", f"<item><title>new</title><guid>n</guid>"
                      f"<pubDate>{format_datetime(clock.now())}</pubDate></item><item>", 1))
        clock.advance(4000)
        poll_due(rt)
        with rt.sessions() as s:
            assert stale_feed_ids(s) == set()
    finally:
        rt.close()


def test_clock_jumps_do_not_burst(tmp_path: Path, feed_server: FeedServer) -> None:
    clock = FakeClock()
    names = [f"j{i}" for i in range(5)]
    for n in names:
        feed_server.add(f"/{n}", body=rss([{"title": n, "guid": n}]))
    cfg = write_poll_config(tmp_path, [FeedSpec(n, feed_server.url(f"/{n}"), "15m")
                                       for n in names])
    rt = start(cfg, clock)
    try:
        assert poll_due(rt).feeds == 5
        clock.advance(-3600)  # back an hour: nothing is due, nothing is polled twice
        for _ in range(3):
            assert poll_due(rt).feeds == 0
        clock.advance(10 * 365 * DAY)  # forward ten years: each feed once, not 350 000 times
        assert poll_due(rt).feeds == 5
        for _ in range(3):
            assert poll_due(rt).feeds == 0
        nxt = min(r.next_check_at for r in status(rt).values())
        assert nxt > clock.now() + timedelta(seconds=800)
    finally:
        rt.close()
    assert all(feed_server.hits(f"/{n}") == 2 for n in names)


def test_restart_after_downtime_polls_what_is_due_once(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = FakeClock()
    names = [f"r{i}" for i in range(4)]
    for n in names:
        feed_server.add(f"/{n}", body=rss([{"title": n, "guid": n}]))
    feed_server.add("/slow", body=rss([{"title": "s", "guid": "s"}]))
    specs = [FeedSpec(n, feed_server.url(f"/{n}"), "15m") for n in names]
    cfg = write_poll_config(tmp_path, [*specs, FeedSpec("slow", feed_server.url("/slow"), "6h")])
    rt = start(cfg, clock)
    assert poll_due(rt).feeds == 5
    rt.close()
    clock.advance(3600)  # down for an hour: the 15-minute feeds are due, the 6-hour one is not
    rt = start(cfg, clock)
    try:
        assert poll_due(rt).feeds == 4
        assert poll_due(rt).feeds == 0
    finally:
        rt.close()
    assert all(feed_server.hits(f"/{n}") == 2 for n in names)
    assert feed_server.hits("/slow") == 1
