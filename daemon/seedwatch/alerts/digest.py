"""Digests and per-channel rate limits: several due alerts of one channel as one message.

A digest is an ordinary AlertMessage (kind "digest") whose entries travel in ``extra``, so
every channel can send it; its id is derived from the ids it carries, so a repeat of the same
digest carries the same id. Each entry keeps its own alert id for receivers that deduplicate
per alert.

The rate limit counts messages per channel in a sliding hour. deliver_due reads the count from
the outbox (storage.outbox.channel_sends_since), so it holds across restarts; when the hour is
used up the rest are handed back due when there is room (held, so they go out as a digest).
``RateLimiter`` is the in-memory counter for callers without a database.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from seedwatch.types import AlertMessage

WINDOW = timedelta(hours=1)
ENTRY_PREFIX = "entry."
MAX_ENTRIES = 200


def digest_id(alert_ids: Sequence[str]) -> str:
    joined = "\x1f".join(sorted(alert_ids))
    return "digest-" + hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _entry(msg: AlertMessage) -> dict[str, Any]:
    return {
        "id": msg.id,
        "rule": msg.rule,
        "title": msg.title,
        "url": msg.url,
        "feed": msg.feed,
        "published": _aware(msg.published).isoformat(),
        "score": msg.score,
        "topic": msg.topic,
        "terms": list(msg.terms),
        "snippet": msg.snippet,
        "nearest_seed": msg.nearest_seed,
        "story_id": msg.story_id,
        "also_reported_by": list(msg.also_reported_by),
    }


def make_digest(channel: str, msgs: Sequence[AlertMessage], *, now: datetime) -> AlertMessage:
    """One message standing for ``msgs`` (all for ``channel``), newest first."""
    if not msgs:
        raise ValueError("a digest needs at least one alert")
    ordered = sorted(msgs, key=lambda m: (_aware(m.published), m.id), reverse=True)
    rules = sorted({m.rule for m in ordered})
    rule = rules[0] if len(rules) == 1 else ", ".join(rules[:5]) + ("…" if len(rules) > 5 else "")
    feeds = sorted({m.feed for m in ordered})
    extra = [
        (f"{ENTRY_PREFIX}{i}", json.dumps(_entry(m), ensure_ascii=False))
        for i, m in enumerate(ordered[:MAX_ENTRIES])
    ]
    extra.append(("alerts", ",".join(m.id for m in ordered)))
    return AlertMessage(
        id=digest_id([m.id for m in ordered]),
        rule=rule,
        channel=channel,
        title=f"{len(ordered)} alerts",
        url=None,
        feed=", ".join(feeds[:5]) + ("…" if len(feeds) > 5 else ""),
        published=_aware(ordered[0].published),
        created=now,
        score=max(m.score for m in ordered),
        topic="",
        terms=tuple(dict.fromkeys(t for m in ordered for t in m.terms)),
        kind="digest",
        extra=tuple(extra),
    )


def digest_entries(msg: AlertMessage) -> list[dict[str, Any]]:
    """The entries of a digest message (what make_digest put in), in order."""
    out: list[tuple[int, dict[str, Any]]] = []
    for key, value in msg.extra:
        if not key.startswith(ENTRY_PREFIX):
            continue
        try:
            index = int(key[len(ENTRY_PREFIX) :])
            entry = json.loads(value)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append((index, entry))
    return [e for _, e in sorted(out, key=lambda p: p[0])]


def is_held(msg: AlertMessage) -> bool:
    """Was the alert held back before its first try (storage marks it ("held", "1"))?"""
    return ("held", "1") in msg.extra


def room_at(sends: Sequence[datetime], limit: int, now: datetime) -> datetime:
    """When a channel that sent at ``sends`` (oldest first, within the last hour) may send
    again under ``limit`` messages an hour."""
    recent = [t for t in sends if t > now - WINDOW]
    if len(recent) < limit:
        return now
    return recent[len(recent) - limit] + WINDOW


class RateLimiter:
    """Sends per channel within the last hour; the clock comes in as ``now``."""

    def __init__(self, window: timedelta = WINDOW) -> None:
        self._window = window
        self._sent: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def remaining(self, channel: str, limit: int | None, now: datetime) -> int | None:
        """How many more sends ``channel`` may make now; None when it has no limit."""
        if limit is None:
            return None
        with self._lock:
            times = self._sent.get(channel)
            if times is None:
                return max(0, limit)
            while times and times[0] <= now - self._window:
                times.popleft()
            return max(0, limit - len(times))

    def record(self, channel: str, now: datetime) -> None:
        with self._lock:
            self._sent.setdefault(channel, deque()).append(now)


def plan(
    msgs: Sequence[AlertMessage],
    *,
    digest_rules: frozenset[str],
    budget: int | None,
) -> tuple[list[AlertMessage], list[AlertMessage], list[AlertMessage]]:
    """Split one channel's due alerts into (send alone, send as one digest, hold for later).

    Alerts of digest rules go into the digest. When the channel's budget cannot take every
    message, the overflow joins the digest instead of being dropped; with no budget left at
    all everything is held until the window has room.
    """

    def batched(m: AlertMessage) -> bool:
        # Digest rules' alerts, and alerts held back (quiet hours, an earlier full hour).
        return m.kind in ("match", "follow_up") and (m.rule in digest_rules or is_held(m))

    singles = [m for m in msgs if not batched(m)]
    batch = [m for m in msgs if batched(m)]
    if budget is not None:
        if budget <= 0:
            return [], [], list(msgs)
        if len(singles) + (1 if batch else 0) > budget:
            # Operator notices stay separate while the budget allows: they say something broke.
            singles.sort(key=lambda m: m.kind != "operator")
            keep = budget - 1
            batch = singles[keep:] + batch
            singles = singles[:keep]
    if len(batch) == 1:
        singles.append(batch.pop())
    return singles, batch, []
