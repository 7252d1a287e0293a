"""Storage on real SQLite files: schema, store_batch, leases, outbox, read side.

``tests/test_storage_pg.py`` runs the core tests here again on PostgreSQL by overriding the
``db_url`` fixture; tests that only make sense on SQLite are not imported there.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.config.model import FeedConfig
from seedwatch.errors import FetchError, GoneError, StorageError
from seedwatch.storage import queries as q
from seedwatch.storage.db import (
    alembic_config,
    current_revision,
    open_database,
    ping,
)
from seedwatch.storage.feeds import PollState, get_poll_state
from seedwatch.storage.leases import renew_feed_lease
from seedwatch.storage.models import (
    Alert,
    Base,
    Feed,
    ItemRecord,
    MatchRecord,
    Story,
    Tombstone,
)
from seedwatch.storage.search import not_search_index
from seedwatch.types import FetchResult, Item, Match, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LONG = "Security-service chiefs of the CIS met in Dushanbe on Tuesday."

# The newest migration: what a fresh or upgraded database must be at.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/data/seedwatch.db"


# -- helpers ----------------------------------------------------------------------------------


def feeds(sessions: sessionmaker[Session], *names: str) -> dict[str, int]:
    """Config feeds named ``names`` (URL http://<name>.test/rss), returned as name -> id."""
    with sessions() as s:
        q.sync_config_feeds(
            s,
            [FeedConfig(url=f"http://{n}.test/rss", name=n) for n in names],
            NOW,
            default_interval=900.0,
        )
        s.commit()
        rows = s.execute(select(Feed.name, Feed.id)).all()
    return {name: fid for name, fid in rows}


def pitem(
    feed_id: int,
    key: str,
    *,
    url: str | None = None,
    title: str | None = None,
    text_: str = "",
    matches: tuple[Match, ...] = (),
    published: datetime = NOW,
    score: float = 0.5,
) -> ProcessedItem:
    title = title if title is not None else f"title {key}"
    body = text_ or f"text of {key}: security chiefs of the CIS met in Minsk"
    digest = hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()
    item = Item(
        feed_id=feed_id,
        key=key,
        guid=key,
        url=url if url is not None else f"http://news.test/{key}",
        title=title,
        text=body,
        published=published,
        content_hash=digest,
        tags=("t1",),
        language="en",
    )
    sc = Score(score=score, topic="security", relevant=score > 0.3, nearest_seed="seed.txt")
    return ProcessedItem(item=item, score=sc, matches=matches)


def rule(name: str, *channels: str, terms: tuple[str, ...] = ("csto",)) -> Match:
    return Match(rule=name, terms=terms, channels=channels or ("log",))


def count(s: Session, model: type[Base]) -> int:
    return int(s.execute(select(func.count()).select_from(model)).scalar_one())


# -- schema -----------------------------------------------------------------------------------


def test_upgrade_from_empty_matches_the_models(engine: Engine, db_url: str) -> None:
    assert current_revision(engine) == HEAD
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": not_search_index}
        )
        assert compare_metadata(ctx, Base.metadata) == []
    again = open_database(db_url)  # a second start finds the schema current
    try:
        assert current_revision(again) == HEAD
        assert ping(again)
    finally:
        again.dispose()


def test_datetimes_come_back_aware_utc(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "a")
    plus3 = datetime(2026, 11, 28, 15, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=3)))
    with sessions() as s:
        q.set_state(s, "k", "v", plus3)
        s.commit()
        feed = s.get(Feed, ids["a"])
        assert feed is not None
        assert feed.next_check_at == NOW
        assert feed.next_check_at.tzinfo is not None
        assert feed.next_check_at.utcoffset() == timedelta(0)
        assert q.get_state(s, "k") == "v"
        rows = q.feed_status(s, NOW)
        assert rows[0].next_check_at.tzinfo is not None


def test_naive_datetime_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(StorageError):
        q.set_state(s, "k", "v", datetime(2026, 1, 1))


def test_bad_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError):
        open_database("nosuchdb://x/y")
    with pytest.raises(StorageError):
        open_database("::not a url::")


# -- feeds ------------------------------------------------------------------------------------


