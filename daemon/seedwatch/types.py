"""Plain values that flow between the stages, named for the direction they travel.

    FeedRef --fetch--> FetchResult --parse--> ParsedFeed(ParsedItem ...)
        --normalize--> Item --classify--> Score --rules--> Match
        --pipeline--> ProcessedItem --storage--> StoreOutcome (+ outbox rows)
    outbox row --alerts--> AlertMessage --channel--> delivered / DeliveryError

Every stage between fetch and store is a pure function over these: no session, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FeedRef:
    """A feed the scheduler hands to fetch: where it is and what we last saw of it."""

    id: int
    url: str
    name: str
    tags: tuple[str, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    last_hash: str | None = None  # sha256 hex of the last body we parsed


@dataclass(frozen=True)
class FetchResult:
    """What fetch got back. ``body`` is empty when the server said 304 Not Modified."""

    requested_url: str
    url: str  # after redirects
    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in arrival order
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set when every hop to ``url`` was a 301/308
    not_modified: bool = False
    body_hash: str | None = None  # sha256 hex of ``body``
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        value = None
        for key, val in self.headers:
            if key == wanted:
                value = val
        return value


@dataclass(frozen=True)
class ParsedItem:
    """One entry as read from the document (fastparse, or feedparser as the fallback).

    Text fields may hold HTML that is NOT safe to render (the fast path skips feedparser's
    sanitizer when it cannot change the plain text): only ``normalize`` reads them, through
    ``html_to_text``."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    published: datetime | None  # aware, UTC
    updated: datetime | None  # aware, UTC
    author: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed document: feed-level facts and its entries."""

    title: str
    link: str | None
    language: str | None
    ttl_minutes: int | None
    items: tuple[ParsedItem, ...]
    warning: str | None = None  # feedparser's bozo message when it recovered from an error


@dataclass(frozen=True)
class Item:
    """A normalized item: plain text, canonical URL, UTC dates, a stable key."""

    feed_id: int
    key: str  # stable within the feed: hash of guid, else canonical link, else title+date
    guid: str | None
    url: str | None  # canonical, tracking parameters removed
    title: str  # plain text
    text: str  # plain text
    published: datetime  # aware UTC; the fetch time when the feed gave no date
    content_hash: str  # sha256 hex over normalized title + text
    author: str | None = None
    tags: tuple[str, ...] = ()
    language: str = "und"  # BCP-47 primary tag: en, ru, kk, ky, uz, ... or und


@dataclass(frozen=True)
class Score:
    """How much an item resembles the seeds, and why."""

    score: float  # 0..1, calibrated so the threshold means the same whatever the seed count
    topic: str
    relevant: bool
    nearest_seed: str | None = None
    passage: str | None = None
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """A watch rule an item satisfied, with the terms that made it match."""

    rule: str
    terms: tuple[str, ...]
    channels: tuple[str, ...]


@dataclass(frozen=True)
class ProcessedItem:
    """An item with everything the pure stages found out about it, ready to store."""

    item: Item
    score: Score
    matches: tuple[Match, ...] = ()


@dataclass(frozen=True)
class StoreOutcome:
    """What storing one feed's batch did."""

    new_items: tuple[int, ...] = ()  # ids of items stored for the first time
    duplicates: int = 0
    alerts: tuple[str, ...] = ()  # ids of outbox rows created
    stories: tuple[tuple[str, int], ...] = ()  # (item key, story id) of each new item


@dataclass(frozen=True)
class AlertMessage:
    """One alert as a channel renders it: everything the receiver needs to see why."""

    id: str  # stable: receivers deduplicate on it
    rule: str
    channel: str
    title: str
    url: str | None
    feed: str
    published: datetime
    created: datetime
    score: float
    topic: str
    terms: tuple[str, ...] = ()
    snippet: str = ""  # plain text around the matched terms
    nearest_seed: str | None = None
    story_id: int | None = None
    also_reported_by: tuple[str, ...] = ()
    kind: str = "match"  # match | digest | operator
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
