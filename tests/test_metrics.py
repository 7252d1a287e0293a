"""Prometheus metrics and /healthz (issue 6): counters move after a real poll, gauges follow
the database, and /healthz answers 503 when the database is gone or the scheduler is stuck."""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seedwatch import metrics
from seedwatch.daemon import STUCK_AFTER, Daemon
from seedwatch.poller import poll_due
from seedwatch.runtime import Runtime
from tests.support.feedserver import FeedServer, rss
from tests.support.pollkit import FakeClock, FeedSpec, start, write_poll_config


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(base + "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
          ) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def served(tmp_path: Path, feed_server: FeedServer) -> Iterator[tuple[Runtime, Daemon, str]]:
    feed_server.add("/ok", body=rss([{"title": "one", "guid": "1"}, {"title": "two", "guid": "2"}]))
    feed_server.add("/broken", status=500, body=b"no")
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_poll_config(data, [FeedSpec("ok", feed_server.url("/ok")),
                                   FeedSpec("broken", feed_server.url("/broken"))],
                            schedule="failing_after = 1")
    rt = start(cfg, FakeClock())
    daemon = Daemon(rt)
    server = metrics.serve("127.0.0.1:0", daemon.healthy)
    try:
        yield rt, daemon, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        rt.close()


def test_counters_and_gauges_move_after_a_real_poll(
    served: tuple[Runtime, Daemon, str],
) -> None:
    rt, _, base = served
    before = scrape(base)
    report = poll_due(rt)
    assert report.ok == 1 and report.failed == 1
    assert metrics.refresh_gauges(rt.sessions, rt.clock.now())
    after = scrape(base)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("seedwatch_polls_total", outcome="ok") == 1
    assert moved("seedwatch_polls_total", outcome="error") == 1
    assert moved("seedwatch_http_responses_total", **{"class": "2xx"}) == 1
    assert moved("seedwatch_http_responses_total", **{"class": "5xx"}) == 1
    assert moved("seedwatch_items_total", kind="new") == 2
    assert moved("seedwatch_stage_seconds_count", stage="fetch") == 1
    assert moved("seedwatch_stage_seconds_count", stage="store") == 1
    assert moved("seedwatch_stage_seconds_count", stage="record") == 2
    assert value(after, "seedwatch_feeds", state="active") == 2
    assert value(after, "seedwatch_feeds", state="failing") == 1
    assert value(after, "seedwatch_feeds", state="stale") == 0
    assert value(after, "seedwatch_alerts", state="pending") == 1  # "feed failing"
    assert value(after, "seedwatch_outbox", status="pending") == 1
    # The same body again is a duplicate-free "unchanged" poll.
    rt.clock.advance(3600)  # type: ignore[attr-defined]
    poll_due(rt)
    again = scrape(base)
    assert value(again, "seedwatch_polls_total", outcome="unchanged") - value(
        after, "seedwatch_polls_total", outcome="unchanged") == 1
    assert value(again, "seedwatch_items_total", kind="new") == value(
        after, "seedwatch_items_total", kind="new")


def test_gauge_refresh_is_throttled(served: tuple[Runtime, Daemon, str]) -> None:
    rt, _, _ = served
    assert metrics.refresh_gauges(rt.sessions, rt.clock.now())
    assert not metrics.refresh_gauges(rt.sessions, rt.clock.now(), min_age=3600)


def test_healthz_fails_when_the_database_is_gone(
    served: tuple[Runtime, Daemon, str], tmp_path: Path
) -> None:
    rt, _, base = served
    assert get(base + "/healthz") == (200, "ok\n")
    rt.engine.dispose()
    shutil.rmtree(tmp_path / "data")  # SQLite cannot even create a new file there
    status, text = get(base + "/healthz")
    assert status == 503 and "database" in text
    # Gauges keep their last values instead of raising in the poll tick.
    assert not metrics.refresh_gauges(rt.sessions, rt.clock.now())


def test_healthz_fails_when_the_scheduler_is_stuck(served: tuple[Runtime, Daemon, str]) -> None:
    _, daemon, base = served
    assert get(base + "/healthz")[0] == 200
    daemon.health.last_progress = time.monotonic() - STUCK_AFTER - 5
    status, text = get(base + "/healthz")
    assert status == 503 and "no progress" in text
    daemon.health.progress()
    assert get(base + "/healthz")[0] == 200