def test_sync_config_feeds_upserts_retires_and_leaves_imports(
    sessions: sessionmaker[Session],
) -> None:
    ids = feeds(sessions, "a", "b")
    with sessions() as s:
        assert q.add_feeds(s, [FeedConfig(url="http://imp.test/rss", name="imp")], NOW) == 1
        assert q.add_feeds(s, [FeedConfig(url="http://imp.test/rss", name="imp2")], NOW) == 0
        s.commit()
        later = NOW + timedelta(hours=1)
        q.sync_config_feeds(
            s,
            [FeedConfig(url="http://a.test/rss", name="A!", interval=600.0, tags=("x",))],
            later,
            default_interval=900.0,
        )
        s.commit()
        rows = {r.name: r for r in q.feed_status(s, later)}
        assert set(rows) == {"A!", "b", "imp"}
        assert rows["A!"].active and rows["A!"].id == ids["a"]
        assert not rows["b"].active
        assert rows["imp"].active and rows["imp"].source == "import"
        assert q.feed_interval(s, ids["a"]) == 600.0
        exported = {f.name: f for f in q.all_feeds(s)}
        assert set(exported) == {"A!", "imp"}
        assert exported["A!"].tags == ("x",)
        # b comes back: active again and due at once
        q.sync_config_feeds(
            s,
            [FeedConfig(url="http://a.test/rss", name="A!"), FeedConfig("http://b.test/rss", "b")],
            later,
            default_interval=900.0,
        )
        s.commit()
        back = {r.name: r for r in q.feed_status(s, later)}
        assert back["b"].active and back["b"].next_check_at == later
        assert q.feed_interval(s, ids["a"]) == 900.0


def test_claim_due_feeds_leases_and_takeover(sessions: sessionmaker[Session]) -> None:
    feeds(sessions, "a", "b", "c")
    with sessions() as s:
        first = q.claim_due_feeds(s, NOW, limit=2, owner="A", lease=60)
        assert len(first) == 2
        rest = q.claim_due_feeds(s, NOW, limit=10, owner="B", lease=60)
        assert len(rest) == 1
        assert {f.id for f in first}.isdisjoint({f.id for f in rest})
        # every lease is live: nobody gets anything
        assert (
            q.claim_due_feeds(s, NOW + timedelta(seconds=59), limit=10, owner="C", lease=60) == []
        )
        # A died: its leases expire and are taken over
        taken = q.claim_due_feeds(s, NOW + timedelta(seconds=61), limit=10, owner="C", lease=60)
        assert {f.id for f in taken} == {f.id for f in first} | {f.id for f in rest}
        # recording a fetch releases the lease and schedules the next check
        fid = taken[0].id
        q.record_fetch(
            s,
            fid,
            now=NOW,
            next_check=NOW + timedelta(minutes=15),
            result=None,
            error=None,
        )
        s.commit()
        later = NOW + timedelta(seconds=62)
        assert fid not in {f.id for f in q.claim_due_feeds(s, later, limit=10, owner="D", lease=60)}
        forced = q.claim_due_feeds(
            s, NOW + timedelta(seconds=200), limit=10, owner="E", lease=60, all_feeds=True
        )
        assert fid in {f.id for f in forced}


def _result(**kw: object) -> FetchResult:
    base: dict[str, object] = {
        "requested_url": "http://a.test/rss",
        "url": "http://a.test/rss",
        "status": 200,
        "headers": (),
        "body": b"<rss/>",
    }
    base.update(kw)
    return FetchResult(**base)  # type: ignore[arg-type]


