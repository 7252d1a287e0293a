"""The daemon end to end, as a real subprocess against real loopback servers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.daemon import (
    DaemonProcess,
    Rule,
    read_jsonl,
    run_cli,
    wait_for,
    write_config,
    write_watchlist,
)
from tests.support.feedserver import FeedServer, rss

pytestmark = pytest.mark.slow

ITEM_1 = {
    "title": "Militants attack border post; security services blame terrorism",
    "link": "http://news.example.org/a/1",
    "guid": "a-1",
    "description": "Security services said the terrorism suspects crossed the border at night.",
    "pubDate": "Fri, 27 Nov 2026 10:00:00 GMT",
}
ITEM_2 = {
    "title": "Uranium shipment seized at the Kazakh border",
    "link": "http://news.example.org/a/2",
    "guid": "a-2",
    "description": "Customs officers found the uranium in a lorry; an investigation has begun.",
    "pubDate": "Sat, 28 Nov 2026 09:00:00 GMT",
}


def test_run_reloads_watchlist_alerts_and_stops_cleanly(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.add("/a.xml", body=rss([ITEM_1]))
    rules = [Rule("terror", "terrorism")]
    cfg = write_config(tmp_path, [("Wire A", feed_server.url("/a.xml"))], rules)
    alerts = tmp_path / "alerts.jsonl"
    with DaemonProcess(cfg) as d:
        wait_for(lambda: any(a["rule"] == "terror" for a in read_jsonl(alerts)),
                 what=f"the first alert; daemon log:\n{d.log()}")
        # The analyst adds a rule while the daemon runs.
        write_watchlist(tmp_path, [*rules, Rule("nuclear", "uranium")])
        wait_for(lambda: d.saw("watchlist reloaded"), what=f"the reload; log:\n{d.log()}")
        feed_server.add("/a.xml", body=rss([ITEM_1, ITEM_2]))
        wait_for(lambda: any(a["rule"] == "nuclear" for a in read_jsonl(alerts)),
                 what=f"the alert of the new rule; log:\n{d.log()}")
        time.sleep(1.5)  # a few more polls: nothing must alert twice
        got = read_jsonl(alerts)
        assert sorted(a["rule"] for a in got) == ["nuclear", "terror"]
        assert len({a["id"] for a in got}) == 2
        started = time.monotonic()
        assert d.terminate() == 0
        assert time.monotonic() - started < 10
        assert d.saw("stop: done")

    out = run_cli("items", "--json", config=cfg)
    assert out.returncode == 0, out.stderr
    items = [json.loads(line) for line in out.stdout.splitlines()]
    assert {i["title"] for i in items} == {ITEM_1["title"], ITEM_2["title"]}
    for i in items:
        for key in ("id", "feed", "url", "title", "published", "story", "score", "topic",
                    "rules"):
            assert key in i
    by_title = {i["title"]: i for i in items}
    assert by_title[ITEM_2["title"]]["rules"] == ["nuclear"]
    assert by_title[ITEM_1["title"]]["rules"] == ["terror"]
    # The tracking-free canonical URL is stored.
    assert by_title[ITEM_1["title"]]["url"] == "http://news.example.org/a/1"


def test_broken_watchlist_edit_keeps_last_good_rules(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.add("/a.xml", body=rss([]))
    rules = [Rule("terror", "terrorism")]
    cfg = write_config(tmp_path, [("Wire A", feed_server.url("/a.xml"))], rules)
    with DaemonProcess(cfg) as d:
        wait_for(lambda: d.saw("start: running"), what=f"start; log:\n{d.log()}")
        write_watchlist(tmp_path, [*rules, Rule("broken", '(uranium AND "')])
        wait_for(lambda: d.saw("kept the last good version"), what=f"error; log:\n{d.log()}")
        assert any("watchlist.toml:" in ln for ln in d.lines)
        feed_server.add("/a.xml", body=rss([ITEM_1]))
        wait_for(lambda: any(a["rule"] == "terror" for a in read_jsonl(tmp_path / "alerts.jsonl")),
                 what=f"alert from the last good rules; log:\n{d.log()}")
        wait_for(lambda: len(read_jsonl(tmp_path / "operator.jsonl")) >= 1,
                 what="the operator alert")
        status = run_cli("status", config=cfg)
        assert "watchlist.toml" in status.stdout
        assert d.terminate() == 0


def test_poll_once_check_and_status(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.add("/a.xml", body=rss([ITEM_1, ITEM_2]))
    feed_server.add("/broken.xml", body=b"<html>not a feed</html>", content_type="text/html")
    cfg = write_config(
        tmp_path,
        [("Wire A", feed_server.url("/a.xml")), ("Broken", feed_server.url("/broken.xml"))],
        [Rule("terror", "terrorism")],
    )
    check = run_cli("check", config=cfg)
    assert check.returncode == 0, check.stderr
    out = run_cli("poll", config=cfg)
    assert out.returncode == 0, out.stderr
    assert "2 new items" in out.stdout
    assert "1 failed" in out.stdout
    status = run_cli("status", config=cfg)
    assert status.returncode == 0, status.stderr
    assert "Broken" in status.stdout and "Wire A" in status.stdout
    alerts = run_cli("alerts", "--json", config=cfg)
    rows = [json.loads(x) for x in alerts.stdout.splitlines()]
    assert [r["rule"] for r in rows] == ["terror"]
    assert rows[0]["status"] == "sent"
    for key in ("id", "rule", "item", "story", "channel", "status", "attempts"):
        assert key in rows[0]
    # A second pass: conditional GET, nothing new, nothing re-sent.
    again = run_cli("poll", "--all", config=cfg)
    assert "0 new items" in again.stdout
    assert len(read_jsonl(tmp_path / "alerts.jsonl")) == 1
