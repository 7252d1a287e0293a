"""Database size per million items, on SQLite and on PostgreSQL, extrapolated from a sample.

    .venv/bin/python bench/db_size.py --items 100000 [--backend sqlite|postgresql|both]

Stores ``items`` generated news items (about 80-character title, 450-character text, 3 tags,
1 in 20 matching a rule with an outbox alert) through storage.store_batch, 50 per feed, then
measures the bytes on disk: the SQLite file after a WAL checkpoint, and for PostgreSQL the
database size minus an empty database's (tables, indexes incl. the full-text GIN, TOAST).
PostgreSQL uses a scratch database ``sw_bench_<pid>`` on 127.0.0.1:5432, dropped at the end.
Prints bytes per item and GB per million items. Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import text

from cold_start import WORDS
from seedwatch.config.model import FeedConfig
from seedwatch.storage import queries as q
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.types import Item, Match, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PER_FEED = 50
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def items_for(feed_id: int, feed_no: int, rng: random.Random) -> list[ProcessedItem]:
    out = []
    for j in range(PER_FEED):
        title = " ".join(rng.choice(WORDS) for _ in range(10)).capitalize()[:80]
        body = " ".join(rng.choice(WORDS) for _ in range(60))
        digest = hashlib.sha256(f"{title}\n{body}{feed_no}-{j}".encode()).hexdigest()
        it = Item(
            feed_id=feed_id, key=hashlib.sha1(f"{feed_no}-{j}".encode()).hexdigest(),
            guid=f"https://news{feed_no % 97}.example/{feed_no}/{j}",
            url=f"https://news{feed_no % 97}.example/articles/{feed_no}-{j}",
            title=title, text=body, published=NOW - timedelta(minutes=j),
            content_hash=digest, tags=("world", "asia", "security"), language="en",
        )
        sc = Score(score=rng.random(), topic="security", relevant=False,
                   nearest_seed="cis-security-chiefs.txt")
        matches = ((Match(rule="watch", terms=("border",), channels=("jsonl",)),)
                   if j % 20 == 0 else ())
        out.append(ProcessedItem(item=it, score=sc, matches=matches))
    return out


def fill(url: str, n_items: int) -> float:
    eng = open_database(url)
    sm = make_sessionmaker(eng)
    n_feeds = max(1, n_items // PER_FEED)
    rng = random.Random(1)
    t0 = time.perf_counter()
    with sm() as s:
        q.sync_config_feeds(
            s, [FeedConfig(url=f"https://news{i % 97}.example/feed{i}.xml", name=f"Feed {i}")
                for i in range(n_feeds)], NOW, default_interval=900.0,
        )
        s.commit()
        ids = [int(r) for r in s.execute(text("SELECT id FROM feeds ORDER BY id")).scalars()]
        for n, fid in enumerate(ids):
            q.store_batch(s, fid, items_for(fid, n, rng), now=NOW)
        s.commit()
    elapsed = time.perf_counter() - t0
    eng.dispose()
    return elapsed


def sqlite_size(n_items: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.db"
        took = fill(f"sqlite:///{path}", n_items)
        eng = open_database(f"sqlite:///{path}")
        with eng.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        eng.dispose()
        return path.stat().st_size, took


def pg_size(n_items: int) -> tuple[int, float]:
    import psycopg

    name = f"sw_bench_{os.getpid()}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        open_database(url).dispose()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            empty = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        took = fill(url, n_items)
        with psycopg.connect(ADMIN.replace("dbname=postgres", f"dbname={name}"),
                             autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
            full = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        assert empty is not None and full is not None
        return int(full[0]) - int(empty[0]), took
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    n = (args.items // PER_FEED) * PER_FEED
    print(f"database size: {n} items stored through store_batch (~80-char title, "
          f"~450-char text, 1 in 20 matched)")
    for backend, fn in (("sqlite", sqlite_size), ("postgresql", pg_size)):
        if args.backend not in (backend, "both"):
            continue
        size, took = fn(n)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"{backend:10} {size / 2**20:8.1f} MB  {size / n:6.0f} B/item  "
              f"{size / n * 1e6 / 2**30:5.2f} GB per million items  "
              f"(stored at {n / took:.0f} items/s; load {load})")


if __name__ == "__main__":
    main()
