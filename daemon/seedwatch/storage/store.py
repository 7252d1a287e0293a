"""Storing one feed's batch: items, stories, matches and outbox alerts in one transaction.

Uniqueness is the database's job (unique constraints + ON CONFLICT DO NOTHING), so two daemons
storing the same thing at once end with one row, never an error or a double. A batch is first
planned from reads and written with multi-row INSERTs; if another writer got in between, the
constraint fails that attempt and the batch is redone row by row with ON CONFLICT.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Integer, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from seedwatch.errors import StorageError
from seedwatch.storage.common import (
    ALERTS,
    ITEMS,
    MATCHES,
    STORIES,
    TOMBSTONES,
    chunks,
    describe,
    rollback_on_error,
    storage_errors,
    tuple_of,
)
from seedwatch.types import Item, ProcessedItem, StoreOutcome

log = logging.getLogger(__name__)

STORY_WINDOW = timedelta(hours=72)
HEADLINE_MAX = 500
# PostgreSQL deadlock_detected and serialization_failure: two writers creating stories for
# the same URLs in opposite orders; the retry sees the other's committed rows.
_RETRYABLE = ("40P01", "40001")
_ALERT_NS = uuid.UUID("6f1d8d0e-3c1b-5b7e-9a52-5eed0a7c0001")


# Below this much title + text the content hash identifies too little: feeds with empty or
# one-word entries ("Video", "") would fold different articles into one. Such items are told
# apart by key and URL only.
MIN_HASHED_CONTENT = 40


def content_key(it: Item) -> str | None:
    """The item's content hash when its content is substantial enough to identify it."""
    if len(it.title.strip()) + len(it.text.strip()) < MIN_HASHED_CONTENT:
        return None
    return it.content_hash


def alert_id(rule: str, story_id: int, channel: str) -> str:
    """The stable id of the one alert for (rule, story, channel); receivers dedupe on it."""
    return str(uuid.uuid5(_ALERT_NS, f"{rule}\x1f{story_id}\x1f{channel}"))


def follow_up_id(rule: str, story_id: int, channel: str, threshold: int) -> str:
    """The stable id of the one follow-up for (rule, story, channel, threshold)."""
    return str(
        uuid.uuid5(_ALERT_NS, f"{rule}\x1f{story_id}\x1f{channel}\x1ffollowup\x1f{threshold}")
    )


# A date in a URL's path: /20231204/, /2023/12/04/, /2023-12-04/.
_PATH_DATE = re.compile(r"/(?:\d{8}|\d{4}/\d{1,2}/\d{1,2}|\d{4}-\d{2}-\d{2})(?=/)")


def undated(url: str | None) -> str | None:
    """The URL without dates in its path: an outlet that re-dates an article (RIA moves
    /20231203/alimenty-1599485050.html to /20231204/...) still names the same article."""
    if not url:
        return None
    parts = urlsplit(url)
    path = _PATH_DATE.sub("", parts.path)
    return parts._replace(path=path, fragment="").geturl()


@dataclass(frozen=True)
class _Stmts:
    """The batch's write statements, built once per dialect: building a statement per row
    (``.values(...)``) cost more Python time than the database spent executing it."""

    story: Any
    item: Any
    match: Any
    alert: Any
    refresh: Any
    bulk_story: Any
    bulk_item: Any
    bulk_match: Any
    outlets: Any


@functools.cache
def _stmts(dialect: str) -> _Stmts:
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    sid = bindparam("sid", type_=Integer())
    refresh = (
        update(STORIES)
        .where(STORIES.c.id == sid)
        .values(
            # Counted from the items rather than incremented: concurrent writers cannot drift.
            size=select(func.count(ITEMS.c.id)).where(ITEMS.c.story_id == sid).scalar_subquery(),
            outlets=select(func.count(func.distinct(ITEMS.c.feed_id)))
            .where(ITEMS.c.story_id == sid)
            .scalar_subquery(),
            last_seen_at=bindparam("now", type_=STORIES.c.last_seen_at.type),
        )
    )
    return _Stmts(
        story=ins(STORIES).on_conflict_do_nothing().returning(STORIES.c.id),
        # No conflict target: a (feed, key) or an article URL stored first by another writer
        # both make this row a duplicate.
        item=ins(ITEMS).on_conflict_do_nothing().returning(ITEMS.c.id),
        match=ins(MATCHES).on_conflict_do_nothing(),
        # One alert per (rule, story, channel): a later item of the story adds nothing.
        alert=ins(ALERTS).on_conflict_do_nothing().returning(ALERTS.c.id),
        refresh=refresh,
        bulk_story=ins(STORIES).returning(STORIES.c.id, sort_by_parameter_order=True),
        bulk_item=ins(ITEMS).returning(ITEMS.c.id, sort_by_parameter_order=True),
        bulk_match=ins(MATCHES),
        outlets=select(STORIES.c.id, STORIES.c.outlets).where(
            STORIES.c.id.in_(bindparam("sids", expanding=True))
        ),
    )


