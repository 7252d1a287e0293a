"""``seedwatch db copy FROM_URL TO_URL``: move a database to another one, ids and all.

The usual move is SQLite -> PostgreSQL when one host is no longer enough; the reverse works too.
Both schemas are brought to the newest version first; the target must be empty (a copy into a
live database would mix two histories). Rows are streamed in primary-key order, a batch at a
time, so memory stays flat whatever the size; PostgreSQL's id sequences are moved past the
copied ids at the end, so the next insert does not collide.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TextIO

from sqlalchemy import Engine, Table, func, insert, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from seedwatch.errors import SeedwatchError, StorageError, redact_url
from seedwatch.storage.common import (
    ALERTS,
    FEEDS,
    ITEMS,
    MATCHES,
    STATE,
    STORIES,
    TOMBSTONES,
    describe,
)
from seedwatch.storage.db import current_revision, open_database

log = logging.getLogger(__name__)

# Parents before children, so foreign keys hold at every step.
TABLES: tuple[Table, ...] = (FEEDS, STORIES, ITEMS, MATCHES, ALERTS, TOMBSTONES, STATE)
SERIAL_TABLES: tuple[Table, ...] = (FEEDS, STORIES, ITEMS, MATCHES)
BATCH = 5000


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _check_columns(src: Engine) -> None:
    """Refuse rather than silently drop a column the models do not know (a newer schema)."""
    insp = inspect(src)
    for table in TABLES:
        extra = {c["name"] for c in insp.get_columns(table.name)} - set(table.c.keys())
        if extra:
            raise StorageError(
                f"{table.name} has columns this version does not know ({', '.join(sorted(extra))})"
                "; copy with the seedwatch version that wrote them"
            )


def _copy_table(src: Engine, dst: Engine, table: Table) -> int:
    order = list(table.primary_key.columns)
    copied = 0
    with src.connect() as sconn, dst.connect() as dconn:
        result = sconn.execution_options(stream_results=True, yield_per=BATCH).execute(
            select(table).order_by(*order)
        )
        for part in result.partitions(BATCH):
            rows: list[dict[str, Any]] = [dict(r._mapping) for r in part]
            dconn.execute(insert(table), rows)
            dconn.commit()
            copied += len(rows)
    return copied


def _fix_sequences(dst: Engine) -> None:
    if dst.dialect.name != "postgresql":
        return  # SQLite's INTEGER PRIMARY KEY continues from max(rowid) by itself
    with dst.begin() as conn:
        for table in SERIAL_TABLES:
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}
            ).scalar()
            if seq is None:
                continue
            conn.execute(
                text(f"SELECT setval(:seq, COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, "
                     "false)"),
                {"seq": seq},
            )


def _analyze(dst: Engine) -> None:
    with dst.begin() as conn:
        if dst.dialect.name == "postgresql":
            for table in TABLES:
                conn.execute(text(f"ANALYZE {table.name}"))
        else:
            conn.execute(text("PRAGMA optimize"))


def copy_database(src_url: str, dst_url: str, out: TextIO) -> dict[str, int]:
    """Copy every table of ``src_url`` into the empty database ``dst_url``; rows per table."""
    src = open_database(src_url)
    dst = open_database(dst_url)
    try:
        if current_revision(src) != current_revision(dst):
            raise StorageError("source and target are at different schema versions")
        _check_columns(src)
        busy = [t.name for t in TABLES if _count(dst, t)]
        if busy:
            raise StorageError(
                f"target {redact_url(dst_url)} is not empty (rows in {', '.join(busy)}); "
                "copy into a new database"
            )
        counts: dict[str, int] = {}
        for table in TABLES:
            t0 = time.monotonic()
            counts[table.name] = _copy_table(src, dst, table)
            print(f"{table.name:<11} {counts[table.name]:>10} rows  "
                  f"{time.monotonic() - t0:7.1f} s", file=out)
        _fix_sequences(dst)
        _analyze(dst)
        for table in TABLES:
            if _count(dst, table) != counts[table.name]:
                raise StorageError(f"copy of {table.name} is incomplete")
        return counts
    finally:
        src.dispose()
        dst.dispose()


def run_db_copy(src: str, dst: str, out: TextIO) -> int:
    """The ``seedwatch db copy`` command: 0 on success, 1 with a one-line reason otherwise."""
    try:
        counts = copy_database(src, dst, out)
    except SeedwatchError as e:
        print(f"db copy failed: {e}", file=out)
        return 1
    except SQLAlchemyError as e:  # a driver error mid-copy: say which, never the row values
        print(f"db copy failed: {describe(e)}", file=out)
        return 1
    total = sum(counts.values())
    print(f"copied {total} rows from {redact_url(src)} to {redact_url(dst)}", file=out)
    return 0
