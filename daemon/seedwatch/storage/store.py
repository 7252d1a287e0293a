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

from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    Text,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
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

# The near-duplicate index: a batch's items -> the story each joins (None: none), in order.
StoryLookup = Callable[[Sequence[Item]], Sequence[int | None]]

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


@functools.lru_cache(maxsize=1024)  # asked up to three times per item; urlsplit is slow
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
    """The batch's statements, built once per dialect: building a statement per row
    (``.values(...)``) cost more Python time than the database spent executing it."""

    story: Any
    item: Any
    match: Any
    alert: Any
    refresh: Any
    bulk_story: Any
    bulk_item: Any
    bulk_alert: Any
    outlets: Any
    live_stories: Any


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
        # Multi-row INSERTs whose RETURNING rows carry what tells them apart: asking for
        # parameter order instead makes SQLAlchemy send SQLite one INSERT per row.
        bulk_story=ins(STORIES).returning(STORIES.c.id, *_STORY_COLS),
        bulk_item=ins(ITEMS).returning(ITEMS.c.id, ITEMS.c.key),
        bulk_alert=ins(ALERTS).on_conflict_do_nothing().returning(ALERTS.c.id),
        outlets=select(STORIES.c.id, STORIES.c.outlets).where(
            STORIES.c.id.in_(bindparam("sids", expanding=True))
        ),
        live_stories=select(STORIES.c.id).where(
            STORIES.c.id.in_(bindparam("sids", expanding=True))
        ),
    )


# The story columns a new story is told apart by in the RETURNING of a multi-row INSERT.
_STORY_COLS = (STORIES.c.canonical_url, STORIES.c.headline, STORIES.c.content_hash)


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


# What each arm of the prefetch query reads (its first column); tombstones count as keys.
_KEY, _CONTENT, _URL, _HASH, _STORY = range(5)


@functools.cache
def _prefetch_stmt(dialect: str) -> Any:
    """Every read planning a batch needs, as one UNION ALL: one round trip per batch.

    Each arm yields (arm, a, b, c, d, feed, item, story, flags) with NULL where it has
    nothing to say; ``flags`` bit 1: the item's story is open, bit 2: fetched within the
    window."""
    i, st = ITEMS, STORIES
    feed = bindparam("feed_id", type_=Integer())
    cutoff = bindparam("cutoff", type_=i.c.fetched_at.type)

    def one_of(col: Any, name: str) -> Any:
        if dialect == "postgresql":
            # One array parameter keeps the statement's text the same for every batch, so
            # psycopg converts and prepares it once instead of parsing a new text each time.
            return col == any_(bindparam(name, type_=ARRAY(Text())))
        return col.in_(bindparam(name, expanding=True))

    text_null = cast(null(), Text)
    int_null = cast(null(), Integer)
    with_story = i.outerjoin(st, st.c.id == i.c.story_id)
    open_story = case((st.c.last_seen_at >= cutoff, 1), else_=0)

    def arm(n: int, *cols: Any) -> Any:
        padded = [*cols, *[text_null] * (4 - len(cols))]
        return select(literal_column(str(n), Integer), *padded)

    def no_more() -> tuple[Any, ...]:
        return (int_null, int_null, int_null, literal_column("0", Integer))

    return union_all(
        arm(_KEY, i.c.key)
        .add_columns(*no_more())
        .where(i.c.feed_id == feed, one_of(i.c.key, "keys")),
        arm(_KEY, TOMBSTONES.c.key)
        .add_columns(*no_more())
        .where(TOMBSTONES.c.feed_id == feed, one_of(TOMBSTONES.c.key, "keys")),
        arm(_CONTENT, i.c.canonical_url, i.c.content_hash)
        .add_columns(*no_more())
        .where(i.c.feed_id == feed, one_of(i.c.content_hash, "hashes")),
        # Every item carrying one of the URLs, in any feed: copies, claims, pages, this
        # feed's own URLs, and the stories they belong to.
        arm(_URL, i.c.canonical_url, i.c.content_hash, i.c.article_url, i.c.title)
        .add_columns(i.c.feed_id, i.c.id, i.c.story_id, open_story)
        .select_from(with_story)
        .where(one_of(i.c.canonical_url, "urls")),
        # Items with one of the substantial contents: re-posts within the window and the
        # open stories they belong to.
        arm(_HASH, i.c.canonical_url, i.c.content_hash)
        .add_columns(
            i.c.feed_id,
            i.c.id,
            i.c.story_id,
            open_story + case((i.c.fetched_at >= cutoff, 2), else_=0),
        )
        .select_from(with_story)
        .where(
            one_of(i.c.content_hash, "strong"),
            or_(i.c.fetched_at >= cutoff, st.c.last_seen_at >= cutoff),
        ),
        arm(_STORY, st.c.canonical_url)
        .add_columns(int_null, int_null, st.c.id, literal_column("0", Integer))
        .where(one_of(st.c.canonical_url, "urls")),
    )


