"""Several `seedwatch run` daemons sharing one PostgreSQL database (issue 7).

Three daemons poll 200 local feeds; one is SIGKILLed mid-way while it holds leases. Checked:
every item is stored exactly once, every alert is delivered with one id per (rule, story,
channel), no feed is requested twice within its interval, and the dead daemon's feeds are
taken over once its leases expire.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from sqlalchemy import text

from seedwatch.storage.db import open_database
from tests.support.daemon import DaemonProcess, Rule, read_jsonl, wait_for, write_config
from tests.support.feedserver import FeedServer
from tests.support.pg import pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N_FEEDS = 200
INTERVAL = 4.0  # seconds between polls of one feed
LEASE = 5.0  # seconds a claimed feed stays a daemon's
# Two request arrival times of one feed, seen by the server, may be this much closer than the
# interval: the daemon schedules from its own clock after the response, the server stamps on
# arrival, so only scheduler wake-up noise could make them closer.
SKEW = 0.05
# The poller re-takes each feed's lease right before fetching it (storage/leases.py). Without
# that, a daemon that reaches the end of its claimed batch after the lease ran out fetches a
# feed another daemon has already taken over: a double poll this test catches.


def _rss(feed: int, n_items: int) -> bytes:
    items = []
    for j in range(n_items):
        # Every fourth item mentions Dushanbe: the rule matches it.
        place = "Dushanbe" if (feed + j) % 4 == 0 else "Almaty"
        items.append(
            f"<item><title>Report {feed}-{j} from {place}</title>"
            f"<link>http://news.test/{feed}/{j}</link><guid>g-{feed}-{j}</guid>"
            f"<pubDate>Sat, 28 Nov 2026 {j % 24:02d}:00:00 GMT</pubDate>"
            f"<description>Officials in {place} met on {feed} {j} about trade and "
            f"security cooperation number {feed * 100 + j}.</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>http://news.test/{feed}/</link>"
        f"<description>d</description>{''.join(items)}</channel></rss>"
    ).encode()


class Feeds:
    """Bodies per path, served with an ETag, recording when and how concurrently they are hit."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[bytes, str]] = {}
        self.times: dict[str, list[float]] = collections.defaultdict(list)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def set(self, path: str, body: bytes, version: int) -> None:
        with self.lock:
            self.bodies[path] = (body, f'"v{version}"')

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path
        with self.lock:
            self.times[path].append(time.time())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            body, etag = self.bodies[path]
        try:
            if req.headers.get("If-None-Match") == etag:
                req.send_response(304)
                req.send_header("ETag", etag)
                req.send_header("Content-Length", "0")
                req.end_headers()
                return
            req.send_response(200)
            req.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            req.send_header("ETag", etag)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_three_daemons_share_the_work_and_survive_a_kill(tmp_path: Path) -> None:
    feeds = Feeds()
    with pg_database() as db_url, FeedServer() as srv:
        paths = [f"/f{i}.xml" for i in range(N_FEEDS)]
        for i, p in enumerate(paths):
            feeds.set(p, _rss(i, 3), 1)
            srv.add(p, handler=feeds.handle)
        feed_tables = "\n".join(
            f'[[feed]]\nurl = "{srv.url(p)}"\nname = "Feed {i}"\ninterval = "{INTERVAL:g}s"\n'
            for i, p in enumerate(paths)
        )
        cfg = write_config(tmp_path, [], [Rule("dushanbe", "dushanbe")], storage_url=db_url,
                           extra=feed_tables)
        text_ = cfg.read_text(encoding="utf-8")
        assert 'lease = "20s"' in text_
        cfg.write_text(text_.replace('lease = "20s"', f'lease = "{LEASE:g}s"'), encoding="utf-8")

        daemons = [DaemonProcess(cfg).start() for _ in range(3)]
        try:
            def polled() -> int:
                with feeds.lock:
                    return sum(1 for p in paths if feeds.times[p])

            # Mid-way through the first round, the first daemon dies without a word.
            wait_for(lambda: polled() >= N_FEEDS // 3, timeout=120,
                     what="a third of the feeds polled; logs:\n" + daemons[0].log()[-3000:])
            daemons[0].kill()
            killed_at = time.time()
            wait_for(lambda: polled() == N_FEEDS, timeout=LEASE + 60,
                     what="the killed daemon's feeds taken over")

            # Round two: every feed carries one new item (a quarter of them match the rule).
            for i, p in enumerate(paths):
                feeds.set(p, _rss(i, 4), 2)
            eng = open_database(db_url)
            try:
                def scalar(sql: str) -> int:
                    with eng.connect() as conn:
                        return int(conn.execute(text(sql)).scalar_one())

                try:
                    wait_for(lambda: scalar("SELECT count(*) FROM items") >= N_FEEDS * 4,
                             timeout=120, what="round two stored")
                except AssertionError:
                    with eng.connect() as conn:
                        detail = conn.execute(text(
                            "SELECT count(*), min(next_check_at), max(next_check_at), "
                            "count(lease_owner), max(error_count), now() FROM feeds")).all()
                    raise AssertionError(
                        f"items={scalar('SELECT count(*) FROM items')} feeds={detail} "
                        f"log1:\n{daemons[1].log()[-4000:]}") from None
                wait_for(lambda: scalar("SELECT count(*) FROM alerts WHERE kind = 'match' "
                                        "AND status <> 'sent'") == 0,
                         timeout=60, what="every alert delivered")
                for d in daemons[1:]:
                    assert d.terminate() == 0, d.log()[-3000:]

                with eng.connect() as conn:
                    items = conn.execute(text(
                        "SELECT f.url, i.guid FROM items i JOIN feeds f ON f.id = i.feed_id"
                    )).all()
                    matched_stories = scalar(
                        "SELECT count(DISTINCT i.story_id) FROM matches m "
                        "JOIN items i ON i.id = m.item_id WHERE m.rule = 'dushanbe'")
                    matched_items = scalar("SELECT count(*) FROM matches")
                    alerts = conn.execute(text(
                        "SELECT id, rule, story_id, channel, status FROM alerts "
                        "WHERE kind = 'match'"
                    )).all()
            finally:
                eng.dispose()
        finally:
            for d in daemons:
                d.__exit__()

    # Every item stored once.
    want = {(srv.url(p), f"g-{i}-{j}") for i, p in enumerate(paths) for j in range(4)}
    # feedparser resolves a relative-looking guid against the feed URL.
    got = [(url, str(guid).rsplit("/", 1)[-1]) for url, guid in items]
    assert len(got) == len(set(got)) == len(want)
    assert set(got) == want

    # Every alert delivered; one id per (rule, story, channel), none sent under two ids.
    assert matched_items == sum(1 for i in range(N_FEEDS) for j in range(4) if (i + j) % 4 == 0)
    # Alike reports fold into one story, and a story alerts once per rule and channel.
    assert len(alerts) == matched_stories
    assert all(a.status == "sent" for a in alerts)
    assert len({(a.rule, a.story_id, a.channel) for a in alerts}) == len(alerts)
    lines = [a for a in read_jsonl(tmp_path / "alerts.jsonl") if a["kind"] == "match"]
    assert {a["id"] for a in lines} == {a.id for a in alerts}
    per_story: dict[tuple[object, ...], set[object]] = collections.defaultdict(set)
    for a in lines:
        per_story[(a["rule"], a["story"], a["channel"])].add(a["id"])
    assert all(len(ids) == 1 for ids in per_story.values())

    # (Leases left by the daemons stopped with SIGTERM are not checked: poller leaves feeds it
    # had claimed but not started leased until expiry; see storage/leases.release_own_leases.)
    # Per-host politeness is per process (per_host = 2 each): never more than 2 per live daemon.
    assert feeds.max_in_flight <= 2 * 3

    # No feed requested twice within its interval, by any daemon.
    # The exception: a fetch the killed daemon had in flight was never recorded (nor its items
    # stored), so that feed is fetched again once the lease runs out. That is at most one early
    # repeat per feed the dead daemon was fetching (8 workers), straddling the kill.
    too_soon: dict[str, list[float]] = {}
    redone: list[str] = []
    for p, ts in feeds.times.items():
        for t0, t1 in itertools.pairwise(ts):
            if t1 - t0 >= INTERVAL - SKEW:
                continue
            if t0 <= killed_at <= t1:
                redone.append(p)
            else:
                too_soon.setdefault(p, []).append(round(t1 - t0, 3))
    assert len(redone) == len(set(redone)) <= 8
    assert too_soon == {}


