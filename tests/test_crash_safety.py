"""SIGKILL the daemon at random points while items arrive and alerts go out, 20 times.

Afterwards: no item is stored twice, every expected alert reached the receiver at least once,
and a repeat (a crash between send and mark) carries the same alert id.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, Rule, read_jsonl, wait_for, write_config
from tests.support.feedserver import FeedServer, rss

pytestmark = pytest.mark.slow

FEEDS = 4
KILLS = 20


PLACES = ["Osh", "Khujand", "Termez", "Aktobe", "Naryn", "Kulob", "Batken", "Shymkent",
          "Karakol", "Nukus", "Atyrau", "Jalal-Abad", "Gorno-Badakhshan", "Fergana", "Talas"]
THINGS = ["convoy", "checkpoint", "warehouse", "bus station", "power line", "market",
          "customs post", "railway bridge", "airfield", "mine", "barracks", "river crossing"]


def items_for(feed: int, upto: int) -> list[dict[str, str]]:
    """Distinct stories: each item names its own place, object and numbers."""
    out = []
    for n in range(upto):
        r = random.Random(feed * 1000 + n)
        place, thing = r.choice(PLACES), r.choice(THINGS)
        out.append({
            "title": f"Militants hit {thing} near {place}; security forces respond ({feed}/{n})",
            "link": f"http://wire{feed}.example.org/story/{n}",
            "guid": f"wire{feed}-{n}",
            "description": f"{r.randint(2, 90)} people were held after the {thing} attack in "
                           f"{place} on day {r.randint(1, 28)}, security services said. "
                           f"Case {feed}-{n}-{r.randint(1000, 9999)}.",
        })
    return out


def test_sigkill_twenty_times_loses_and_doubles_nothing(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    rng = random.Random(20261128)
    published = [0] * FEEDS
    for f in range(FEEDS):
        feed_server.add(f"/w{f}.xml", body=rss([], title=f"wire {f}"))
    cfg = write_config(
        tmp_path,
        [(f"Wire {f}", feed_server.url(f"/w{f}.xml")) for f in range(FEEDS)],
        [Rule("militants", "militants AND security")],
    )
    alerts = tmp_path / "alerts.jsonl"

    def publish() -> None:
        f = rng.randrange(FEEDS)
        published[f] += rng.randint(1, 3)
        feed_server.add(f"/w{f}.xml", body=rss(items_for(f, published[f]), title=f"wire {f}"))

    def alert_bytes() -> int:
        return alerts.stat().st_size if alerts.exists() else 0

    for k in range(KILLS):
        publish()
        d = DaemonProcess(cfg).start()
        try:
            if k % 3 == 2:
                # Kill the moment an alert reaches the receiver, before the daemon can mark
                # it sent: the window where at-least-once delivery repeats an alert.
                size = alert_bytes()
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline and alert_bytes() == size:
                    time.sleep(0.001)
            else:
                # Kill at a random moment: during start-up, fetch, store or delivery.
                deadline = time.monotonic() + rng.uniform(0.3, 2.5)
                while time.monotonic() < deadline:
                    if rng.random() < 0.3:
                        publish()
                    time.sleep(0.1)
        finally:
            d.kill()

    expected = sum(published)
    dbfile = tmp_path / "seedwatch.db"

    def counts() -> tuple[int, int]:
        db = sqlite3.connect(dbfile)
        try:
            items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            stories = db.execute("SELECT COUNT(DISTINCT story_id) FROM items").fetchone()[0]
        finally:
            db.close()
        return items, stories

    with DaemonProcess(cfg) as d:
        wait_for(lambda: counts()[0] >= expected, timeout=60,
                 what=f"all {expected} items; log:\n{d.log()[-3000:]}")
        wait_for(lambda: len({a["id"] for a in read_jsonl(alerts)}) >= counts()[1],
                 timeout=60, what=f"all alerts; log:\n{d.log()[-3000:]}")
        assert d.terminate() == 0

    db = sqlite3.connect(dbfile)
    rows = db.execute("SELECT feed_id, key FROM items").fetchall()
    db.close()
    assert len(rows) == len(set(rows)) == expected, "items lost or stored twice"
    _, stories = counts()
    got = read_jsonl(alerts)
    by_id: dict[str, set[str]] = {}
    for a in got:
        by_id.setdefault(str(a["id"]), set()).add(json.dumps([a["rule"], a.get("story_id")]))
    assert len(by_id) == stories, "exactly one alert per story"
    # A repeat is the same alert: same id, same rule, same story.
    assert all(len(v) == 1 for v in by_id.values())
    print(f"{KILLS} kills, {expected} items, {stories} stories, {len(got)} deliveries, "
          f"{len(got) - len(by_id)} repeats")