def test_record_fetch_health_and_redirect(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "a", "z")
    fid = ids["a"]
    nxt = NOW + timedelta(minutes=15)
    with sessions() as s:
        ok = q.record_fetch(
            s,
            fid,
            now=NOW,
            next_check=nxt,
            result=_result(etag='"e1"', last_modified="Mon", body_hash="h1"),
            error=None,
            title="Feed A",
        )
        assert (ok.error_count, ok.was_failing, ok.gone) == (0, False, False)
        for n in (1, 2, 3):
            h = q.record_fetch(
                s, fid, now=NOW, next_check=nxt, result=None, error=FetchError("http://a", "dns")
            )
            assert h.error_count == n
        assert q.feed_error_count(s, fid) == 3
        # 304 keeps the validators and the hash; success resets the count
        rec = q.record_fetch(
            s,
            fid,
            now=NOW,
            next_check=nxt,
            result=_result(status=304, body=b"", not_modified=True),
            error=None,
            failing_after=3,
        )
        assert rec.was_failing and rec.error_count == 0 and rec.previous_errors == 3
        s.commit()
        feed = s.get(Feed, fid)
        assert feed is not None
        assert (feed.etag, feed.last_modified, feed.last_hash, feed.title) == (
            '"e1"',
            "Mon",
            "h1",
            "Feed A",
        )
        assert feed.last_error == "http://a: dns" and feed.lease_owner is None
        # a permanent redirect moves the URL, and config sync still finds the feed
        q.record_fetch(
            s,
            fid,
            now=NOW,
            next_check=nxt,
            result=_result(permanent_url="https://a.example/feed"),
            error=None,
        )
        # ...but never onto another feed's URL
        q.record_fetch(
            s,
            ids["z"],
            now=NOW,
            next_check=nxt,
            result=_result(permanent_url="https://a.example/feed"),
            error=None,
        )
        s.commit()
        q.sync_config_feeds(
            s,
            [FeedConfig("http://a.test/rss", "a"), FeedConfig("http://z.test/rss", "z")],
            NOW,
            default_interval=900,
        )
        s.commit()
        rows = {r.id: r for r in q.feed_status(s, NOW)}
        assert len(rows) == 2
        assert rows[fid].url == "https://a.example/feed" and rows[fid].active
        assert rows[ids["z"]].url == "http://z.test/rss"
        gone = q.record_fetch(
            s, fid, now=NOW, next_check=nxt, result=None, error=GoneError("http://a", 410, "gone")
        )
        s.commit()
        assert gone.gone
        assert fid not in {
            f.id for f in q.claim_due_feeds(s, NOW + timedelta(days=2), limit=9, owner="x", lease=1)
        }
    with sessions() as s, pytest.raises(StorageError):
        q.record_fetch(s, 9999, now=NOW, next_check=nxt, result=None, error=None)


def test_poll_context_is_read_once_and_304_bookkeeping_is_one_update(
    sessions: sessionmaker[Session],
) -> None:
    ids = feeds(sessions, "a")
    fid = ids["a"]
    nxt = NOW + timedelta(minutes=15)
    with sessions() as s:
        [(feed, claimed)] = q.claim_due_polls(s, NOW, limit=1, owner="A", lease=60)
        assert feed.id == fid and claimed == q.poll_context(s, fid)
        # someone else's lease: nothing to read, no lease taken
        assert renew_feed_lease(s, fid, owner="B", now=NOW, lease=60) is None
        ctx = renew_feed_lease(s, fid, owner="A", now=NOW, lease=60)
        assert ctx == q.poll_context(s, fid)
        assert ctx == q.PollContext(
            state=PollState(), interval=900.0, error_count=0, gone=False, url="http://a.test/rss"
        )
        learnt = PollState(full_at=NOW, gap=60.0)
        q.record_fetch(
            s,
            fid,
            now=NOW,
            next_check=nxt,
            result=None,
            error=FetchError("http://a", "dns"),
            context=ctx,
            poll_state=learnt,
        )
        s.commit()
        ctx = q.poll_context(s, fid)
        assert (ctx.state, ctx.error_count) == (learnt, 1)
        statements: list[str] = []
        listen = event.listens_for(s.get_bind(), "before_cursor_execute")
        listen(lambda *a: statements.append(a[2].split()[0]))
        health = q.record_fetch(
            s,
            fid,
            now=NOW,
            next_check=nxt,
            error=None,
            context=ctx,
            poll_state=learnt,
            result=_result(status=304, body=b"", not_modified=True),
        )
        s.commit()
        assert statements == ["UPDATE"]  # an unchanged poll state is not written again
        assert (health.error_count, health.previous_errors) == (0, 1)
        assert q.poll_context(s, fid).error_count == 0
        assert get_poll_state(s, fid) == learnt
        # the claim reads each feed's own poll state
        later = NOW + timedelta(days=1)
        [(_, claimed)] = q.claim_due_polls(s, later, limit=1, owner="A", lease=60)
        assert claimed.state == learnt and claimed == q.poll_context(s, fid)
    with sessions() as s, pytest.raises(StorageError):
        q.poll_context(s, 9999)


# -- store_batch ------------------------------------------------------------------------------