def _item_values(
    feed_id: int, p: ProcessedItem, now: datetime, story_id: int, article_url: str | None
) -> dict[str, Any]:
    it, sc = p.item, p.score
    return {
        "feed_id": feed_id,
        "key": it.key,
        "guid": it.guid,
        "url": it.url,
        "canonical_url": it.url,
        "article_url": article_url,
        "title": it.title,
        "text": it.text,
        "author": it.author,
        "tags": list(it.tags),
        "language": it.language,
        "published_at": it.published,
        "fetched_at": now,
        "content_hash": it.content_hash,
        "score": float(sc.score),
        "topic": sc.topic,
        "relevant": bool(sc.relevant),
        "explanation": {
            "nearest_seed": sc.nearest_seed,
            "passage": sc.passage,
            "terms": list(sc.terms),
        },
        "story_id": story_id,
    }


def _story_values(item: Item, url: str | None, now: datetime) -> dict[str, Any]:
    return {
        "headline": (item.title or item.url or "(untitled)")[:HEADLINE_MAX],
        "first_seen_at": now,
        "last_seen_at": now,
        "size": 1,
        "outlets": 1,
        "canonical_url": url,
        "content_hash": item.content_hash,
    }


@dataclass
class _Seen:
    """What planning a batch knows, from the database and from the batch's earlier items."""

    keys: set[str] = field(default_factory=set)  # this feed's keys and tombstones
    contents: set[tuple[str | None, str]] = field(default_factory=set)  # this feed's (url, hash)
    copies: set[tuple[str, str]] = field(default_factory=set)  # any feed's (url, hash)
    claims: dict[str, int] = field(default_factory=dict)  # article URL -> the feed holding it
    # (URL, headline) -> the feeds carrying that page under that headline
    pages: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    shared_urls: set[str] = field(default_factory=set)  # URLs a feed used for several contents
    # (URL without its dates, content hash) -> the feeds holding it, within the window
    reposts: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    urls: set[str] = field(default_factory=set)  # this feed's URLs, any time
    story_by_url: dict[str, int] = field(default_factory=dict)
    story_by_hash: dict[str, int] = field(default_factory=dict)  # within the window
    live_stories: set[int] = field(default_factory=set)


def _rows(s: Session, stmt: Callable[[list[str]], Any], values: Iterable[str]) -> list[Any]:
    out: list[Any] = []
    for part in chunks(sorted(set(values))):
        out.extend(s.execute(stmt(part)).all())
    return out


