"""The pure middle of the pipeline, as a shell pipeline would read:

    FetchResult | parse | normalize | analyse    ->  Prepared       (prepare: no daemon state)
    Prepared    | without(stored keys)           ->  Prepared       (only the new items)
    Prepared    | classify | match               ->  Processed      (judge: the live models)

No session, no HTTP: everything here is a function of its arguments, so it is tested with
plain values. ``poller`` does the I/O on either side (fetch before, store after).

``prepare`` is the CPU-heavy half and needs nothing that changes while the daemon runs (the
text analysis for the classifier and the story fingerprint are functions of the item alone),
so ``parallel.PreparePool`` runs it in worker processes, on every core. ``judge`` needs the
classifier's stream statistics and the hot-reloaded watchlist, so it runs in the daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from seedwatch.classify.analysis import Analysis
from seedwatch.normalize import normalize_feed
from seedwatch.parse import parse
from seedwatch.stories.fingerprint import Fingerprint, fingerprint
from seedwatch.stories.settings import StorySettings
from seedwatch.types import FeedRef, FetchResult, Item, Match, ParsedFeed, ProcessedItem, Score

# (title, text) -> what the classifier needs of the text; a module-level function, so that
# it pickles by name into a worker process.
Analyzer = Callable[[str, str], Analysis]


class Scorer(Protocol):
    def score_many(self, analyses: Sequence[Analysis]) -> list[Score]: ...


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
class Prepared:
    """One fetched document after the stages that need no daemon state.

    ``feed`` is the parsed feed without its entries (their raw HTML is not needed after
    normalize, and this value crosses a process boundary); ``dates`` are the entries'
    published-or-updated dates, which the scheduler learns the publishing rate from.
    """

    feed: ParsedFeed
    dates: tuple[datetime, ...]
    items: tuple[Item, ...]
    analyses: tuple[Analysis, ...]  # the classifier's analysis of each item, aligned with items
    fingerprints: tuple[Fingerprint, ...]  # the story index's, aligned with items


@dataclass(frozen=True)
class Processed:
    """One fetched document after the pure stages."""

    prepared: Prepared
    items: tuple[ProcessedItem, ...]


def prepare(
    feed: FeedRef,
    result: FetchResult,
    *,
    now: datetime,
    analyzer: Analyzer,
    stories: StorySettings,
) -> Prepared:
    """parse -> normalize -> analyse. Raises ParseError for a body with no feed."""
    parsed = parse(result)
    items = normalize_feed(feed, parsed, fetched_at=now, base_url=result.url)
    dates = tuple(d for e in parsed.items if (d := e.published or e.updated) is not None)
    return Prepared(
        feed=replace(parsed, items=()),
        dates=dates,
        items=items,
        analyses=tuple(analyzer(it.title, it.text) for it in items),
        fingerprints=tuple(fingerprint(it, stories) for it in items),
    )


def without(prepared: Prepared, keys: Collection[str]) -> Prepared:
    """``prepared`` less the items whose key is in ``keys`` (those already stored: a changed
    document mostly repeats them). The feed and its dates stay whole: the scheduler learns
    the publishing rate from every entry."""
    if not keys:
        return prepared
    keep = [i for i, it in enumerate(prepared.items) if it.key not in keys]
    return replace(
        prepared,
        items=tuple(prepared.items[i] for i in keep),
        analyses=tuple(prepared.analyses[i] for i in keep),
        fingerprints=tuple(prepared.fingerprints[i] for i in keep),
    )


def judge(feed: FeedRef, prepared: Prepared, *, scorer: Scorer, matcher: Matcher) -> Processed:
    """classify -> match, one document's items at once."""
    scores = scorer.score_many(prepared.analyses)
    out = tuple(
        ProcessedItem(
            item=item,
            score=score,
            matches=matcher.match(
                item, score, feed_name=feed.name, feed_url=feed.url, feed_tags=feed.tags
            ),
        )
        for item, score in zip(prepared.items, scores, strict=True)
    )
    return Processed(prepared, out)

