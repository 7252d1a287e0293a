"""Corpus sweep over the network path (issue 6): every file of ../shared/corpora/
w3c-feedvalidator is served on 127.0.0.1 and polled into SQLite, with the same checks as
tests/test_corpus_store.py (which covers feedparser-tests and realworld-feeds); and for
feedparser's own files, the ``Expect:`` expressions about entry titles still hold for the
titles seedwatch STORED (read back from the database).

Run with ``-s`` to see the counts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from seedwatch.runtime import Runtime
from seedwatch.storage import queries
from seedwatch.storage.common import FEEDS, ITEMS
from seedwatch.textutil import html_to_text, one_line
from tests.conftest import need_corpus
from tests.support.corpus import poll_every_feed, serve_files
from tests.support.daemon import Rule, write_config
from tests.support.feedserver import FeedServer
from tests.test_corpus_store import expected_items

pytestmark = pytest.mark.slow

_EXPECT = re.compile(rb"Expect:\s*(.*?)\s*-->", re.DOTALL)
_SKIP = re.compile(rb"SkipUnless:\s*(.*?)\n")


def test_w3c_corpus_is_stored(tmp_path: Path) -> None:
    root = need_corpus("w3c-feedvalidator", "testcases")
    files = sorted(p for p in root.rglob("*.xml") if p.is_file())
    with FeedServer() as srv:
        served = serve_files(srv, files, "w")
        bodies = {f.name: (f.url, f.body, f.headers) for f in served}
        feeds = [(f.name, f.url) for f in served]
        cfg = write_config(tmp_path, feeds, [Rule("any", "security OR the OR и")])
        rt = Runtime.start(cfg)
        try:
            polled = poll_every_feed(rt, len(files))
            with rt.sessions() as s:
                status = {r.name: r for r in queries.feed_status(s, rt.clock.now())}
                stored = s.execute(select(FEEDS.c.name, ITEMS.c.key, ITEMS.c.canonical_url,
                                          ITEMS.c.content_hash)
                                   .join(ITEMS, ITEMS.c.feed_id == FEEDS.c.id)).all()
        finally:
            rt.close()
    assert len(polled) == len(files)
    internal = [(n, r.last_error) for n, r in status.items()
                if r.last_error and "internal error" in r.last_error]
    assert not internal, internal[:5]
    keys = {(name, key) for name, key, _, _ in stored}
    urls = {url for _, _, url, _ in stored if url}
    hashes = {h for _, _, _, h in stored}
    expected = in_feed = folded = 0
    lost = []
    for name, (url, body, hdrs) in bodies.items():
        for it in expected_items(url, body, hdrs):
            expected += 1
            if (name, it.key) in keys:
                in_feed += 1
            elif (it.url and it.url in urls) or it.content_hash in hashes:
                folded += 1  # the same article, already stored from another file
            else:
                lost.append((name, it.title[:40], it.url))
    errors = sum(bool(r.last_error) for r in status.values())
    print(f"w3c-feedvalidator: {len(files)} files polled, {errors} with a recorded error, "
          f"{expected} items parsed, {len(stored)} stored, {in_feed} in their own feed, "
          f"{folded} folded into a copy from another file, {len(lost)} lost")
    assert not lost, lost[:10]
    assert len(files) > 2000 and len(stored) > 500


def _title_claims(expr: str) -> list[tuple[int, str]]:
    """(entry index, expected title) for each ``entries[i]['title'] == '...'`` in ``expr``;
    index -1 for ``feed['title'] == '...'``."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return []
    claims = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1
                and isinstance(node.ops[0], ast.Eq)):
            continue
        left, right = node.left, node.comparators[0]
        if (isinstance(right, ast.Constant) and isinstance(right.value, str)
                and isinstance(left, ast.Subscript) and isinstance(left.slice, ast.Constant)
                and left.slice.value == "title" and isinstance(left.value, ast.Name)
                and left.value.id == "feed"):
            claims.append((-1, right.value))
        elif (isinstance(right, ast.Constant) and isinstance(right.value, str)
                and isinstance(left, ast.Subscript) and isinstance(left.slice, ast.Constant)
                and left.slice.value == "title" and isinstance(left.value, ast.Subscript)
                and isinstance(left.value.value, ast.Name) and left.value.value.id == "entries"
                and isinstance(left.value.slice, ast.Constant)
                and isinstance(left.value.slice.value, int)):
            claims.append((left.value.slice.value, right.value))
    return claims


def test_feedparser_expect_titles_hold_for_stored_items(tmp_path: Path) -> None:
    root = need_corpus("feedparser-tests", "tests")
    wanted: dict[Path, list[tuple[int, str]]] = {}
    for path in sorted(root.rglob("*.xml")):
        data = path.read_bytes()
        m = _EXPECT.search(data)
        if not m or _SKIP.search(data):
            continue
        claims = _title_claims(m.group(1).decode("utf-8", "replace"))
        if claims:
            wanted[path] = claims
    assert len(wanted) > 50
    with FeedServer() as srv:
        feeds = [(f.name, f.url) for f in serve_files(srv, list(wanted), "t")]
        cfg = write_config(tmp_path, feeds, [Rule("any", "zzzz")])
        rt = Runtime.start(cfg)
        try:
            polled = poll_every_feed(rt, len(feeds), rounds=50)
            with rt.sessions() as s:
                # Documents without entries fail to poll ("no items"): nothing of theirs is
                # stored, so their feed-title claims have nothing to hold on.
                feed_titles = dict(s.execute(
                    select(FEEDS.c.name, FEEDS.c.title).where(FEEDS.c.last_error.is_(None))
                ).all())
                rows = s.execute(
                    select(FEEDS.c.name, ITEMS.c.title)
                    .join(ITEMS, ITEMS.c.feed_id == FEEDS.c.id)
                    .order_by(ITEMS.c.id)
                ).all()
        finally:
            rt.close()
    assert len(polled) == len(feeds)
    by_feed: dict[str, list[str]] = {}
    for name, title in rows:
        by_feed.setdefault(name, []).append(title)
    everywhere = {t for _, t in rows}
    checked = in_feed = elsewhere = feed_checked = 0
    failed = []
    for i, (path, claims) in enumerate(wanted.items()):
        stored = by_feed.get(f"t{i}", [])
        for index, title in claims:
            if index < 0:
                if f"t{i}" not in feed_titles:
                    continue
                feed_checked += 1
                got = feed_titles[f"t{i}"] or ""
                if got not in {title, one_line(title), one_line(html_to_text(title))}:
                    failed.append(f"{path.relative_to(root)}: feed title {got!r} != {title!r}")
                continue
            # A text/plain title is stored as written; an HTML one as its text.
            expected = {one_line(title), one_line(html_to_text(title))}
            checked += 1
            if expected & set(stored):
                in_feed += 1
            elif expected & everywhere:
                elsewhere += 1  # the same article came first in another file: stored once
            else:
                failed.append(f"{path.relative_to(root)}: {expected!r} not in {stored[:3]!r}")
    print(f"feedparser Expect on stored titles: {len(wanted)} files, {feed_checked} feed-title "
          f"claims held, {checked} entry-title claims, "
          f"{in_feed} held in the feed, {elsewhere} held via a cross-feed copy, "
          f"{len(failed)} failed")
    assert not failed, "\n".join(failed[:20])
