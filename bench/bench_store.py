"""CPU per item of ``store_batch``, and optionally of another version of store.py, same run.

    .venv/bin/python bench/bench_store.py [--feeds 40] [--items 50] [--db sqlite|postgresql]
                                          [--old /tmp/store_old.py] [--rounds 3]

Each feed stores one batch of ``--items`` new items (a third with a watch-rule match, a fifth
sharing a URL with another feed's item so that they join its story), then the same batches
again (all duplicates: what an unchanged 200 costs). ``--old`` names a copy of store.py (e.g.
``git show HEAD:daemon/seedwatch/storage/store.py > /tmp/store_old.py``); both versions run in
alternating rounds on fresh databases, so that the machine's load falls on both alike.
CPU is this process's (SQLite runs in it; PostgreSQL's server CPU is not counted).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from seedwatch.config.model import FeedConfig
from seedwatch.storage import feeds as feeds_mod
from seedwatch.storage import store as new_store
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.types import Item, Match, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PROSE = (
    "security chiefs of the CIS met in Dushanbe on Tuesday to discuss border cooperation "
    "drills counter terrorism exchange of intelligence and a joint statement was signed"
)
WORDS = PROSE.split()


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("store_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _batch(feed_id: int, n: int) -> list[ProcessedItem]:
    out = []
    for i in range(n):
        title = f"{WORDS[(feed_id + i) % len(WORDS)]} headline {feed_id}-{i}"
        text = " ".join(WORDS[(feed_id * 7 + i + j) % len(WORDS)] for j in range(120))
        # Every fifth item links a page its neighbour feed carries too: it joins that story.
        url = f"http://f{feed_id}.test/a/{i}"
        if i % 5 == 0:
            url = f"http://shared.test/{feed_id // 2}/{i}"
        item = Item(
            feed_id=feed_id,
            key=f"k{feed_id}-{i}",
            guid=f"g{feed_id}-{i}",
            url=url,
            title=title,
            text=text,
            published=NOW,
            content_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
            tags=("t1",),
            language="en",
        )
        matches = (Match(rule="csto", terms=("csto",), channels=("log",)),) if i % 3 == 0 else ()
        score = Score(score=0.5, topic="security", relevant=True, nearest_seed="seed.txt")
        out.append(ProcessedItem(item=item, score=score, matches=matches))
    return out


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the scratch-database helper
    from tests.support.pg import pg_database

    with pg_database() as url:
        yield url


def _run(
    store_batch: Callable[..., Any], kind: str, n_feeds: int, n_items: int
) -> tuple[float, float]:
    """CPU ms per new item, then per duplicate item."""
    with _database(kind) as url:
        engine = open_database(url)
        sessions = make_sessionmaker(engine)
        with sessions() as s:
            feeds_mod.sync_config_feeds(
                s,
                [FeedConfig(url=f"http://f{i}.test/rss", name=f"f{i}") for i in range(n_feeds)],
                NOW,
                default_interval=900.0,
            )
            s.commit()
        ids = list(range(1, n_feeds + 1))
        batches = {fid: _batch(fid, n_items) for fid in ids}
        follow_up = {"csto": 3}
        per = []
        for _ in ("new", "duplicate"):
            cpu = 0.0
            for fid in ids:
                with sessions() as s:
                    t0 = time.process_time()
                    store_batch(s, fid, batches[fid], now=NOW, follow_up=follow_up)
                    cpu += time.process_time() - t0
            per.append(cpu * 1000 / (n_feeds * n_items))
        engine.dispose()
    return per[0], per[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=40)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--old", help="path of another store.py to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    versions: dict[str, Callable[..., Any]] = {"current": new_store.store_batch}
    if args.old:
        versions = {"old": _load(args.old).store_batch, **versions}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, fn in versions.items():
            results[name].append(_run(fn, args.db, args.feeds, args.items))
    print(
        f"store_batch, {args.db}, {args.feeds} feeds x {args.items} items, {args.rounds} rounds, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for name, runs in results.items():
        new = statistics.median(r[0] for r in runs)
        dup = statistics.median(r[1] for r in runs)
        print(f"  {name:8s} CPU ms per new item {new:.3f}   per duplicate item {dup:.3f}")


if __name__ == "__main__":
    main()