def _prefetch(s: Session, feed_id: int, items: Sequence[Item], cutoff: datetime) -> _Seen:
    i = ITEMS
    keys = [it.key for it in items]
    urls = [it.url for it in items if it.url]
    hashes = [it.content_hash for it in items if _has_content(it)]
    seen = _Seen()
    in_feed = i.c.feed_id == feed_id
    seen.keys = {
        r[0] for r in _rows(s, lambda p: select(i.c.key).where(in_feed, i.c.key.in_(p)), keys)
    }
    seen.keys |= {
        r[0]
        for r in _rows(
            s,
            lambda p: select(TOMBSTONES.c.key).where(
                TOMBSTONES.c.feed_id == feed_id, TOMBSTONES.c.key.in_(p)
            ),
            keys,
        )
    }
    seen.contents = {
        (r[0], r[1])
        for r in _rows(
            s,
            lambda p: select(i.c.canonical_url, i.c.content_hash).where(
                in_feed, i.c.content_hash.in_(p)
            ),
            hashes,
        )
    }
    # The same page (URL and content) carried by another feed is the same article: an exact
    # duplicate, not a second report of the story.
    hashes_by_url_feed: dict[tuple[str, int], set[str]] = {}
    for url, fid, h, article, title in _rows(
        s,
        lambda p: select(
            i.c.canonical_url, i.c.feed_id, i.c.content_hash, i.c.article_url, i.c.title
        ).where(i.c.canonical_url.in_(p)),
        urls,
    ):
        seen.pages.setdefault((url, _headline_key(title)), set()).add(int(fid))
        # The same page (URL and content) carried by another feed is the same article: an
        # exact duplicate, not a second report of the story.
        seen.copies.add((url, h))
        hashes_by_url_feed.setdefault((url, int(fid)), set()).add(h)
        if article is not None:
            seen.claims[article] = int(fid)
    seen.shared_urls = {u for (u, fid), hs in hashes_by_url_feed.items() if len(hs) > 1}
    strong_hashes = [h for h in (content_key(it) for it in items) if h]
    for url, fid, h in _rows(
        s,
        lambda p: select(i.c.canonical_url, i.c.feed_id, i.c.content_hash).where(
            i.c.content_hash.in_(p), i.c.fetched_at >= cutoff
        ),
        strong_hashes,
    ):
        bare = undated(url)
        if bare:
            seen.reposts.setdefault((bare, h), set()).add(int(fid))
    seen.urls = {
        r[0]
        for r in _rows(
            s, lambda p: select(i.c.canonical_url).where(in_feed, i.c.canonical_url.in_(p)), urls
        )
    }
    recent = STORIES.c.last_seen_at >= cutoff
    for url, sid in _rows(
        s,
        lambda p: select(STORIES.c.canonical_url, STORIES.c.id).where(
            STORIES.c.canonical_url.in_(p)
        ),
        urls,
    ):
        seen.story_by_url.setdefault(url, int(sid))

    def first_story_by(column: Any, values: Iterable[str], into: dict[str, int]) -> None:
        """The story of the oldest item (in a story still open) with each value of column."""
        for value, sid in _rows(
            s,
            lambda p: (
                select(column, i.c.story_id)
                .join(STORIES, STORIES.c.id == i.c.story_id)
                .where(column.in_(p), recent)
                .order_by(i.c.id)
            ),
            values,
        ):
            into.setdefault(value, int(sid))

    first_story_by(i.c.canonical_url, urls, seen.story_by_url)
    first_story_by(
        i.c.content_hash, [h for h in (content_key(it) for it in items) if h], seen.story_by_hash
    )
    return seen


def _story_exists(s: Session, seen: _Seen, story_id: int) -> bool:
    if story_id in seen.live_stories:
        return True
    if s.execute(select(STORIES.c.id).where(STORIES.c.id == story_id)).first() is None:
        return False
    seen.live_stories.add(story_id)
    return True


def _has_content(it: Item) -> bool:
    return bool(it.title.strip() or it.text.strip())


def _headline_key(title: str) -> str:
    return " ".join(title.casefold().split())


def _is_duplicate(seen: _Seen, feed_id: int, it: Item) -> bool:
    """Same key (GUID), a tombstone of it, or the same URL with the same non-empty content
    (a feed that changes GUIDs on every fetch): the rule normalize_feed applies within one
    document, applied across fetches. Across feeds: the URL and headline another feed
    carries (the same page, its body maybe edited between the fetches), or the same
    substantial content under the same URL but for a date in its path (a re-dated re-post;
    within one feed a re-post under a new URL is kept, in the first one's story). Another
    headline on the same URL (an aggregator's) is another report: stored, in the story."""
    if it.key in seen.keys:
        return True
    if it.url and _has_content(it) and (it.url, it.content_hash) in seen.copies:
        return True
    head = _headline_key(it.title)
    if (
        it.url
        and head  # an untitled entry on a shared link says nothing about which page it is
        and it.url not in seen.shared_urls
        and seen.pages.get((it.url, head), set()) - {feed_id}
    ):
        return True
    strong = content_key(it)
    bare = undated(it.url)
    if strong and bare and seen.reposts.get((bare, strong), set()) - {feed_id}:
        return True
    return _has_content(it) and (it.url, it.content_hash) in seen.contents


