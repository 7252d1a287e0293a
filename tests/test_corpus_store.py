"""Every third-party feed file goes through fetch (served on 127.0.0.1), parse, normalize,
classify, match and store without an unhandled exception, and every item the pure pipeline
reads from a file is stored."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seedwatch.errors import ParseError
from seedwatch.normalize import normalize_feed
from seedwatch.parse import parse
from seedwatch.runtime import Runtime
from seedwatch.storage import queries
from seedwatch.types import FeedRef, FetchResult, Item
from tests.conftest import need_corpus
from tests.support.corpus import poll_every_feed, serve_files
from tests.support.daemon import Rule, write_config
from tests.support.feedserver import FeedServer

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 28, tzinfo=UTC)
def expected_items(url: str, body: bytes, headers: dict[str, str]) -> list[Item]:
    result = FetchResult(
        requested_url=url, url=url, status=200,
        headers=tuple((k.lower(), v) for k, v in headers.items()), body=body,
    )
    try:
        parsed = parse(result)
    except ParseError:
        return []
    feed = FeedRef(id=1, url=url, name="x")
    return list(normalize_feed(feed, parsed, fetched_at=NOW, base_url=url))


def sweep(tmp_path: Path, files: list[Path]) -> tuple[int, int, int]:
    with FeedServer() as srv:
        served = serve_files(srv, files, "f")
        bodies = {f.url: (f.body, f.headers) for f in served}
        cfg = write_config(
            tmp_path, [(f.name, f.url) for f in served], [Rule("rare", "uranium AND enrichment")]
        )
        rt = Runtime.start(cfg)
        try:
            polled = poll_every_feed(rt, len(files))
            assert len(polled) == len(files)
            with rt.sessions() as s:
                rows = queries.feed_status(s, rt.clock.now())
        finally:
            rt.close()
    internal = [r for r in rows if r.last_error and "internal error" in r.last_error]
    assert not internal, [(r.url, r.last_error) for r in internal[:5]]
    want = {r.url: expected_items(r.url, *bodies[r.url]) for r in rows}
    stored = sum(r.items for r in rows)
    errors = sum(bool(r.last_error) for r in rows)
    db = sqlite3.connect(tmp_path / "seedwatch.db")
    feed_of = dict(db.execute("SELECT url, id FROM feeds").fetchall())
    keys = set(db.execute("SELECT feed_id, key FROM items").fetchall())
    url_feeds: dict[str, set[int]] = {}
    for fid, url in db.execute("SELECT feed_id, canonical_url FROM items"):
        url_feeds.setdefault(url, set()).add(fid)
    db.close()
    # Every item the pure pipeline reads is stored in its feed, or is the same page (same URL)
    # that another feed carried and that is stored there: an article is stored once.
    lost = [
        (url, it.title[:40])
        for url, items in want.items()
        for it in items
        if (feed_of[url], it.key) not in keys
        and not (it.url and url_feeds.get(it.url, set()) - {feed_of[url]})
    ]
    assert not lost, lost[:5]
    print(f"swept {len(files)} files: {stored} items stored, {errors} feeds with errors")
    return len(files), stored, errors


def test_feedparser_corpus_is_stored(tmp_path: Path) -> None:
    root = need_corpus("feedparser-tests", "tests")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".xml", ".json"))
    n, stored, _ = sweep(tmp_path, files)
    assert n > 2000 and stored > 1000


def test_realworld_corpus_is_stored(tmp_path: Path) -> None:
    root = need_corpus("realworld-feeds")
    files = sorted(p for p in (root / "benchmark_data").iterdir() if p.is_file())
    files += sorted((root / "tests" / "integration").glob("*.xml"))
    n, stored, _errors = sweep(tmp_path, files)
    assert n >= 210 and stored > 5000