def test_store_batch_new_duplicate_and_tombstone(sessions: sessionmaker[Session]) -> None:
    fid = feeds(sessions, "a")["a"]
    with sessions() as s:
        out = q.store_batch(s, fid, [pitem(fid, "k1"), pitem(fid, "k2")], now=NOW)
        assert len(out.new_items) == 2 and out.duplicates == 0
        again = q.store_batch(s, fid, [pitem(fid, "k1"), pitem(fid, "k3")], now=NOW)
        assert len(again.new_items) == 1 and again.duplicates == 1
        s.execute(text("DELETE FROM items WHERE key = 'k3'"))
        s.execute(insert(Tombstone).values(feed_id=fid, key="k3", created_at=NOW))
        s.commit()
        tomb = q.store_batch(s, fid, [pitem(fid, "k3")], now=NOW)
        assert tomb.new_items == () and tomb.duplicates == 1
        # the same key twice within one batch is stored once
        twice = q.store_batch(s, fid, [pitem(fid, "k4"), pitem(fid, "k4")], now=NOW)
        assert len(twice.new_items) == 1 and twice.duplicates == 1
        assert count(s, ItemRecord) == 3
        assert q.store_batch(s, fid, [], now=NOW) == q.store_batch(s, fid, (), now=NOW)


def test_same_feed_duplicates_are_same_key_or_same_url_and_content(
    sessions: sessionmaker[Session],
) -> None:
    fid = feeds(sessions, "a")["a"]
    m = (rule("r", "c"),)
    with sessions() as s:
        first = q.store_batch(
            s,
            fid,
            [pitem(fid, "k1", url="http://x.test/1", title="T", text_=LONG, matches=m)],
            now=NOW,
        )
        # new GUID, same link and content: a feed that changes GUIDs on every fetch
        out = q.store_batch(
            s, fid, [pitem(fid, "k2", url="http://x.test/1", title="T", text_=LONG)], now=NOW
        )
        assert out.duplicates == 1 and out.new_items == ()
        # same link, other content: a feed that puts one link on every entry. A new item,
        # and a new story: the shared link says nothing about the story.
        shared = q.store_batch(
            s,
            fid,
            [pitem(fid, "k3", url="http://x.test/1", title="Comment by B", matches=m)],
            now=NOW,
        )
        assert len(shared.new_items) == 1 and len(shared.alerts) == 1
        # the same content re-posted under a new link: stored, but in the first item's story,
        # so it raises no new alert
        repost = q.store_batch(
            s,
            fid,
            [pitem(fid, "k4", url="http://x.test/4", title="T", text_=LONG, matches=m)],
            now=NOW + timedelta(hours=1),
        )
        assert len(repost.new_items) == 1 and repost.alerts == ()
        stories = dict(
            (i.key, sid)
            for i, sid in q.items_with_stories(
                s, [*first.new_items, *shared.new_items, *repost.new_items]
            )
        )
        assert stories["k4"] == stories["k1"] != stories["k3"]
        # outside the story window the same content starts a new story
        late = q.store_batch(
            s,
            fid,
            [pitem(fid, "k5", url="http://x.test/5", title="T", text_=LONG, matches=m)],
            now=NOW + timedelta(days=4),
        )
        assert len(late.alerts) == 1
        assert count(s, ItemRecord) == 4


def test_short_content_is_not_matched_by_hash(sessions: sessionmaker[Session]) -> None:
    """Entries with no text and a one-word title share a hash but not an identity."""
    ids = feeds(sessions, "a", "b")
    with sessions() as s:
        out = q.store_batch(
            s,
            ids["a"],
            [
                pitem(ids["a"], "1", url="http://a.test/1", title="Video", text_=" "),
                pitem(ids["a"], "2", url="http://a.test/2", title="Video", text_=" "),
            ],
            now=NOW,
        )
        q.store_batch(
            s,
            ids["b"],
            [pitem(ids["b"], "3", url="http://b.test/3", title="Video", text_=" ")],
            now=NOW,
        )
        assert len(out.new_items) == 2
        assert count(s, ItemRecord) == 3 and count(s, Story) == 3


def test_alike_new_stories_take_ids_in_item_order(sessions: sessionmaker[Session]) -> None:
    """Two new stories alike in every column (no URL, the same short content) get their ids
    in the order of their items, as row-by-row INSERTs gave them."""
    fid = feeds(sessions, "a")["a"]
    urls = [f"http://a.test/{n}" for n in range(3)]
    with sessions() as s:
        q.store_batch(s, fid, [pitem(fid, f"old{n}", url=u) for n, u in enumerate(urls)], now=NOW)
        # The feed used these URLs before: they say nothing about the story (no story URL).
        again = [pitem(fid, f"new{n}", url=u, title="Video", text_=" ") for n, u in enumerate(urls)]
        out = q.store_batch(s, fid, again, now=NOW)
        in_db = {
            key: sid for key, sid in s.execute(
                select(ItemRecord.key, ItemRecord.story_id).where(ItemRecord.id.in_(out.new_items))
            ).all()
        }
    stories = dict(out.stories)
    assert stories == in_db  # what the outcome says is what was stored
    assert len(set(stories.values())) == 3
    assert [stories[f"new{n}"] for n in range(3)] == sorted(stories.values())