@dataclass
class _Planned:
    p: ProcessedItem
    ref: int  # >= 0: an existing story id; < 0: new_stories[-ref - 1]
    article_url: str | None = None  # the URL this item claims as the first to carry it


@dataclass
class _Plan:
    items: list[_Planned] = field(default_factory=list)
    new_stories: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0


def _plan(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    story_lookup: Callable[[Item], int | None] | None,
    window: timedelta,
) -> _Plan:
    """Decide, from reads only, which items are new and which story each joins."""
    seen = _prefetch(s, feed_id, [p.item for p in batch], now - window)
    plan = _Plan()
    for p in batch:
        it = p.item
        if _is_duplicate(seen, feed_id, it):
            plan.duplicates += 1
            continue
        # A URL this feed already used for other content (comment pages, "now" pages, a
        # homepage link on every entry) says nothing about the story.
        url = it.url if it.url and it.url not in seen.urls else None
        strong = content_key(it)
        ref: int | None = None
        if story_lookup is not None:
            found = story_lookup(it)
            if found is not None and _story_exists(s, seen, found):
                ref = found
        if ref is None and url:
            ref = seen.story_by_url.get(url)
        if ref is None and strong:
            ref = seen.story_by_hash.get(strong)
        if ref is None:
            plan.new_stories.append(_story_values(it, url, now))
            ref = -len(plan.new_stories)
        seen.keys.add(it.key)
        if _has_content(it):
            seen.contents.add((it.url, it.content_hash))
            if it.url:
                seen.copies.add((it.url, it.content_hash))
        article = None
        if it.url:
            seen.urls.add(it.url)
            seen.pages.setdefault((it.url, _headline_key(it.title)), set()).add(feed_id)
            if it.url not in seen.claims:
                article = it.url
                seen.claims[it.url] = feed_id
        bare = undated(it.url)
        if strong and bare:
            seen.reposts.setdefault((bare, strong), set()).add(feed_id)
        if url:
            seen.story_by_url.setdefault(url, ref)
        if strong:
            seen.story_by_hash.setdefault(strong, ref)
        plan.items.append(_Planned(p, ref, article))
    return plan