def _prefetch(s: Session, feed_id: int, items: Sequence[Item], cutoff: datetime) -> _Seen:
    seen = _Seen()
    # (item id, story id) of the items in open stories, per URL and per content hash: the
    # oldest one's story is the one a new item joins.
    by_url: dict[str, tuple[int, int]] = {}
    by_hash: dict[str, tuple[int, int]] = {}
    hashes_by_url_feed: dict[tuple[str, int], set[str]] = {}
    conn = s.connection()
    stmt = _prefetch_stmt(conn.dialect.name)
    for part in chunks(items):
        params = {
            "feed_id": feed_id,
            "cutoff": cutoff,
            "keys": sorted({it.key for it in part}),
            "hashes": sorted({it.content_hash for it in part if _has_content(it)}),
            "strong": sorted({h for h in (content_key(it) for it in part) if h}),
            "urls": sorted({it.url for it in part if it.url}),
        }
        for arm, a, b, c, d, fid, iid, sid, flags in conn.execute(stmt, params):
            if arm == _KEY:
                seen.keys.add(a)
            elif arm == _CONTENT:
                seen.contents.add((a, b))
            elif arm == _URL:
                seen.pages.setdefault((a, _headline_key(d)), set()).add(fid)
                # The same page (URL and content) carried by another feed is the same
                # article: an exact duplicate, not a second report of the story.
                seen.copies.add((a, b))
                hashes_by_url_feed.setdefault((a, fid), set()).add(b)
                if c is not None:
                    seen.claims[c] = fid
                if fid == feed_id:
                    seen.urls.add(a)
                if sid is not None and flags & 1:
                    _keep_oldest(by_url, a, iid, sid)
            elif arm == _HASH:
                bare = undated(a)
                if bare and flags & 2:
                    seen.reposts.setdefault((bare, b), set()).add(fid)
                if sid is not None and flags & 1:
                    _keep_oldest(by_hash, b, iid, sid)
            else:
                seen.story_by_url.setdefault(a, sid)
    seen.shared_urls = {u for (u, _), hs in hashes_by_url_feed.items() if len(hs) > 1}
    for url, (_, sid) in by_url.items():
        seen.story_by_url.setdefault(url, sid)
    seen.story_by_hash = {h: sid for h, (_, sid) in by_hash.items()}
    return seen


def _keep_oldest(into: dict[str, tuple[int, int]], value: str, item_id: int, sid: int) -> None:
    held = into.get(value)
    if held is None or item_id < held[0]:
        into[value] = (item_id, sid)


def _live_stories(s: Session, seen: _Seen, story_ids: Iterable[int | None]) -> None:
    """Learn which of ``story_ids`` still exist (the story index may name expired ones)."""
    unknown = {sid for sid in story_ids if sid is not None} - seen.live_stories
    st = _stmts(s.get_bind().dialect.name)
    for part in chunks(sorted(unknown)):
        seen.live_stories.update(int(r[0]) for r in s.execute(st.live_stories, {"sids": part}))


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


def _remember(seen: _Seen, feed_id: int, it: Item) -> str | None:
    """Note a new item in ``seen`` for the batch's later items; returns the article URL it
    claims (the first item anywhere to carry its URL), if any."""
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
    strong = content_key(it)
    bare = undated(it.url)
    if strong and bare:
        seen.reposts.setdefault((bare, strong), set()).add(feed_id)
    return article


