"""The read side for the CLI: plain dataclasses, never ORM objects. Also the small state table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seedwatch.storage.common import (
    ALERTS,
    FEEDS,
    ITEMS,
    MATCHES,
    STATE,
    STORIES,
    chunks,
    insert_for,
    storage_errors,
)
from seedwatch.storage.feeds import stale_feed_ids
from seedwatch.storage.search import search_item_ids


@dataclass(frozen=True)
class FeedStatusRow:
    id: int
    name: str
    url: str
    active: bool
    gone: bool
    source: str
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    error_count: int
    items: int
    next_check_at: datetime
    stale: bool = False  # fetches work but it stopped publishing for far longer than usual


@dataclass(frozen=True)
class ItemRow:
    id: int
    feed: str
    url: str | None
    title: str
    published: datetime
    fetched: datetime
    story: int | None
    score: float
    topic: str
    relevant: bool
    rules: tuple[str, ...]
    also_reported_by: tuple[str, ...]
    # Why it scored as it did: nearest_seed, passage, terms.
    explanation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRow:
    id: str
    kind: str
    rule: str | None
    item: int | None
    story: int | None
    channel: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class StoryItem:
    id: int
    feed: str
    title: str
    url: str | None
    published: datetime


@dataclass(frozen=True)
class StoryRow:
    id: int
    headline: str
    first_seen: datetime
    last_seen: datetime
    size: int
    outlets: tuple[str, ...]  # feed names carrying the story
    items: tuple[StoryItem, ...]


@storage_errors
def feed_status(s: Session, now: datetime) -> list[FeedStatusRow]:
    """One row per feed (active first), with how many items it has stored."""
    counts = select(ITEMS.c.feed_id, func.count().label("n")).group_by(ITEMS.c.feed_id).subquery()
    f = FEEDS
    rows = s.execute(
        select(f, func.coalesce(counts.c.n, 0).label("n_items"))
        .outerjoin(counts, counts.c.feed_id == f.c.id)
        .order_by(f.c.active.desc(), f.c.name, f.c.id)
    ).all()
    stale = stale_feed_ids(s)
    return [
        FeedStatusRow(
            id=r.id,
            name=r.name,
            url=r.url,
            active=bool(r.active),
            gone=bool(r.gone),
            source=r.source,
            last_success_at=r.last_success_at,
            last_error=r.last_error,
            last_error_at=r.last_error_at,
            error_count=int(r.error_count),
            items=int(r.n_items),
            next_check_at=r.next_check_at,
            stale=r.id in stale,
        )
        for r in rows
    ]


@storage_errors
def list_items(s: Session, *, search: str | None, limit: int) -> list[ItemRow]:
    """Stored items, newest stored first; ``search``: only those whose title or text holds
    every word (the full-text index, see search.py)."""
    i = ITEMS
    stmt = (
        select(
            i.c.id,
            i.c.feed_id,
            i.c.url,
            i.c.title,
            i.c.published_at,
            i.c.fetched_at,
            i.c.story_id,
            i.c.score,
            i.c.topic,
            i.c.relevant,
            i.c.explanation,
            FEEDS.c.name.label("feed_name"),
        )
        .join(FEEDS, FEEDS.c.id == i.c.feed_id)
        .order_by(i.c.id.desc())
        .limit(limit)
    )
    if search:
        # Full-text: FTS5 on SQLite, a GIN tsvector index on PostgreSQL (storage/search.py).
        stmt = stmt.where(i.c.id.in_(search_item_ids(s, search, limit)))
    rows = s.execute(stmt).all()
    ids = [int(r.id) for r in rows]
    rules: dict[int, list[str]] = defaultdict(list)
    for part in chunks(ids):
        for item_id, rule in s.execute(
            select(MATCHES.c.item_id, MATCHES.c.rule)
            .where(MATCHES.c.item_id.in_(part))
            .order_by(MATCHES.c.item_id, MATCHES.c.rule)
        ).all():
            rules[int(item_id)].append(rule)
    outlets: dict[int, set[tuple[int, str]]] = defaultdict(set)
    story_ids = sorted({int(r.story_id) for r in rows if r.story_id is not None})
    for part in chunks(story_ids):
        for sid, fid, name in s.execute(
            select(ITEMS.c.story_id, FEEDS.c.id, FEEDS.c.name)
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .where(ITEMS.c.story_id.in_(part))
            .distinct()
        ).all():
            outlets[int(sid)].add((int(fid), name))
    out: list[ItemRow] = []
    for r in rows:
        others = outlets.get(r.story_id, set()) if r.story_id is not None else set()
        also = sorted({n for fid, n in others if fid != r.feed_id} - {r.feed_name})
        out.append(
            ItemRow(
                id=r.id,
                feed=r.feed_name,
                url=r.url,
                title=r.title,
                published=r.published_at,
                fetched=r.fetched_at,
                story=r.story_id,
                score=float(r.score),
                topic=r.topic,
                relevant=bool(r.relevant),
                rules=tuple(rules.get(r.id, ())),
                also_reported_by=tuple(also),
                explanation=dict(r.explanation or {}),
            )
        )
    return out


@storage_errors
def list_alerts(s: Session, *, limit: int) -> list[AlertRow]:
    """Alerts and their delivery state, newest first."""
    a = ALERTS
    rows = s.execute(select(a).order_by(a.c.created_at.desc(), a.c.id).limit(limit)).all()
    return [
        AlertRow(
            id=r.id,
            kind=r.kind,
            rule=r.rule,
            item=r.item_id,
            story=r.story_id,
            channel=r.channel,
            status=r.status,
            attempts=int(r.attempts),
            next_attempt_at=r.next_attempt_at,
            last_error=r.last_error,
            created_at=r.created_at,
            sent_at=r.sent_at,
        )
        for r in rows
    ]


@storage_errors
def list_stories(s: Session, *, limit: int) -> list[StoryRow]:
    """Stories, most recently active first, with their items and outlets."""
    st = STORIES
    stories = s.execute(
        select(st).order_by(st.c.last_seen_at.desc(), st.c.id.desc()).limit(limit)
    ).all()
    members: dict[int, list[StoryItem]] = defaultdict(list)
    for part in chunks([int(r.id) for r in stories]):
        for r in s.execute(
            select(
                ITEMS.c.id,
                ITEMS.c.story_id,
                ITEMS.c.title,
                ITEMS.c.url,
                ITEMS.c.published_at,
                FEEDS.c.name,
            )
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .where(ITEMS.c.story_id.in_(part))
            .order_by(ITEMS.c.id)
        ).all():
            members[int(r.story_id)].append(
                StoryItem(id=r.id, feed=r.name, title=r.title, url=r.url, published=r.published_at)
            )
    return [
        StoryRow(
            id=r.id,
            headline=r.headline,
            first_seen=r.first_seen_at,
            last_seen=r.last_seen_at,
            size=int(r.size),
            outlets=tuple(dict.fromkeys(m.feed for m in members.get(r.id, []))),
            items=tuple(members.get(r.id, [])),
        )
        for r in stories
    ]


@storage_errors
def get_state(s: Session, key: str) -> str | None:
    value = s.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()
    return None if value is None else str(value)


@storage_errors
def set_state(s: Session, key: str, value: str, now: datetime) -> None:
    """Insert or replace one key. Caller commits."""
    stmt = insert_for(s, STATE).values(key=key, value=value, updated_at=now)
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=[STATE.c.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
    )


@dataclass(frozen=True)
class HealthSummary:
    """The few numbers under ``seedwatch status``."""

    feeds_active: int
    feeds_failing: int  # active feeds whose last fetch failed
    feeds_gone: int
    feeds_stale: int
    last_success_at: datetime | None
    items: int
    items_last_24h: int
    stories: int
    alerts_pending: int
    alerts_dead: int
    alerts_sent_last_24h: int


def _count(s: Session, stmt: Any) -> int:
    return int(s.execute(stmt).scalar() or 0)


@storage_errors
def health_summary(s: Session, now: datetime) -> HealthSummary:
    day = now - timedelta(hours=24)
    f, a = FEEDS, ALERTS
    active = f.c.active.is_(True)
    return HealthSummary(
        feeds_active=_count(s, select(func.count()).where(active)),
        feeds_failing=_count(s, select(func.count()).where(active, f.c.error_count > 0)),
        feeds_gone=_count(s, select(func.count()).where(active, f.c.gone.is_(True))),
        feeds_stale=len(stale_feed_ids(s)),
        last_success_at=s.execute(select(func.max(f.c.last_success_at))).scalar(),
        items=_count(s, select(func.count()).select_from(ITEMS)),
        items_last_24h=_count(s, select(func.count()).where(ITEMS.c.fetched_at >= day)),
        stories=_count(s, select(func.count()).select_from(STORIES)),
        alerts_pending=_count(s, select(func.count()).where(a.c.status == "pending")),
        alerts_dead=_count(s, select(func.count()).where(a.c.status == "dead")),
        alerts_sent_last_24h=_count(
            s, select(func.count()).where(a.c.status == "sent", a.c.sent_at >= day)
        ),
    )
