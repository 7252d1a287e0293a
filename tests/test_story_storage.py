"""Stories in storage on a real SQLite file: follow-up alerts, tombstones of deleted items,
cross-feed copies of one page, and the read side the CLI prints."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.config.model import FeedConfig
from seedwatch.storage import queries as q
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.storage.models import Alert, Feed, ItemRecord, Story, Tombstone
from seedwatch.storage.store import StoryLookup, delete_items, follow_up_id
from seedwatch.types import Item, Match, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TEXT = "Security-service chiefs of the CIS met in Dushanbe on Tuesday to discuss the borders."


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = open_database(f"sqlite:///{tmp_path}/seedwatch.db")
    yield make_sessionmaker(engine)
    engine.dispose()


def feeds(sessions: sessionmaker[Session], n: int) -> list[int]:
    names = [f"outlet{i}" for i in range(n)]
    with sessions() as s:
        q.sync_config_feeds(
            s, [FeedConfig(url=f"http://{x}.test/rss", name=x) for x in names], NOW,
            default_interval=900.0,
        )
        s.commit()
        by_name = {name: fid for name, fid in s.execute(select(Feed.name, Feed.id)).all()}
    return [by_name[x] for x in names]


def each(lookup: Callable[[Item], int | None]) -> StoryLookup:
    """store_batch's batch lookup from a per-item one."""
    return lambda items: [lookup(i) for i in items]


def pitem(
    feed_id: int,
    key: str,
    *,
    url: str | None = None,
    title: str = "CIS security chiefs meet",
    text: str = TEXT,
    matches: tuple[Match, ...] = (),
    published: datetime = NOW,
) -> ProcessedItem:
    item = Item(
        feed_id=feed_id,
        key=key,
        guid=key,
        url=url or f"http://outlet{feed_id}.test/{key}",
        title=title,
        text=text,
        published=published,
        content_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
        language="en",
    )
    return ProcessedItem(item, Score(0.7, "security", True), matches)


WATCH = Match(rule="cis", terms=("cis",), channels=("mail", "chat"))
OTHER = Match(rule="quiet", terms=("cis",), channels=("mail",))


def test_follow_up_once_per_rule_story_channel_when_outlets_reach_the_threshold(
    sessions: sessionmaker[Session],
) -> None:
    ids = feeds(sessions, 5)
    story: list[int] = []

    def lookup(_: Item) -> int | None:
        return story[0] if story else None

    follow = {"cis": 3}  # "quiet" has no follow-up
    made: list[tuple[str, ...]] = []
    with sessions() as s:
        for n, fid in enumerate(ids):
            # Every outlet rewrites the story (own URL, own words): only the lookup folds them.
            out = q.store_batch(
                s, fid, [pitem(fid, f"k{n}", text=f"{TEXT} Report {n}.", matches=(WATCH, OTHER))],
                now=NOW + timedelta(minutes=n), story_lookup=each(lookup), follow_up=follow,
            )
            assert len(out.new_items) == 1
            if not story:
                story.append(q.items_with_stories(s, out.new_items)[0][1])
            made.append(out.alerts)
        # a later item of an outlet already counted adds no outlet and no follow-up
        again = q.store_batch(
            s, ids[0], [pitem(ids[0], "late", text=f"{TEXT} Update.", matches=(WATCH,))],
            now=NOW + timedelta(hours=1), story_lookup=each(lookup), follow_up=follow,
        )
        rows = s.execute(select(Alert.kind, Alert.rule, Alert.channel, Alert.id)).all()
        sid = story[0]
        assert s.execute(select(Story.outlets).where(Story.id == sid)).scalar_one() == 5
    assert len(made[0]) == 3  # cis x mail, chat + quiet x mail
    assert made[1] == ()
    # the third outlet crosses 3: one follow-up per channel of the rule that wants one
    assert set(made[2]) == {follow_up_id("cis", sid, c, 3) for c in ("mail", "chat")}
    assert made[3] == made[4] == again.alerts == ()
    kinds = sorted((r.kind, r.rule, r.channel) for r in rows)
    assert kinds == [
        ("follow_up", "cis", "chat"),
        ("follow_up", "cis", "mail"),
        ("match", "cis", "chat"),
        ("match", "cis", "mail"),
        ("match", "quiet", "mail"),
    ]
    with sessions() as s:
        msgs = q.claim_due_alerts(s, NOW + timedelta(hours=2), limit=10, owner="t", lease=60)
    follow_msgs = [m for m in msgs if m.kind == "follow_up"]
    assert len(follow_msgs) == 2
    assert all(m.story_id == sid and len(m.also_reported_by) == 4 for m in follow_msgs)