def _plan(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    story_lookup: StoryLookup | None,
    window: timedelta,
) -> _Plan:
    """Decide, from reads only, which items are new and which story each joins."""
    seen = _prefetch(s, feed_id, [p.item for p in batch], now - window)
    plan = _Plan()
    # (item, the URL it may share a story by, the article URL it claims) of the new items.
    fresh: list[tuple[ProcessedItem, str | None, str | None]] = []
    for p in batch:
        it = p.item
        if _is_duplicate(seen, feed_id, it):
            plan.duplicates += 1
            continue
        # A URL this feed already used for other content (comment pages, "now" pages, a
        # homepage link on every entry) says nothing about the story.
        url = it.url if it.url and it.url not in seen.urls else None
        fresh.append((p, url, _remember(seen, feed_id, it)))
    # The near-duplicate index is asked about new items only (it costs), and the stories it
    # names are checked in one query.
    # One call for the batch: the story index compares a batch's items with their
    # candidates in one pass (they are only added to it after this commit anyway).
    found = (
        list(story_lookup([p.item for p, _, _ in fresh])) if story_lookup and fresh
        else [None] * len(fresh)
    )
    _live_stories(s, seen, found)
    for (p, url, article), ref in zip(fresh, found, strict=True):
        strong = content_key(p.item)
        if ref is not None and ref not in seen.live_stories:
            ref = None
        if ref is None and url:
            ref = seen.story_by_url.get(url)
        if ref is None and strong:
            ref = seen.story_by_hash.get(strong)
        if ref is None:
            plan.new_stories.append(_story_values(p.item, url, now))
            ref = -len(plan.new_stories)
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
    # One alert per (rule, story, channel): a later item of the story adds nothing, and
    # neither does one already stored.
    rows: dict[str, dict[str, Any]] = {}
    for p, item_id, sid in stored:
        for row in _alert_rows(p, item_id, sid, now, not_before):
            rows.setdefault(row["id"], row)
    alerts: list[str] = []
    if rows:
        made = {str(r[0]) for r in conn.execute(st.bulk_alert, list(rows.values()))}
        alerts = [aid for aid in rows if aid in made]
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


def _insert_stories(conn: Connection, st: _Stmts, new_stories: list[dict[str, Any]]) -> list[int]:
    """Insert the plan's new stories; their ids in the plan's order. Stories alike in every
    column the RETURNING row shows are alike in every column: those take their ids in
    order, as row-by-row INSERTs would have given them."""
    ids: dict[tuple[Any, ...], list[int]] = {}
    for sid, *cols in conn.execute(st.bulk_story, new_stories).all():
        ids.setdefault(tuple(cols), []).append(int(sid))
    for alike in ids.values():
        alike.sort(reverse=True)
    return [ids[tuple(v[c.name] for c in _STORY_COLS)].pop() for v in new_stories]


def _store_bulk(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    now: datetime,
    not_before: Callable[[str, str], datetime] | None,
    story_lookup: StoryLookup | None,
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
    story_ids = _insert_stories(conn, st, plan.new_stories) if plan.new_stories else []
    sids = [pl.ref if pl.ref >= 0 else story_ids[-pl.ref - 1] for pl in plan.items]
    rows = [
        _item_values(feed_id, pl.p, now, sid, pl.article_url)
        for pl, sid in zip(plan.items, sids, strict=True)
    ]
    # The batch's keys are distinct (a repeated key is a duplicate): they tell the rows apart.
    by_key = {key: int(iid) for iid, key in conn.execute(st.bulk_item, rows).all()}
    item_ids = [by_key[pl.p.item.key] for pl in plan.items]
    stored = [(pl.p, iid, sid) for pl, iid, sid in zip(plan.items, item_ids, sids, strict=True)]
    alerts = _finish(conn, st, stored, set(story_ids), now, not_before, follow_up)
    return StoreOutcome(
        new_items=tuple(item_ids), duplicates=plan.duplicates, alerts=alerts,
        stories=tuple((p.item.key, sid) for p, _, sid in stored),
    )


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
    story_lookup: StoryLookup | None,
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
        new_items=tuple(iid for _, iid, _ in stored), duplicates=duplicates, alerts=alerts,
        stories=tuple((p.item.key, sid) for p, _, sid in stored),
    )


@storage_errors
def store_batch(
    s: Session,
    feed_id: int,
    batch: Sequence[ProcessedItem],
    *,
    now: datetime,
    not_before: Callable[[str, str], datetime] | None = None,
    story_lookup: StoryLookup | None = None,
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


@storage_errors
def known_keys(s: Session, feed_id: int, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the feed already holds, as an item or as a tombstone.

    A changed feed document mostly repeats items stored before; the poller asks this before
    scoring and matching so that only new items pay for those (store_batch would count the
    rest as duplicates anyway)."""
    found: set[str] = set()
    conn = s.connection()
    stmt = _known_stmt()
    for part in chunks(sorted(set(keys))):
        rows = conn.execute(stmt, {"feed_id": feed_id, "keys": part})
        found.update(str(k) for k in rows.scalars())
    return found


@functools.cache
def _known_stmt() -> Any:
    """known_keys' one statement, built once (building it per feed cost more than running it)."""
    feed = bindparam("feed_id", type_=Integer())
    keys: Any = bindparam("keys", expanding=True)
    return union_all(
        select(ITEMS.c.key).where(ITEMS.c.feed_id == feed, ITEMS.c.key.in_(keys)),
        select(TOMBSTONES.c.key).where(TOMBSTONES.c.feed_id == feed, TOMBSTONES.c.key.in_(keys)),
    )


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
