"""Stored items as the matcher saw them, for ``seedwatch backtest`` (read only)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from seedwatch.storage.common import FEEDS, ITEMS, STORIES, storage_errors, tuple_of
from seedwatch.types import Item, Score

BATCH = 500


@dataclass(frozen=True)
class StoredItem:
    """One stored item with its stored score, its feed and its story."""

    id: int
    item: Item
    score: Score
    feed_name: str
    feed_url: str
    feed_tags: tuple[str, ...]
    story_id: int | None
    headline: str


@storage_errors
def stored_items_since(s: Session, since: datetime) -> Iterator[StoredItem]:
    """Items fetched at or after ``since``, oldest first, in batches (keyset on id)."""
    last = 0
    while True:
        rows = s.execute(
            select(
                ITEMS.c.id,
                ITEMS.c.feed_id,
                ITEMS.c.key,
                ITEMS.c.guid,
                ITEMS.c.url,
                ITEMS.c.title,
                ITEMS.c.text,
                ITEMS.c.author,
                ITEMS.c.tags,
                ITEMS.c.language,
                ITEMS.c.published_at,
                ITEMS.c.content_hash,
                ITEMS.c.score,
                ITEMS.c.topic,
                ITEMS.c.relevant,
                ITEMS.c.explanation,
                ITEMS.c.story_id,
                FEEDS.c.name.label("feed_name"),
                FEEDS.c.url.label("feed_url"),
                FEEDS.c.tags.label("feed_tags"),
                STORIES.c.headline,
            )
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .outerjoin(STORIES, STORIES.c.id == ITEMS.c.story_id)
            .where(ITEMS.c.fetched_at >= since, ITEMS.c.id > last)
            .order_by(ITEMS.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for r in rows:
            explanation = r.explanation if isinstance(r.explanation, dict) else {}
            yield StoredItem(
                id=int(r.id),
                item=Item(
                    feed_id=int(r.feed_id),
                    key=r.key,
                    guid=r.guid,
                    url=r.url,
                    title=r.title or "",
                    text=r.text or "",
                    published=r.published_at,
                    content_hash=r.content_hash,
                    author=r.author,
                    tags=tuple_of(r.tags),
                    language=r.language or "und",
                ),
                score=Score(
                    score=float(r.score or 0.0),
                    topic=r.topic or "",
                    relevant=bool(r.relevant),
                    nearest_seed=explanation.get("nearest_seed"),
                ),
                feed_name=r.feed_name,
                feed_url=r.feed_url,
                feed_tags=tuple_of(r.feed_tags),
                story_id=int(r.story_id) if r.story_id is not None else None,
                headline=r.headline or r.title or "",
            )
        last = int(rows[-1].id)
