"""The pure middle of the pipeline, as a shell pipeline would read:

    FetchResult | parse | normalize | classify | match  ->  ProcessedItem...

No session, no HTTP: everything here is a function of its arguments, so it is tested with
plain values. ``poller`` does the I/O on either side (fetch before, store after).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from seedwatch.normalize import normalize_feed
from seedwatch.parse import parse
from seedwatch.types import FeedRef, FetchResult, Item, Match, ParsedFeed, ProcessedItem, Score


class Scorer(Protocol):
    def score(self, title: str, text: str) -> Score: ...


class Matcher(Protocol):
    def match(
        self,
        item: Item,
        score: Score,
        *,
        feed_name: str = "",
        feed_url: str = "",
        feed_tags: Sequence[str] = (),
    ) -> tuple[Match, ...]: ...


@dataclass(frozen=True)
class Processed:
    """One fetched document after the pure stages."""

    feed: ParsedFeed
    items: tuple[ProcessedItem, ...]


def process_items(
    feed: FeedRef, items: Iterable[Item], *, scorer: Scorer, matcher: Matcher
) -> tuple[ProcessedItem, ...]:
    out = []
    for item in items:
        score = scorer.score(item.title, item.text)
        matches = matcher.match(
            item, score, feed_name=feed.name, feed_url=feed.url, feed_tags=feed.tags
        )
        out.append(ProcessedItem(item=item, score=score, matches=matches))
    return tuple(out)


def process(
    feed: FeedRef,
    result: FetchResult,
    *,
    now: datetime,
    scorer: Scorer,
    matcher: Matcher,
) -> Processed:
    """parse -> normalize -> classify -> match. Raises ParseError for a body with no feed."""
    parsed = parse(result)
    items = normalize_feed(feed, parsed, fetched_at=now, base_url=result.url)
    return Processed(parsed, process_items(feed, items, scorer=scorer, matcher=matcher))