def test_no_follow_up_for_a_story_that_never_alerted_on_the_rule(
    sessions: sessionmaker[Session],
) -> None:
    ids = feeds(sessions, 3)
    story: list[int] = []
    with sessions() as s:
        for n, fid in enumerate(ids):
            out = q.store_batch(
                s, fid, [pitem(fid, f"k{n}", text=f"{TEXT} {n}")], now=NOW,
                story_lookup=each(lambda _: story[0] if story else None), follow_up={"cis": 2},
            )
            if not story:
                story.append(q.items_with_stories(s, out.new_items)[0][1])
        assert s.execute(select(Alert)).first() is None


def test_deleted_items_leave_tombstones_and_do_not_come_back(
    sessions: sessionmaker[Session],
) -> None:
    a, b = feeds(sessions, 2)
    with sessions() as s:
        first = q.store_batch(
            s, a, [pitem(a, "old", matches=(WATCH,)), pitem(a, "keep", title="Other news")],
            now=NOW,
        )
        joined = q.store_batch(
            s, b, [pitem(b, "copy", text=f"{TEXT} More.")], now=NOW,
            story_lookup=each(lambda _: q.items_with_stories(s, first.new_items[:1])[0][1]),
        )
        old_id = first.new_items[0]
        sid = q.items_with_stories(s, [old_id])[0][1]
        assert delete_items(s, [old_id], NOW + timedelta(days=1)) == 1
        stones = s.execute(select(Tombstone.feed_id, Tombstone.key)).all()
        assert [tuple(r) for r in stones] == [(a, "old")]
        counts = s.execute(select(Story.size, Story.outlets).where(Story.id == sid)).one()
        assert tuple(counts) == (1, 1)
        # the feed re-publishes the old entry (new date, same GUID): not new, no alert
        again = q.store_batch(
            s, a, [pitem(a, "old", matches=(WATCH,), published=NOW + timedelta(days=30))],
            now=NOW + timedelta(days=30),
        )
        assert again.new_items == () and again.duplicates == 1 and again.alerts == ()
        # deleting the story's last item removes the story, not the alert's record
        assert delete_items(s, list(joined.new_items), NOW + timedelta(days=31)) == 1
        assert s.execute(select(Story.id).where(Story.id == sid)).first() is None
        kept = s.execute(select(Alert.channel, Alert.story_id, Alert.item_id)).all()
        assert sorted(tuple(r) for r in kept) == [("chat", None, None), ("mail", None, None)]
        assert delete_items(s, [999_999], NOW) == 0
        remaining = s.execute(select(ItemRecord.key)).scalars().all()
    assert remaining == ["keep"]


def test_same_page_from_two_feeds_is_one_article_and_the_database_holds_one_url(
    sessions: sessionmaker[Session],
) -> None:
    a, b = feeds(sessions, 2)
    url = "https://ria.example/20231204/article-1913545949.html"
    with sessions() as s:
        one = q.store_batch(s, a, [pitem(a, "x", url=url)], now=NOW)
        # the same URL and headline, the body edited between the two fetches
        edited = q.store_batch(s, b, [pitem(b, "y", url=url, text=TEXT + " (updated)")], now=NOW)
        # the same text from the same outlet under a re-dated URL
        moved = url.replace("20231204", "20231205")
        redated = q.store_batch(s, b, [pitem(b, "z", url=moved)], now=NOW)
        # another outlet printing the same text is another report: stored, in the story
        wire = q.store_batch(s, b, [pitem(b, "w", url="https://wire.example/1")], now=NOW)
        assert len(one.new_items) == 1 and len(wire.new_items) == 1
        assert (edited.duplicates, redated.duplicates) == (1, 1)
        held = s.execute(select(ItemRecord.article_url).order_by(ItemRecord.id)).scalars().all()
        assert held == [url, "https://wire.example/1"]
        story = s.execute(select(Story)).scalar_one()
        assert (story.size, story.outlets) == (2, 2)


def test_stories_read_side_lists_items_and_also_reported_by(
    sessions: sessionmaker[Session],
) -> None:
    a, b = feeds(sessions, 2)
    with sessions() as s:
        first = q.store_batch(s, a, [pitem(a, "x")], now=NOW)
        sid = q.items_with_stories(s, first.new_items)[0][1]
        q.store_batch(
            s, b, [pitem(b, "y", text=TEXT + " Also.")], now=NOW + timedelta(hours=1),
            story_lookup=each(lambda _: sid),
        )
        stories = q.list_stories(s, limit=10)
        items = {r.feed: r for r in q.list_items(s, search=None, limit=10)}
    assert len(stories) == 1
    row = asdict(stories[0])  # what `seedwatch stories --json` prints
    assert row["outlets"] == ("outlet0", "outlet1") and row["size"] == 2
    assert [(i["feed"], i["url"], i["title"]) for i in row["items"]] == [
        ("outlet0", f"http://outlet{a}.test/x", "CIS security chiefs meet"),
        ("outlet1", f"http://outlet{b}.test/y", "CIS security chiefs meet"),
    ]
    assert row["items"][1]["published"] == NOW
    assert items["outlet0"].also_reported_by == ("outlet1",)
    assert items["outlet1"].also_reported_by == ("outlet0",)
