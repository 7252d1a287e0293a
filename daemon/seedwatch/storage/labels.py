"""The one read ``seedwatch label`` needs: a stored item's text and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from seedwatch.storage.common import FEEDS, ITEMS


@dataclass(frozen=True)
class LabelItem:
    id: int
    title: str
    text: str
    url: str | None
    published: datetime
    feed: str
    topic: str
    language: str


def item_for_label(s: Session, item_id: int) -> LabelItem | None:
    """The stored item ``item_id``, or None when there is no such item."""
    row = s.execute(
        select(
            ITEMS.c.id,
            ITEMS.c.title,
            ITEMS.c.text,
            ITEMS.c.url,
            ITEMS.c.published_at,
            ITEMS.c.topic,
            ITEMS.c.language,
            FEEDS.c.name,
        )
        .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
        .where(ITEMS.c.id == item_id)
    ).first()
    if row is None:
        return None
    return LabelItem(
        id=int(row.id),
        title=row.title or "",
        text=row.text or "",
        url=row.url,
        published=row.published_at,
        feed=row.name,
        topic=row.topic or "",
        language=row.language or "und",
    )
