"""The pure middle of the pipeline, as a shell pipeline would read:

    FetchResult | parse | normalize | analyse | match   ->  Prepared   (prepare: no daemon state)
    Prepared    | without(stored keys)                  ->  Prepared   (only the new items)
    Prepared    | classify | accept                     ->  Processed  (judge: the live models)

No session, no HTTP: everything here is a function of its arguments, so it is tested with
plain values. ``poller`` does the I/O on either side (fetch before, store after).

``prepare`` is the CPU-heavy half and needs nothing that changes while the daemon runs (the
text analysis for the classifier and the story fingerprint are functions of the item alone;
the watch rules' queries are matched against a copy of the watchlist of a known version), so
``parallel.PreparePool`` runs it in worker processes, on every core. ``judge`` needs the
classifier's stream statistics, so it runs in the daemon: it scores the items and keeps the
matches whose rules accept the score (min_score, topics). When the watchlist was edited in
between, judge matches again with the live one.
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
    @property
    def version(self) -> str: ...

    def match(
        self,
        item: Item,
        score: Score | None,
        *,
        feed_name: str = "",
        feed_url: str = "",
        feed_tags: Sequence[str] = (),
    ) -> tuple[Match, ...]: ...

    def accept(self, found: Sequence[Match], score: Score) -> tuple[Match, ...]: ...


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
    # The watch rules each item's text matched, score filters not yet applied (aligned with
    # items), and the version of the watchlist that found them; None when not matched yet.
    matched: tuple[tuple[Match, ...], ...] | None = None
    watch_version: str = ""


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
    watch: Matcher | None = None,
) -> Prepared:
    """parse -> normalize -> analyse (-> match, given ``watch``). Raises ParseError for a
    body with no feed."""
    parsed = parse(result)
    items = normalize_feed(feed, parsed, fetched_at=now, base_url=result.url)
    dates = tuple(d for e in parsed.items if (d := e.published or e.updated) is not None)
    matched = None
    if watch is not None:
        matched = tuple(
            watch.match(it, None, feed_name=feed.name, feed_url=feed.url, feed_tags=feed.tags)
            for it in items
        )
    return Prepared(
        feed=replace(parsed, items=()),
        dates=dates,
        items=items,
        analyses=tuple(analyzer(it.title, it.text) for it in items),
        fingerprints=tuple(fingerprint(it, stories) for it in items),
        matched=matched,
        watch_version=watch.version if watch is not None else "",
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
        matched=None if prepared.matched is None else tuple(prepared.matched[i] for i in keep),
    )


def judge(feed: FeedRef, prepared: Prepared, *, scorer: Scorer, matcher: Matcher) -> Processed:
    """classify -> match, one document's items at once."""
    scores = scorer.score_many(prepared.analyses)
    # Not matched yet, or by a watchlist edited since: match with the live one.
    found = prepared.matched if prepared.watch_version == matcher.version else None
    out = tuple(
        ProcessedItem(
            item=item,
            score=score,
            matches=matcher.match(
                item, score, feed_name=feed.name, feed_url=feed.url, feed_tags=feed.tags
            )
            if found is None
            else matcher.accept(found[i], score),
        )
        for i, (item, score) in enumerate(zip(prepared.items, scores, strict=True))
    )
    return Processed(prepared, out)