def test_cross_feed_same_url_joins_the_story(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "tass", "akipress", "trend")
    url = "http://wire.test/csto-summit"
    with sessions() as s:
        a = q.store_batch(s, ids["tass"], [pitem(ids["tass"], "a", url=url)], now=NOW)
        b = q.store_batch(
            s, ids["akipress"], [pitem(ids["akipress"], "b", url=url, title="other words")], now=NOW
        )
        # same text, different URL, third outlet: joins by content hash
        c = q.store_batch(
            s,
            ids["trend"],
            [
                pitem(
                    ids["trend"],
                    "c",
                    url="http://trend.test/x",
                    title="title a",
                    text_=pitem(0, "a").item.text,
                )
            ],
            now=NOW + timedelta(hours=1),
        )
        assert len(a.new_items) == len(b.new_items) == len(c.new_items) == 1
        stories = s.execute(select(Story)).scalars().all()
        assert len(stories) == 1
        assert (stories[0].size, stories[0].outlets) == (3, 3)
        assert stories[0].first_seen_at == NOW and stories[0].last_seen_at == NOW + timedelta(
            hours=1
        )
        rows = {r.feed: r for r in q.list_items(s, search=None, limit=10)}
        assert rows["tass"].also_reported_by == ("akipress", "trend")
        assert rows["tass"].story == rows["trend"].story
        listed = q.list_stories(s, limit=5)
        assert len(listed) == 1 and set(listed[0].outlets) == {"tass", "akipress", "trend"}
        assert [i.id for i in listed[0].items] == sorted(a.new_items + b.new_items + c.new_items)
        pairs = q.items_with_stories(s, list(a.new_items + b.new_items))
        assert {sid for _, sid in pairs} == {stories[0].id}
        assert pairs[0][0].url == url and pairs[0][0].published == NOW


def test_story_window_bounds_exact_matching(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "a", "b")
    with sessions() as s:
        q.store_batch(s, ids["a"], [pitem(ids["a"], "k", title="T", text_=LONG)], now=NOW)
        late = NOW + timedelta(hours=73)
        q.store_batch(
            s,
            ids["b"],
            [pitem(ids["b"], "k", url="http://b.test/k", title="T", text_=LONG)],
            now=late,
        )
        assert count(s, Story) == 2


def test_two_items_of_a_story_make_one_alert_per_rule_and_channel(
    sessions: sessionmaker[Session],
) -> None:
    ids = feeds(sessions, "a", "b")
    url = "http://wire.test/1"
    m = (rule("csto", "mail", "chat", "mail"), rule("cis", "mail"))
    with sessions() as s:
        first = q.store_batch(s, ids["a"], [pitem(ids["a"], "x", url=url, matches=m)], now=NOW)
        assert len(first.alerts) == 3
        second = q.store_batch(s, ids["b"], [pitem(ids["b"], "y", url=url, matches=m)], now=NOW)
        assert second.alerts == () and len(second.new_items) == 1
        rows = s.execute(select(Alert.rule, Alert.channel, Alert.story_id, Alert.status)).all()
        assert sorted((r.rule, r.channel) for r in rows) == [
            ("cis", "mail"),
            ("csto", "chat"),
            ("csto", "mail"),
        ]
        story = s.execute(select(Story.id)).scalar_one()
        assert {r.story_id for r in rows} == {story} and {r.status for r in rows} == {"pending"}
        assert set(first.alerts) == {
            q.alert_id("csto", story, "mail"),
            q.alert_id("csto", story, "chat"),
            q.alert_id("cis", story, "mail"),
        }
        assert count(s, MatchRecord) == 4  # both items keep their matches
        items = {r.feed: r for r in q.list_items(s, search=None, limit=5)}
        assert items["b"].rules == ("cis", "csto")


