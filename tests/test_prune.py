"""Retention (storage/prune.py) on SQLite and PostgreSQL: old items go with their matches and
leave tombstones; old alerts and stories go; a re-published old entry stays out."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.storage import queries as q
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.storage.models import Alert, ItemRecord, MatchRecord, Story, Tombstone
from seedwatch.storage.prune import prune
from seedwatch.storage.search import search_item_ids
from tests.test_storage import NOW, count, feeds, pitem, rule

DAY = 86400.0


def test_prune_drops_old_keeps_new_and_tombstones_stop_republishing(
    sessions: sessionmaker[Session],
) -> None:
    fid = feeds(sessions, "a")["a"]
    old_at = NOW - timedelta(days=200)
    with sessions() as s:
        old = q.store_batch(
            s, fid,
            [pitem(fid, f"old{i}", title=f"ancient report {i}",
                   matches=(rule("r1", "log", terms=("x",)),)) for i in range(3)],
            now=old_at,
        )
        new = q.store_batch(
            s, fid, [pitem(fid, "new1", title="fresh report", matches=(rule("r2", "log"),))],
            now=NOW - timedelta(days=1),
        )
        s.commit()
        assert len(old.new_items) == 3 and len(new.new_items) == 1
        # The old alert was delivered long ago; the new one still waits.
        s.execute(update(Alert).where(Alert.rule == "r1").values(status="sent"))
        s.commit()
        assert count(s, MatchRecord) == 4
        assert count(s, Alert) == 4  # one per (rule, story, channel)

    with sessions() as s:
        report = prune(s, NOW, 180 * DAY)
    assert (report.items, report.matches, report.tombstones) == (3, 3, 3)
    assert report.alerts == 3
    assert report.stories == 3
    with sessions() as s:
        assert [r.key for r in s.execute(select(ItemRecord.key))] == ["new1"]
        assert count(s, MatchRecord) == 1
        assert [a.rule for a in s.execute(select(Alert.rule))] == ["r2"]
        assert count(s, Tombstone) == 3
        kept_story = s.execute(select(ItemRecord.story_id)).scalar_one()
        assert [sid for (sid,) in s.execute(select(Story.id))] == [kept_story]
        # The search index forgot the pruned items too.
        assert search_item_ids(s, "ancient", 10) == []
        assert search_item_ids(s, "fresh", 10) == list(new.new_items)

    # The feed still carries the old entries: they are duplicates, not news.
    with sessions() as s:
        again = q.store_batch(s, fid, [pitem(fid, f"old{i}") for i in range(3)], now=NOW)
        s.commit()
        assert again.new_items == ()
        assert again.duplicates == 3
        # A second prune has nothing to do.
        assert prune(s, NOW, 180 * DAY).items == 0


def test_pending_alerts_survive_the_window(sessions: sessionmaker[Session]) -> None:
    fid = feeds(sessions, "a")["a"]
    with sessions() as s:
        q.store_batch(s, fid, [pitem(fid, "k", matches=(rule("r", "log"),))],
                      now=NOW - timedelta(days=400))
        s.commit()
        lock = threading.Lock()
        report = prune(s, NOW, 180 * DAY, lock=lock)
        assert not lock.locked()
        assert report.items == 1 and report.alerts == 0
        alert = s.execute(select(Alert)).scalar_one()
        assert alert.status == "pending" and alert.item_id is None


def test_new_sqlite_database_is_incremental_and_gives_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "sw.db"
    eng = open_database(f"sqlite:///{path}")
    sm = make_sessionmaker(eng)
    try:
        fid = feeds(sm, "a")["a"]
        with sm() as s:
            q.store_batch(
                s, fid, [pitem(fid, f"k{i}", text_="word " * 2000) for i in range(200)],
                now=NOW - timedelta(days=365),
            )
            s.commit()
            assert s.execute(text("PRAGMA auto_vacuum")).scalar() == 2
            pages_before = int(s.execute(text("PRAGMA page_count")).scalar_one())
            report = prune(s, NOW, 180 * DAY)
            pages_after = int(s.execute(text("PRAGMA page_count")).scalar_one())
        assert report.items == 200
        assert report.vacuumed_pages > 0
        assert pages_after < pages_before - report.vacuumed_pages // 2
    finally:
        eng.dispose()


def test_old_sqlite_file_without_auto_vacuum_still_prunes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE placeholder (x)").connection.close()
    eng = open_database(f"sqlite:///{path}")
    sm = make_sessionmaker(eng)
    try:
        fid = feeds(sm, "a")["a"]
        with sm() as s:
            assert s.execute(text("PRAGMA auto_vacuum")).scalar() == 0
            q.store_batch(s, fid, [pitem(fid, "k")], now=NOW - timedelta(days=365))
            s.commit()
            report = prune(s, NOW, 180 * DAY)
        assert (report.items, report.vacuumed_pages) == (1, 0)
    finally:
        eng.dispose()