def test_renew_lease_lets_only_the_current_holder_fetch() -> None:
    from datetime import UTC, datetime, timedelta

    from seedwatch.config.model import FeedConfig
    from seedwatch.storage import queries as q
    from seedwatch.storage.db import make_sessionmaker
    from seedwatch.storage.leases import release_own_leases, renew_feed_lease

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with pg_database() as db_url:
        eng = open_database(db_url)
        sm = make_sessionmaker(eng)
        try:
            with sm() as s:
                q.sync_config_feeds(s, [FeedConfig(url=f"http://f{i}.test/", name=f"f{i}")
                                        for i in range(4)], now, default_interval=60.0)
                s.commit()
                a = q.claim_due_feeds(s, now, limit=10, owner="A", lease=5)
                assert len(a) == 4
                # A reaches its second feed in time and extends the lease...
                assert renew_feed_lease(s, a[1].id, owner="A", now=now + timedelta(seconds=4),
                                        lease=5)
                # ...the others it was too slow for are B's once the lease has run out.
                later = now + timedelta(seconds=6)
                b = q.claim_due_feeds(s, later, limit=10, owner="B", lease=5)
                assert {f.id for f in b} == {a[0].id, a[2].id, a[3].id}
                assert not renew_feed_lease(s, a[0].id, owner="A", now=later, lease=5)
                assert renew_feed_lease(s, a[0].id, owner="B", now=later, lease=5)
                assert renew_feed_lease(s, a[1].id, owner="A", now=later, lease=5)
                # A clean stop hands B's feeds back at once.
                assert release_own_leases(s, owner="B") == 3
                c = q.claim_due_feeds(s, later, limit=10, owner="C", lease=5)
                assert {f.id for f in c} == {a[0].id, a[2].id, a[3].id}
        finally:
            eng.dispose()