def test_store_batch_rolls_back_on_error(sessions: sessionmaker[Session]) -> None:
    fid = feeds(sessions, "a")["a"]
    bad = pitem(fid, "bad", published=datetime(2026, 1, 1))  # naive: refused by the column
    with sessions() as s:
        with pytest.raises(StorageError):
            q.store_batch(s, fid, [pitem(fid, "good", matches=(rule("r", "c"),)), bad], now=NOW)
        for model in (ItemRecord, Story, MatchRecord, Alert):
            assert count(s, model) == 0
        # the session is usable afterwards and the good item can still be stored
        out = q.store_batch(s, fid, [pitem(fid, "good", matches=(rule("r", "c"),))], now=NOW)
        assert len(out.new_items) == 1 and len(out.alerts) == 1


def test_a_writer_racing_between_read_and_write(sessions: sessionmaker[Session]) -> None:
    """Another daemon commits the same (feed, key) and a story for the same URL after our
    reads: the database's constraints settle it (one item, one story), no error."""
    ids = feeds(sessions, "a", "b")
    raced: list[bool] = []

    def racing_lookup(item: Item) -> int | None:
        if not raced:
            raced.append(True)
            with sessions() as other:
                q.store_batch(
                    other, ids["a"], [pitem(ids["a"], "k1", url="http://w.test/1")], now=NOW
                )
                q.store_batch(
                    other, ids["b"], [pitem(ids["b"], "z", url="http://w.test/2")], now=NOW
                )
        return None

    with sessions() as s:
        out = q.store_batch(
            s,
            ids["a"],
            [
                pitem(ids["a"], "k1", url="http://w.test/1"),
                pitem(ids["a"], "k2", url="http://w.test/2", matches=(rule("r", "c"),)),
            ],
            now=NOW,
            story_lookup=lambda items: [racing_lookup(i) for i in items],
        )
        assert out.duplicates == 1 and len(out.new_items) == 1 and len(out.alerts) == 1
        assert count(s, ItemRecord) == 3
        assert count(s, Story) == 2
        by_feed = {
            r.feed: r for r in q.list_items(s, search=None, limit=9) if r.title == "title k2"
        }
        assert by_feed["a"].also_reported_by == ("b",)


def test_story_lookup_and_not_before(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "a", "b")
    with sessions() as s:
        first = q.store_batch(s, ids["a"], [pitem(ids["a"], "x")], now=NOW)
        story = q.items_with_stories(s, first.new_items)[0][1]
        asked: list[str] = []

        def lookup(item: Item) -> int | None:
            asked.append(item.key)
            return story if item.key == "near" else 987654  # a pruned story id is ignored

        later = NOW + timedelta(hours=2)
        out = q.store_batch(
            s,
            ids["b"],
            [pitem(ids["b"], "near", matches=(rule("r", "c"),)), pitem(ids["b"], "far")],
            now=NOW,
            story_lookup=lambda items: [lookup(i) for i in items],
            not_before=lambda r, c: later,
        )
        assert asked == ["near", "far"]
        got = dict((i.key, sid) for i, sid in q.items_with_stories(s, out.new_items))
        assert got["near"] == story and got["far"] != story
        alert = s.get(Alert, out.alerts[0])
        assert alert is not None and alert.next_attempt_at == later
        assert q.claim_due_alerts(s, NOW, limit=5, owner="o", lease=30) == []
        assert len(q.claim_due_alerts(s, later, limit=5, owner="o", lease=30)) == 1


# -- outbox -----------------------------------------------------------------------------------


def _one_alert(sessions: sessionmaker[Session]) -> str:
    ids = feeds(sessions, "tass", "trend")
    url = "http://wire.test/1"
    with sessions() as s:
        out = q.store_batch(
            s,
            ids["tass"],
            [
                pitem(
                    ids["tass"],
                    "x",
                    url=url,
                    title="CSTO chiefs meet",
                    text_="Security chiefs of the CSTO met in Minsk. " * 3,
                    matches=(rule("csto", "mail", terms=("csto",)),),
                    score=0.8,
                )
            ],
            now=NOW,
        )
        q.store_batch(s, ids["trend"], [pitem(ids["trend"], "y", url=url)], now=NOW)
    return out.alerts[0]