def _alert_rows(
    p: ProcessedItem,
    item_id: int,
    story_id: int,
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for m in p.matches:
        for channel in dict.fromkeys(m.channels):
            rows.append(
                {
                    "id": alert_id(m.rule, story_id, channel),
                    "kind": "match",
                    "rule": m.rule,
                    "channel": channel,
                    "item_id": item_id,
                    "story_id": story_id,
                    "dedupe_key": None,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": not_before(m.rule, channel) if not_before else now,
                    "created_at": now,
                }
            )
    return rows


def _match_rows(p: ProcessedItem, item_id: int) -> list[dict[str, Any]]:
    by_rule = {m.rule: m for m in p.matches}
    return [{"item_id": item_id, "rule": m.rule, "terms": list(m.terms)} for m in by_rule.values()]


def _follow_ups(
    conn: Connection,
    st: _Stmts,
    crossed: dict[int, tuple[int, int, int]],
    follow_up: Mapping[str, int],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
) -> list[str]:
    """One extra alert per (rule, story, channel) that alerted on the story, when the story's
    outlet count reached the rule's threshold in this batch. ``crossed``: story id ->
    (outlets before, outlets now, the item that brought it there)."""
    out: list[str] = []
    rows = conn.execute(
        select(ALERTS.c.rule, ALERTS.c.story_id, ALERTS.c.channel).where(
            ALERTS.c.story_id.in_(sorted(crossed)),
            ALERTS.c.kind == "match",
            ALERTS.c.rule.in_(sorted(follow_up)),
        )
    ).all()
    for rule, sid, channel in sorted(rows):
        threshold = follow_up[rule]
        was, outlets, item_id = crossed[int(sid)]
        if not was < threshold <= outlets:
            continue
        row = {
            "id": follow_up_id(rule, int(sid), channel, threshold),
            "kind": "follow_up",
            "rule": rule,
            "channel": channel,
            "item_id": item_id,
            "story_id": int(sid),
            "dedupe_key": None,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": not_before(rule, channel) if not_before else now,
            "created_at": now,
            "payload": {"outlets": outlets, "threshold": threshold},
        }
        got = conn.execute(st.alert, row).scalar_one_or_none()
        if got is not None:
            out.append(str(got))
            log.info(
                "store: follow-up rule=%s story=%d channel=%s outlets=%d",
                rule, int(sid), channel, outlets,
            )
    return out


def _finish(
    conn: Connection,
    st: _Stmts,
    stored: list[tuple[ProcessedItem, int, int]],
    created: set[int],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
    follow_up: Mapping[str, int] | None = None,
) -> tuple[str, ...]:
    """Matches, outbox rows and story counts for the items stored; returns new alert ids."""
    matches = [row for p, item_id, _ in stored for row in _match_rows(p, item_id)]
    if matches:
        conn.execute(st.match, matches)
    alerts: list[str] = []
    for p, item_id, sid in stored:
        for row in _alert_rows(p, item_id, sid, now, not_before):
            # One alert per (rule, story, channel): a later item of the story adds nothing.
            got = conn.execute(st.alert, row).scalar_one_or_none()
            if got is not None:
                alerts.append(str(got))
    per_story = Counter(sid for _, _, sid in stored)
    # A story made here with its one item has the right counts (1, 1) already.
    grown = sorted(sid for sid, n in per_story.items() if sid not in created or n > 1)
    rules = {r: n for r, n in (follow_up or {}).items() if n >= 2}
    before: dict[int, int] = {}
    if grown and rules:
        before = {int(a): int(b) for a, b in conn.execute(st.outlets, {"sids": grown}).all()}
    if grown:
        conn.execute(st.refresh, [{"sid": sid, "now": now} for sid in grown])
    if before:
        after = {int(a): int(b) for a, b in conn.execute(st.outlets, {"sids": grown}).all()}
        last_item = {sid: iid for _, iid, sid in stored}
        # A rule's threshold is crossed when the story was below it before this batch and
        # is at or above it now; the alert id makes it once even if counts later wobble.
        crossed = {
            sid: (before.get(sid, 0), n, last_item[sid])
            for sid, n in after.items()
            if any(before.get(sid, 0) < t <= n for t in rules.values())
        }
        if crossed:
            alerts.extend(_follow_ups(conn, st, crossed, rules, now, not_before))
    return tuple(alerts)


def _store_bulk(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
    story_lookup: Callable[[Item], int | None] | None,
    window: timedelta,
    follow_up: Mapping[str, int] | None,
) -> StoreOutcome:
    """The usual case in a few multi-row statements: plain INSERTs that fail (and send the
    caller to the row-by-row path) if another writer got there first."""
    plan = _plan(s, feed_id, batch, now, story_lookup, window)
    if not plan.items:
        return StoreOutcome(duplicates=plan.duplicates)
    conn = s.connection()
    st = _stmts(conn.dialect.name)
    story_ids: list[int] = []
    if plan.new_stories:
        story_ids = [int(r[0]) for r in conn.execute(st.bulk_story, plan.new_stories).all()]
    sids = [pl.ref if pl.ref >= 0 else story_ids[-pl.ref - 1] for pl in plan.items]
    rows = [
        _item_values(feed_id, pl.p, now, sid, pl.article_url)
        for pl, sid in zip(plan.items, sids, strict=True)
    ]
    item_ids = [int(r[0]) for r in conn.execute(st.bulk_item, rows).all()]
    stored = [(pl.p, iid, sid) for pl, iid, sid in zip(plan.items, item_ids, sids, strict=True)]
    alerts = _finish(conn, st, stored, set(story_ids), now, not_before, follow_up)
    return StoreOutcome(new_items=tuple(item_ids), duplicates=plan.duplicates, alerts=alerts)


def _new_story(conn: Connection, st: _Stmts, values: dict[str, Any]) -> tuple[int, bool]:
    """A story from ``values``: a new one, or the one another writer just made for its URL
    (then False)."""
    sid = conn.execute(st.story, values).scalar_one_or_none()
    if sid is not None:
        return int(sid), True
    existing = conn.execute(
        select(STORIES.c.id).where(STORIES.c.canonical_url == values["canonical_url"])
    ).scalar()
    if existing is None:  # pragma: no cover - the conflicting story vanished in between
        raise RuntimeError("story insert conflicted but no story holds the URL")
    return int(existing), False


def _store_rows(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
    story_lookup: Callable[[Item], int | None] | None,
    window: timedelta,
    follow_up: Mapping[str, int] | None,
) -> StoreOutcome:
    """Row by row with ON CONFLICT DO NOTHING: what another writer stored first wins."""
    plan = _plan(s, feed_id, batch, now, story_lookup, window)
    conn = s.connection()
    st = _stmts(conn.dialect.name)
    duplicates = plan.duplicates
    made: dict[int, int] = {}  # plan ref -> story id
    created: set[int] = set()
    stored: list[tuple[ProcessedItem, int, int]] = []
    for pl in plan.items:
        sid = pl.ref
        if sid < 0:
            if pl.ref not in made:
                made[pl.ref], fresh = _new_story(conn, st, plan.new_stories[-pl.ref - 1])
                if fresh:
                    created.add(made[pl.ref])
            sid = made[pl.ref]
        values = _item_values(feed_id, pl.p, now, sid, pl.article_url)
        item_id = conn.execute(st.item, values).scalar_one_or_none()
        if item_id is None:  # another writer stored this (feed, key) or article URL first
            duplicates += 1
            continue
        stored.append((pl.p, int(item_id), sid))
    orphans = created - {sid for _, _, sid in stored}
    if orphans:
        conn.execute(delete(STORIES).where(STORIES.c.id.in_(sorted(orphans))))
    alerts = _finish(conn, st, stored, created, now, not_before, follow_up)
    return StoreOutcome(
        new_items=tuple(iid for _, iid, _ in stored), duplicates=duplicates, alerts=alerts
    )


@storage_errors
def store_batch(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    *,
    now: datetime,
    not_before: Callable[[str, str], datetime] | None = None,
    story_lookup: Callable[[Item], int | None] | None = None,
    window: timedelta = STORY_WINDOW,
    follow_up: Mapping[str, int] | None = None,
) -> StoreOutcome:
    """Store a feed's processed items with their stories, matches and outbox alerts; commits.

    All or nothing: on any error the transaction is rolled back. An item is a duplicate when
    its feed already holds its key (or a tombstone of it), or the same URL with the same
    non-empty content. Otherwise it is stored and joins a story: the one ``story_lookup`` (the
    near-duplicate index) names if it still exists, else one holding the same canonical URL
    (from another feed), else one holding the same substantial content within ``window``,
    else a new one. One outbox row per (rule, story, channel), due at ``not_before(rule,
    channel)`` or ``now``. ``follow_up`` maps rule names to an outlet count: when a story
    that alerted on the rule reaches it, one more alert (kind "follow_up") per channel.
    """
    if not batch:
        return StoreOutcome()
    args = (s, feed_id, batch, now, not_before, story_lookup, window, follow_up)
    try:
        return rollback_on_error(s, lambda: _store_bulk(*args))
    except IntegrityError:
        # Another writer stored one of these rows between our reads and writes: redo it row
        # by row, where ON CONFLICT settles each one.
        log.info("store: concurrent write, storing row by row feed=%d", feed_id)
    except DBAPIError as e:
        if getattr(e.orig, "sqlstate", None) not in _RETRYABLE:
            raise
        log.info("store: deadlock with another writer, retrying row by row feed=%d", feed_id)
    return rollback_on_error(s, lambda: _store_rows(*args))


def _delete_items(s: Session, item_ids: Sequence[int], now: datetime) -> int:
    conn = s.connection()
    st = _stmts(conn.dialect.name)
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    deleted = 0
    stories: set[int] = set()
    for part in chunks(sorted(set(item_ids))):
        rows = conn.execute(
            select(ITEMS.c.id, ITEMS.c.feed_id, ITEMS.c.key, ITEMS.c.story_id).where(
                ITEMS.c.id.in_(part)
            )
        ).all()
        if not rows:
            continue
        stones = {(int(r.feed_id), str(r.key)): None for r in rows}
        conn.execute(
            ins(TOMBSTONES).on_conflict_do_nothing(),
            [{"feed_id": f, "key": k, "created_at": now} for f, k in stones],
        )
        ids = [int(r.id) for r in rows]
        stories |= {int(r.story_id) for r in rows if r.story_id is not None}
        conn.execute(delete(MATCHES).where(MATCHES.c.item_id.in_(ids)))
        # alerts.item_id is ON DELETE SET NULL: a sent alert's record outlives its item.
        conn.execute(delete(ITEMS).where(ITEMS.c.id.in_(ids)))
        deleted += len(ids)
    if stories:
        conn.execute(st.refresh, [{"sid": sid, "now": now} for sid in sorted(stories)])
        # A story left without items is gone; its alerts keep their record (story SET NULL).
        conn.execute(delete(STORIES).where(STORIES.c.id.in_(sorted(stories)), STORIES.c.size == 0))
    return deleted


@storage_errors
def delete_items(s: Session, item_ids: Sequence[int], now: datetime) -> int:
    """Delete items, leaving a tombstone (feed, key) for each so that a feed re-publishing one
    does not bring it back as new; story counts follow. Commits; returns how many went."""
    return rollback_on_error(s, lambda: _delete_items(s, item_ids, now))


_ITEM_COLS = (
    ITEMS.c.id,
    ITEMS.c.feed_id,
    ITEMS.c.key,
    ITEMS.c.guid,
    ITEMS.c.url,
    ITEMS.c.title,
    ITEMS.c.text,
    ITEMS.c.published_at,
    ITEMS.c.content_hash,
    ITEMS.c.author,
    ITEMS.c.tags,
    ITEMS.c.language,
    ITEMS.c.story_id,
)


def _as_item(r: Any) -> tuple[Item, int]:
    item = Item(
        feed_id=r.feed_id,
        key=r.key,
        guid=r.guid,
        url=r.url,
        title=r.title,
        text=r.text,
        published=r.published_at,
        content_hash=r.content_hash,
        author=r.author,
        tags=tuple_of(r.tags),
        language=r.language,
    )
    return item, int(r.story_id)


@storage_errors
def items_with_stories(s: Session, item_ids: Sequence[int]) -> list[tuple[Item, int]]:
    """The stored items (as pipeline ``Item`` values) with their story ids, for the story
    index to learn after a commit. Items without a story are left out."""
    out: list[tuple[Item, int]] = []
    for part in chunks(list(item_ids)):
        rows = s.execute(
            select(*_ITEM_COLS)
            .where(ITEMS.c.id.in_(part), ITEMS.c.story_id.is_not(None))
            .order_by(ITEMS.c.id)
        ).all()
        out.extend(_as_item(r) for r in rows)
    return out


@storage_errors
def story_ids_by_key(s: Session, item_ids: Sequence[int]) -> dict[str, int]:
    """Item key -> story id for the items just stored: what the caller, which still holds
    the items themselves, needs to teach the story index (no title or text read back)."""
    out: dict[str, int] = {}
    for part in chunks(list(item_ids)):
        for key, sid in s.execute(
            select(ITEMS.c.key, ITEMS.c.story_id).where(
                ITEMS.c.id.in_(part), ITEMS.c.story_id.is_not(None)
            )
        ).all():
            out[key] = int(sid)
    return out


def recent_items_with_stories(
    s: Session, since: datetime, *, batch: int = 5000
) -> Iterator[tuple[Item, int]]:
    """Items fetched at or after ``since`` with their story ids, oldest first, read in
    batches (to rebuild the in-memory story index at start without loading everything)."""
    last_id = 0
    while True:
        try:
            rows = s.execute(
                select(*_ITEM_COLS)
                .where(
                    ITEMS.c.fetched_at >= since,
                    ITEMS.c.story_id.is_not(None),
                    ITEMS.c.id > last_id,
                )
                .order_by(ITEMS.c.id)
                .limit(batch)
            ).all()
        except SQLAlchemyError as e:  # a generator: the decorator would not see this
            raise StorageError(f"recent_items_with_stories: {describe(e)}") from e
        if not rows:
            return
        for r in rows:
            yield _as_item(r)
        last_id = int(rows[-1].id)
