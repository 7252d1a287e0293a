"""Storing one feed's batch: items, stories, matches and outbox alerts in one transaction.

Uniqueness is the database's job (unique constraints + ON CONFLICT DO NOTHING), so two daemons
storing the same thing at once end with one row, never an error or a double. The reads before
the writes only avoid work; they are not what keeps duplicates out.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
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


@dataclass
class _Seen:
    """What the batch already knows, from the database and from its own earlier items."""

    keys: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)  # same feed, any time
    hashes: set[str] = field(default_factory=set)  # same feed, within the story window
    story_by_url: dict[str, int] = field(default_factory=dict)
    story_by_hash: dict[str, int] = field(default_factory=dict)
    live_stories: set[int] = field(default_factory=set)


def _values(s: Session, stmt: Any, values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(sorted(set(values))):
        found.update(v for (v,) in s.execute(stmt(part)).all() if v is not None)
    return found


def _pairs(s: Session, stmt: Any, values: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(sorted(set(values))):
        for k, sid in s.execute(stmt(part)).all():
            if k is not None and sid is not None:
                found.setdefault(k, int(sid))
    return found


def _prefetch(s: Session, feed_id: int, items: Sequence[Item], cutoff: datetime) -> _Seen:
    i = ITEMS
    keys = [it.key for it in items]
    urls = [it.url for it in items if it.url]
    hashes = [h for h in (content_key(it) for it in items) if h]
    seen = _Seen()
    seen.keys = _values(
        s, lambda p: select(i.c.key).where(i.c.feed_id == feed_id, i.c.key.in_(p)), keys
    ) | _values(
        s,
        lambda p: select(TOMBSTONES.c.key).where(
            TOMBSTONES.c.feed_id == feed_id, TOMBSTONES.c.key.in_(p)
        ),
        keys,
    )
    seen.urls = _values(
        s,
        lambda p: select(i.c.canonical_url).where(i.c.feed_id == feed_id, i.c.canonical_url.in_(p)),
        urls,
    )
    seen.hashes = _values(
        s,
        lambda p: select(i.c.content_hash).where(
            i.c.feed_id == feed_id, i.c.content_hash.in_(p), i.c.fetched_at >= cutoff
        ),
        hashes,
    )
    recent = STORIES.c.last_seen_at >= cutoff
    seen.story_by_url = _pairs(
        s,
        lambda p: select(STORIES.c.canonical_url, STORIES.c.id).where(
            STORIES.c.canonical_url.in_(p)
        ),
        urls,
    )
    for k, v in _pairs(
        s,
        lambda p: (
            select(i.c.canonical_url, i.c.story_id)
            .join(STORIES, STORIES.c.id == i.c.story_id)
            .where(i.c.canonical_url.in_(p), recent)
            .order_by(i.c.id)
        ),
        urls,
    ).items():
        seen.story_by_url.setdefault(k, v)
    seen.story_by_hash = _pairs(
        s,
        lambda p: (
            select(i.c.content_hash, i.c.story_id)
            .join(STORIES, STORIES.c.id == i.c.story_id)
            .where(i.c.content_hash.in_(p), recent)
            .order_by(i.c.id)
        ),
        hashes,
    )
    return seen


def _story_exists(s: Session, seen: _Seen, story_id: int) -> bool:
    if story_id in seen.live_stories:
        return True
    if s.execute(select(STORIES.c.id).where(STORIES.c.id == story_id)).first() is None:
        return False
    seen.live_stories.add(story_id)
    return True


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
        item=ins(ITEMS)
        .on_conflict_do_nothing(index_elements=[ITEMS.c.feed_id, ITEMS.c.key])
        .returning(ITEMS.c.id),
        match=ins(MATCHES).on_conflict_do_nothing(),
        # One alert per (rule, story, channel): a later item of the story adds nothing.
        alert=ins(ALERTS).on_conflict_do_nothing().returning(ALERTS.c.id),
        refresh=refresh,
        bulk_story=ins(STORIES).returning(STORIES.c.id, sort_by_parameter_order=True),
        bulk_item=ins(ITEMS).returning(ITEMS.c.id, sort_by_parameter_order=True),
        bulk_match=ins(MATCHES),
    )


def _new_story(conn: Connection, st: _Stmts, item: Item, now: datetime) -> tuple[int, bool]:
    """A story for ``item``: a new one (size 1), or the one another writer just made for its
    URL (then False)."""
    sid = conn.execute(
        st.story,
        {
            "headline": (item.title or item.url or "(untitled)")[:HEADLINE_MAX],
            "first_seen_at": now,
            "last_seen_at": now,
            "size": 1,
            "outlets": 1,
            "canonical_url": item.url,
            "content_hash": item.content_hash,
        },
    ).scalar_one_or_none()
    if sid is not None:
        return int(sid), True
    existing = conn.execute(
        select(STORIES.c.id).where(STORIES.c.canonical_url == item.url)
    ).scalar()
    if existing is None:  # pragma: no cover - the conflicting story vanished in between
        raise RuntimeError("story insert conflicted but no story holds the URL")
    return int(existing), False


def _item_values(feed_id: int, p: ProcessedItem, now: datetime, story_id: int) -> dict[str, Any]:
    it, sc = p.item, p.score
    return {
        "feed_id": feed_id,
        "key": it.key,
        "guid": it.guid,
        "url": it.url,
        "canonical_url": it.url,
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


def _is_duplicate(seen: _Seen, it: Item) -> bool:
    return (
        it.key in seen.keys
        or (it.url is not None and it.url in seen.urls)
        or content_key(it) in seen.hashes
    )


def _remember(seen: _Seen, it: Item, story_id: int) -> None:
    seen.keys.add(it.key)
    h = content_key(it)
    if h:
        seen.hashes.add(h)
        seen.story_by_hash.setdefault(h, story_id)
    if it.url:
        seen.urls.add(it.url)
        seen.story_by_url.setdefault(it.url, story_id)
    seen.live_stories.add(story_id)


def _story_values(item: Item, now: datetime) -> dict[str, Any]:
    return {
        "headline": (item.title or item.url or "(untitled)")[:HEADLINE_MAX],
        "first_seen_at": now,
        "last_seen_at": now,
        "size": 1,
        "outlets": 1,
        "canonical_url": item.url,
        "content_hash": item.content_hash,
    }


def _store_bulk(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
    story_lookup: Callable[[Item], int | None] | None,
    window: timedelta,
) -> StoreOutcome:
    """The usual case in a few multi-row statements: plain INSERTs that fail (and send the
    caller to the row-by-row path) if another writer got there first."""
    seen = _prefetch(s, feed_id, [p.item for p in batch], now - window)
    conn = s.connection()
    st = _stmts(conn.dialect.name)
    duplicates = 0
    keep: list[ProcessedItem] = []
    refs: list[int] = []  # >= 0: an existing story id; < 0: -(index into new_stories) - 1
    new_stories: list[dict[str, Any]] = []
    pending_url: dict[str, int] = {}
    pending_hash: dict[str, int] = {}
    for p in batch:
        it = p.item
        if _is_duplicate(seen, it):
            duplicates += 1
            continue
        ref: int | None = None
        if story_lookup is not None:
            found = story_lookup(it)
            if found is not None and _story_exists(s, seen, found):
                ref = found
        if ref is None and it.url:
            ref = seen.story_by_url.get(it.url, pending_url.get(it.url))
        h = content_key(it)
        if ref is None and h:
            ref = seen.story_by_hash.get(h, pending_hash.get(h))
        if ref is None:
            new_stories.append(_story_values(it, now))
            ref = -len(new_stories)
            if it.url:
                pending_url[it.url] = ref
            if h:
                pending_hash[h] = ref
        seen.keys.add(it.key)
        if h:
            seen.hashes.add(h)
        if it.url:
            seen.urls.add(it.url)
        keep.append(p)
        refs.append(ref)
    if not keep:
        return StoreOutcome(duplicates=duplicates)
    story_ids: list[int] = []
    if new_stories:
        story_ids = [int(r[0]) for r in conn.execute(st.bulk_story, new_stories).all()]
    resolved = [r if r >= 0 else story_ids[-r - 1] for r in refs]
    item_ids = [
        int(r[0])
        for r in conn.execute(
            st.bulk_item,
            [_item_values(feed_id, p, now, sid) for p, sid in zip(keep, resolved, strict=True)],
        ).all()
    ]
    match_rows: list[dict[str, Any]] = []
    alert_rows: list[dict[str, Any]] = []
    for p, item_id, sid in zip(keep, item_ids, resolved, strict=True):
        for m in {m.rule: m for m in p.matches}.values():
            match_rows.append({"item_id": item_id, "rule": m.rule, "terms": list(m.terms)})
        for m in p.matches:
            for channel in dict.fromkeys(m.channels):
                alert_rows.append(
                    {
                        "id": alert_id(m.rule, sid, channel),
                        "kind": "match",
                        "rule": m.rule,
                        "channel": channel,
                        "item_id": item_id,
                        "story_id": sid,
                        "dedupe_key": None,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": not_before(m.rule, channel) if not_before else now,
                        "created_at": now,
                    }
                )
    if match_rows:
        conn.execute(st.bulk_match, match_rows)
    alerts: list[str] = []
    for row in alert_rows:  # few; ON CONFLICT tells which ones are new
        got = conn.execute(st.alert, row).scalar_one_or_none()
        if got is not None:
            alerts.append(str(got))
    per_story = Counter(resolved)
    # An existing story gained items; a new one holding more than this batch's one item too.
    grown = sorted({r for r in refs if r >= 0} | {sid for sid, n in per_story.items() if n > 1})
    if grown:
        conn.execute(st.refresh, [{"sid": sid, "now": now} for sid in grown])
    return StoreOutcome(new_items=tuple(item_ids), duplicates=duplicates, alerts=tuple(alerts))


def _store(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
    story_lookup: Callable[[Item], int | None] | None,
    window: timedelta,
) -> StoreOutcome:
    seen = _prefetch(s, feed_id, [p.item for p in batch], now - window)
    conn = s.connection()
    st = _stmts(conn.dialect.name)
    new_ids: list[int] = []
    alerts: list[str] = []
    duplicates = 0
    created_here: set[int] = set()  # new stories whose one item is this batch's: size 1 is right
    refresh: set[int] = set()  # stories that gained an item and need their counts again
    for p in batch:
        it = p.item
        if _is_duplicate(seen, it):
            duplicates += 1
            continue
        story_id: int | None = None
        created = False
        if story_lookup is not None:
            found = story_lookup(it)
            if found is not None and _story_exists(s, seen, found):
                story_id = found
        if story_id is None and it.url:
            story_id = seen.story_by_url.get(it.url)
        h = content_key(it)
        if story_id is None and h:
            story_id = seen.story_by_hash.get(h)
        if story_id is None:
            story_id, created = _new_story(conn, st, it, now)
        item_id = conn.execute(
            st.item, _item_values(feed_id, p, now, story_id)
        ).scalar_one_or_none()
        if item_id is None:  # another writer stored this (feed, key) first
            duplicates += 1
            seen.keys.add(it.key)
            if created:
                conn.execute(delete(STORIES).where(STORIES.c.id == story_id))
            continue
        _remember(seen, it, story_id)
        new_ids.append(int(item_id))
        if created:
            created_here.add(story_id)
        else:
            refresh.add(story_id)
        alerts.extend(_matches_and_alerts(conn, st, p, int(item_id), story_id, now, not_before))
    for sid in refresh:
        conn.execute(st.refresh, {"sid": sid, "now": now})
    return StoreOutcome(new_items=tuple(new_ids), duplicates=duplicates, alerts=tuple(alerts))


def _matches_and_alerts(
    conn: Connection,
    st: _Stmts,
    p: ProcessedItem,
    item_id: int,
    story_id: int,
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
) -> list[str]:
    if not p.matches:
        return []
    conn.execute(
        st.match,
        [{"item_id": item_id, "rule": m.rule, "terms": list(m.terms)} for m in p.matches],
    )
    created: list[str] = []
    for m in p.matches:
        for channel in dict.fromkeys(m.channels):
            got = conn.execute(
                st.alert,
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
                },
            ).scalar_one_or_none()
            if got is not None:
                created.append(str(got))
    return created


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
) -> StoreOutcome:
    """Store a feed's processed items with their stories, matches and outbox alerts; commits.

    All or nothing: on any error the transaction is rolled back. An item is a duplicate when
    its feed already holds its key (or a tombstone of it), its canonical URL, or (within
    ``window``) its content hash. The same URL or hash from another feed is a new item of the
    same story. ``story_lookup`` (the near-duplicate index) is asked first; ids it returns that
    no longer exist are ignored.
    """
    if not batch:
        return StoreOutcome()
    args = (s, feed_id, batch, now, not_before, story_lookup, window)
    try:
        return rollback_on_error(s, lambda: _store_bulk(*args))
    except IntegrityError:
        # Another writer stored one of these rows between our reads and writes: redo it row
        # by row, where ON CONFLICT settles each one.
        log.info("store: concurrent write, storing row by row feed=%d", feed_id)
    return rollback_on_error(s, lambda: _store(*args))


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
