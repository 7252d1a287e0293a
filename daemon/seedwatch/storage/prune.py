"""Retention: drop items (and their matches), alerts and stories older than ``[storage] keep``.

A pruned item leaves a tombstone (feed_id, key) that store_batch already consults, so a feed that
still carries an old entry does not bring it back as new. Tombstones are a few dozen bytes and are
kept until their feed is deleted.

Afterwards SQLite gives freed pages back with ``PRAGMA incremental_vacuum`` (databases created
since auto_vacuum=INCREMENTAL was set in db.py; an older file needs one offline
``PRAGMA auto_vacuum=INCREMENTAL; VACUUM;`` — until then freed pages are reused, not returned),
and PostgreSQL refreshes planner statistics with ANALYZE (autovacuum reclaims the space).

Work goes in batches, each its own short transaction, so that a daemon storing items meanwhile
waits milliseconds, not the length of the whole prune. On PostgreSQL only one daemon prunes at a
time (a transaction-level advisory lock per batch; the others skip).
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, and_, delete, exists, select, text
from sqlalchemy.orm import Session

from seedwatch.storage.common import (
    ALERTS,
    ITEMS,
    MATCHES,
    STORIES,
    TOMBSTONES,
    insert_for,
    is_postgres,
    storage_errors,
)

log = logging.getLogger(__name__)

# Anything used as ``with lock:`` (threading.Lock, nullcontext).
Lock = contextlib.AbstractContextManager[object]

BATCH = 2000
PRUNE_LOCK_KEY = zlib.crc32(b"seedwatch:prune")
ANALYZE_TABLES = ("items", "matches", "alerts", "stories", "tombstones")
# Pages returned to the file system per prune: bounded so one call never stalls writers long.
VACUUM_PAGES = 20_000
VACUUM_STEP = 2_000  # pages per write transaction (about 0.1 s of the write lock)


@dataclass
class PruneReport:
    items: int = 0
    matches: int = 0
    alerts: int = 0
    stories: int = 0
    tombstones: int = 0
    vacuumed_pages: int = 0
    skipped: bool = False  # another daemon holds the prune lock (PostgreSQL)


def _rowcount(result: object) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _locked_by_other(s: Session) -> bool:
    if not is_postgres(s):
        return False
    got = s.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PRUNE_LOCK_KEY}).scalar()
    return not got


def _prune_items(s: Session, now: datetime, cutoff: datetime, report: PruneReport) -> bool:
    """One batch of old items; False when none were left."""
    rows = s.execute(
        select(ITEMS.c.id, ITEMS.c.feed_id, ITEMS.c.key)
        .where(ITEMS.c.fetched_at < cutoff)
        .order_by(ITEMS.c.id)
        .limit(BATCH)
    ).all()
    if not rows:
        return False
    ids = [int(r.id) for r in rows]
    stones = {(int(r.feed_id), str(r.key)): None for r in rows}
    # RETURNING counts the rows really inserted (rowcount is unreliable here across drivers).
    ins = (
        insert_for(s, TOMBSTONES)
        .values([{"feed_id": f, "key": k, "created_at": now} for f, k in stones])
        .on_conflict_do_nothing(index_elements=[TOMBSTONES.c.feed_id, TOMBSTONES.c.key])
        .returning(TOMBSTONES.c.feed_id)
    )
    report.tombstones += len(s.execute(ins).all())
    report.matches += _rowcount(s.execute(delete(MATCHES).where(MATCHES.c.item_id.in_(ids))))
    # alerts.item_id is ON DELETE SET NULL: a kept alert outlives its item.
    report.items += _rowcount(s.execute(delete(ITEMS).where(ITEMS.c.id.in_(ids))))
    return True


def _prune_alerts(s: Session, cutoff: datetime, lock: Lock) -> int:
    # A pending alert is never dropped unsent, however old: the outbox retries or kills it.
    old = select(ALERTS.c.id).where(ALERTS.c.created_at < cutoff, ALERTS.c.status != "pending")
    return _delete_batches(s, ALERTS, old, lock)


def _prune_stories(s: Session, cutoff: datetime, lock: Lock) -> int:
    has_items = exists().where(ITEMS.c.story_id == STORIES.c.id)
    old = select(STORIES.c.id).where(and_(STORIES.c.last_seen_at < cutoff, ~has_items))
    return _delete_batches(s, STORIES, old, lock)


def _delete_batches(s: Session, table: Table, old: Select[Any], lock: Lock) -> int:
    """Delete the rows of ``table`` whose ids ``old`` selects, BATCH per transaction."""
    total = 0
    while True:
        with lock:
            ids = list(s.execute(old.limit(BATCH)).scalars())
            if ids:
                total += _rowcount(s.execute(delete(table).where(table.c.id.in_(ids))))
            s.commit()
        if not ids:
            break
    return total


def _compact(s: Session, report: PruneReport, lock: Lock) -> None:
    if is_postgres(s):
        for table in ANALYZE_TABLES:
            s.execute(text(f"ANALYZE {table}"))
        s.commit()
        return
    mode = s.execute(text("PRAGMA auto_vacuum")).scalar()
    if mode != 2:  # 2 = INCREMENTAL; NONE (0) keeps freed pages for reuse
        return
    free = int(s.execute(text("PRAGMA freelist_count")).scalar() or 0)
    s.commit()
    left = min(free, VACUUM_PAGES)
    dbapi = s.connection().connection.dbapi_connection
    assert dbapi is not None
    while left > 0:
        step = min(left, VACUUM_STEP)
        with lock:
            cur = dbapi.cursor()
            try:
                # Python's sqlite3 steps a statement without result columns once, and one step
                # of incremental_vacuum frees one page: so one call per page, inside one
                # explicit transaction (outside one, every page would be its own synced commit).
                cur.execute("BEGIN IMMEDIATE")
                for _ in range(step):
                    cur.execute("PRAGMA incremental_vacuum(1)")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        left -= step
        report.vacuumed_pages += step
    s.commit()


@storage_errors
def prune(
    s: Session, now: datetime, keep: float, *, lock: Lock | None = None
) -> PruneReport:
    """Delete what is older than ``keep`` seconds before ``now``; commits as it goes.

    ``lock`` (the runtime's write lock) is held for each batch only, never for the whole prune:
    SQLite's single writer then alternates between the pollers and the prune.
    """
    report = PruneReport()
    cutoff = now - timedelta(seconds=keep)
    held: Lock = lock if lock is not None else contextlib.nullcontext()
    try:
        while True:
            with held:
                if _locked_by_other(s):
                    s.rollback()
                    report.skipped = True
                    return report
                more = _prune_items(s, now, cutoff, report)
                s.commit()
            if not more:
                break
        report.alerts = _prune_alerts(s, cutoff, held)
        report.stories = _prune_stories(s, cutoff, held)
        _compact(s, report, held)
    except BaseException:
        s.rollback()
        raise
    if report.items or report.alerts or report.stories:
        log.info(
            "prune: items=%d matches=%d alerts=%d stories=%d tombstones=%d vacuumed_pages=%d",
            report.items, report.matches, report.alerts, report.stories, report.tombstones,
            report.vacuumed_pages,
        )
    return report
