"""`seedwatch db copy` (storage/copy.py): SQLite -> PostgreSQL -> SQLite keeps every row and id,
new rows after the copy get fresh ids, search works on the copy, a non-empty target is refused."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from seedwatch.config.model import FeedConfig
from seedwatch.storage import queries as q
from seedwatch.storage.common import ALERTS, FEEDS, ITEMS, MATCHES, STATE, STORIES, TOMBSTONES
from seedwatch.storage.copy import TABLES, run_db_copy
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.storage.prune import prune
from seedwatch.storage.search import search_item_ids
from tests.support.pg import pg_database
from tests.test_storage import NOW, pitem, rule

pytestmark = pytest.mark.postgres


def _fill(url: str) -> None:
    eng = open_database(url)
    sm = make_sessionmaker(eng)
    try:
        with sm() as s:
            q.sync_config_feeds(
                s, [FeedConfig(url=f"http://f{i}.test/rss", name=f"Лента {i}", tags=("ru",))
                    for i in range(3)],
                NOW, default_interval=600.0,
            )
            s.commit()
            fids = [int(i) for i in s.execute(select(FEEDS.c.id).order_by(FEEDS.c.id)).scalars()]
            for n, fid in enumerate(fids):
                q.store_batch(
                    s, fid,
                    [pitem(fid, f"k{n}-{j}", title=f"Совещание {n} {j}",
                           matches=(rule("csto", "jsonl", "log"),) if j % 2 else ())
                     for j in range(5)],
                    now=NOW - timedelta(days=300 if j_old(n) else 1),
                )
            s.commit()
            prune(s, NOW, 200 * 86400.0)  # leaves tombstones of feed 0
            q.set_state(s, "classifier", '{"n": 3}', NOW)
            s.commit()
    finally:
        eng.dispose()


def j_old(n: int) -> bool:
    return n == 0


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    eng = open_database(url)
    try:
        with eng.connect() as conn:
            return {
                t.name: [dict(r._mapping) for r in
                         conn.execute(select(t).order_by(*t.primary_key.columns))]
                for t in TABLES
            }
    finally:
        eng.dispose()


def test_sqlite_to_postgres_and_back_keeps_everything(tmp_path: Path) -> None:
    first = f"sqlite:///{tmp_path}/first.db"
    back = f"sqlite:///{tmp_path}/back.db"
    _fill(first)
    want = _dump(first)
    assert {t: len(rows) for t, rows in want.items()} == {
        "feeds": 3, "stories": 10, "items": 10, "matches": 4, "alerts": 12, "tombstones": 5,
        "state": 1,
    }
    with pg_database() as pg:
        out = io.StringIO()
        assert run_db_copy(first, pg, out) == 0, out.getvalue()
        assert "copied 45 rows" in out.getvalue()
        assert _dump(pg) == want

        # Sequences moved past the copied ids: new rows do not collide.
        eng = open_database(pg)
        sm = make_sessionmaker(eng)
        try:
            with sm() as s:
                fid = max(r["id"] for r in want["feeds"])
                got = q.store_batch(s, fid, [pitem(fid, "after-copy")], now=NOW)
                s.commit()
                assert got.new_items[0] > max(r["id"] for r in want["items"])
                assert search_item_ids(s, "совещание", 100) == sorted(
                    [r["id"] for r in want["items"]], reverse=True)
                # Re-published entries of pruned items stay out on the new database too.
                again = q.store_batch(s, want["tombstones"][0]["feed_id"],
                                      [pitem(want["tombstones"][0]["feed_id"], "k0-0")], now=NOW)
                assert again.new_items == () and again.duplicates == 1
                s.rollback()
        finally:
            eng.dispose()
        want_pg = _dump(pg)

        out = io.StringIO()
        assert run_db_copy(pg, back, out) == 0, out.getvalue()
        assert _dump(back) == want_pg

        # A target that already holds data is refused, and left as it was.
        out = io.StringIO()
        assert run_db_copy(first, back, out) == 1
        assert "not empty" in out.getvalue()
        assert _dump(back) == want_pg

    eng = open_database(back)
    try:
        with make_sessionmaker(eng)() as s:
            # The FTS index of the SQLite copy was filled as the rows went in.
            assert len(search_item_ids(s, "совещание", 100)) == 10
            assert len(search_item_ids(s, "after copy", 100)) == 1
    finally:
        eng.dispose()


def test_bad_source_url_is_one_line(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_db_copy("nosuch://x", f"sqlite:///{tmp_path}/t.db", out) == 1
    assert out.getvalue().startswith("db copy failed:")
    assert len(out.getvalue().strip().splitlines()) == 1


__all__ = ["ALERTS", "ITEMS", "MATCHES", "STATE", "STORIES", "TOMBSTONES"]