def test_claim_due_alerts_builds_the_message_and_leases(sessions: sessionmaker[Session]) -> None:
    aid = _one_alert(sessions)
    with sessions() as s:
        msgs = q.claim_due_alerts(s, NOW, limit=10, owner="A", lease=60)
        assert [m.id for m in msgs] == [aid]
        m = msgs[0]
        assert (m.rule, m.channel, m.feed, m.title, m.kind) == (
            "csto",
            "mail",
            "tass",
            "CSTO chiefs meet",
            "match",
        )
        assert m.url == "http://wire.test/1" and m.score == 0.8 and m.topic == "security"
        assert m.terms == ("csto",) and "CSTO" in m.snippet
        assert m.also_reported_by == ("trend",) and m.nearest_seed == "seed.txt"
        assert m.published == NOW and m.created == NOW and ("attempts", "0") in m.extra
        assert (
            q.claim_due_alerts(s, NOW + timedelta(seconds=30), limit=10, owner="B", lease=60) == []
        )
        again = q.claim_due_alerts(s, NOW + timedelta(seconds=61), limit=10, owner="B", lease=60)
        assert [x.id for x in again] == [aid]
        q.mark_sent(s, aid, NOW + timedelta(seconds=62))
        s.commit()
        assert q.claim_due_alerts(s, NOW + timedelta(days=1), limit=10, owner="C", lease=60) == []
        row = q.list_alerts(s, limit=10)[0]
        assert (row.status, row.attempts, row.sent_at) == ("sent", 1, NOW + timedelta(seconds=62))
        assert not q.retry_alert(s, aid, NOW)  # already delivered


def test_mark_failed_backs_off_then_dies_and_retry_revives(
    sessions: sessionmaker[Session],
) -> None:
    aid = _one_alert(sessions)
    with sessions() as s:
        q.claim_due_alerts(s, NOW, limit=1, owner="A", lease=60)
        retry_at = NOW + timedelta(minutes=5)
        q.mark_failed(s, aid, NOW, error="HTTP 503", next_attempt=retry_at)
        s.commit()
        assert q.claim_due_alerts(s, NOW + timedelta(minutes=4), limit=1, owner="A", lease=60) == []
        msgs = q.claim_due_alerts(s, retry_at, limit=1, owner="A", lease=60)
        assert ("attempts", "1") in msgs[0].extra
        q.mark_failed(s, aid, retry_at, error="HTTP 500", next_attempt=None)
        s.commit()
        row = q.list_alerts(s, limit=1)[0]
        assert (row.status, row.attempts, row.last_error) == ("dead", 2, "HTTP 500")
        assert q.claim_due_alerts(s, NOW + timedelta(days=9), limit=1, owner="A", lease=60) == []
        assert q.retry_alert(s, aid, NOW + timedelta(days=1))
        assert not q.retry_alert(s, "no-such-id", NOW)
        s.commit()
        back = q.claim_due_alerts(s, NOW + timedelta(days=1), limit=1, owner="A", lease=60)
        assert [m.id for m in back] == [aid]


def test_operator_alerts_are_deduplicated(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:

        def enqueue(key: str, now: datetime) -> str | None:
            return q.enqueue_operator_alert(
                s,
                channel="ops",
                kind="feed_failing",
                key=key,
                title="failing",
                body="feed a",
                now=now,
            )

        first = enqueue("1", NOW)
        assert first is not None
        assert enqueue("1", NOW + timedelta(hours=30)) is None
        other = enqueue("2", NOW)
        assert other is not None and other != first
        s.commit()
        msgs = {m.id: m for m in q.claim_due_alerts(s, NOW, limit=5, owner="A", lease=60)}
        assert set(msgs) == {first, other}
        m = msgs[first]
        assert m.kind == "operator" and m.title == "failing" and ("body", "feed a") in m.extra
        q.mark_sent(s, first, NOW)
        s.commit()
        # sent recently: still quiet; a day later the operator hears again
        assert enqueue("1", NOW + timedelta(hours=2)) is None
        assert enqueue("1", NOW + timedelta(hours=25))


def test_alert_id_is_stable() -> None:
    assert q.alert_id("r", 1, "c") == q.alert_id("r", 1, "c")
    assert len({q.alert_id("r", 1, "c"), q.alert_id("r", 2, "c"), q.alert_id("r", 1, "d")}) == 3


# -- read side --------------------------------------------------------------------------------


def test_feed_status_counts_items(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "a", "b", "c")
    with sessions() as s:
        q.store_batch(s, ids["a"], [pitem(ids["a"], f"k{i}") for i in range(3)], now=NOW)
        q.store_batch(s, ids["b"], [pitem(ids["b"], "k9")], now=NOW)
        counts = {r.name: r.items for r in q.feed_status(s, NOW)}
    assert counts == {"a": 3, "b": 1, "c": 0}


def test_list_items_search_newest_first(sessions: sessionmaker[Session]) -> None:
    fid = feeds(sessions, "a")["a"]
    with sessions() as s:
        q.store_batch(
            s,
            fid,
            [
                pitem(fid, "1", title="Встреча ОДКБ в Минске", text_="Главы спецслужб СНГ"),
                pitem(fid, "2", title="Weather", text_="Rain in 100% of Almaty"),
                pitem(fid, "3", title="Summit", text_="The CSTO summit opened"),
            ],
            now=NOW,
        )
        assert [r.title for r in q.list_items(s, search=None, limit=2)] == [
            "Summit",
            "Weather",
        ]
        assert [r.title for r in q.list_items(s, search="csto", limit=9)] == ["Summit"]
        assert [r.title for r in q.list_items(s, search="одкб", limit=9)] == [
            "Встреча ОДКБ в Минске"
        ]
        assert [r.title for r in q.list_items(s, search="СПЕЦСЛУЖБ", limit=9)] == [
            "Встреча ОДКБ в Минске"
        ]
        assert [r.title for r in q.list_items(s, search="100%", limit=9)] == ["Weather"]
        # Search is by whole words (full-text); `word*` asks for a prefix.
        assert q.list_items(s, search="0%", limit=9) == []
        assert [r.title for r in q.list_items(s, search="10*", limit=9)] == ["Weather"]
        assert q.list_items(s, search="_", limit=9) == []


def test_health_summary_and_story_index_rebuild(sessions: sessionmaker[Session]) -> None:
    ids = feeds(sessions, "a", "b")
    with sessions() as s:
        q.store_batch(s, ids["a"], [pitem(ids["a"], "old")], now=NOW - timedelta(days=5))
        q.store_batch(
            s,
            ids["a"],
            [pitem(ids["a"], f"k{i}", matches=(rule("r", "c"),)) for i in range(3)],
            now=NOW,
        )
        q.record_fetch(
            s, ids["b"], now=NOW, next_check=NOW, result=None, error=FetchError("http://b", "x")
        )
        s.commit()
        h = q.health_summary(s, NOW)
        assert (h.feeds_active, h.feeds_failing, h.feeds_gone) == (2, 1, 0)
        assert (h.items, h.items_last_24h, h.stories) == (4, 3, 4)
        assert (h.alerts_pending, h.alerts_dead, h.alerts_sent_last_24h) == (3, 0, 0)
        recent = list(q.recent_items_with_stories(s, NOW - timedelta(hours=72), batch=2))
        assert [i.key for i, _ in recent] == ["k0", "k1", "k2"]
        assert all(isinstance(sid, int) for _, sid in recent)


def test_release_dead_leases_frees_only_dead_local_owners(
    sessions: sessionmaker[Session],
) -> None:
    feeds(sessions, "a", "b", "c")
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    host = socket.gethostname()
    dead, alive = f"{host}:{done.stdout.strip()}", f"{host}:{os.getpid()}"
    with sessions() as s:
        assert len(q.claim_due_feeds(s, NOW, limit=1, owner=dead, lease=600)) == 1
        assert len(q.claim_due_feeds(s, NOW, limit=1, owner=alive, lease=600)) == 1
        assert len(q.claim_due_feeds(s, NOW, limit=1, owner="elsewhere:1", lease=600)) == 1
        assert q.release_dead_leases(s) == 1
        s.commit()
        again = q.claim_due_feeds(s, NOW, limit=9, owner="new", lease=600)
        assert len(again) == 1


# -- SQLite only ------------------------------------------------------------------------------


def test_sqlite_file_is_tuned(engine: Engine, tmp_path: Path) -> None:
    assert (tmp_path / "data" / "seedwatch.db").exists()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_ping_false_when_database_unusable(tmp_path: Path) -> None:
    eng = open_database(f"sqlite:///{tmp_path}/x.db", upgrade=False)
    (tmp_path / "x.db").unlink(missing_ok=True)
    (tmp_path / "x.db").mkdir()  # a directory where the file should be
    try:
        assert not ping(eng)
    finally:
        eng.dispose()


def test_unknown_schema_revision_is_a_storage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    open_database(url).dispose()
    with sqlite3.connect(tmp_path / "x.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StorageError, match="9999"):
        open_database(url)
