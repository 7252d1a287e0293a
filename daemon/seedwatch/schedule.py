"""When to poll a feed next: a pure function of what the last poll saw.

The schedule itself lives in the database (``feeds.next_check_at``); this module only decides
the next value, so restarts, several daemons and clock jumps all read the same truth.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from seedwatch.config.model import ScheduleConfig


@dataclass(frozen=True)
class PollOutcome:
    """What the last poll of a feed observed, as far as scheduling cares."""

    ok: bool
    error_count: int = 0  # consecutive failures including this one
    retry_after: float | None = None  # seconds the server asked us to wait
    ttl: float | None = None  # seconds the feed says it may be cached (RSS <ttl>, max-age)


def clamp_interval(interval: float | None, schedule: ScheduleConfig) -> float:
    """The configured (or default) interval forced into [min_interval, max_interval]."""
    value = schedule.interval if interval is None else interval
    return min(max(value, schedule.min_interval), schedule.max_interval)


def next_check(
    now: datetime,
    outcome: PollOutcome,
    *,
    interval: float | None,
    schedule: ScheduleConfig,
    rng: random.Random,
) -> datetime:
    """The next time to poll.

    Errors back off exponentially from the feed's interval but never beyond ``max_backoff``:
    a broken feed is still checked at least that often, so it is noticed when it recovers.
    A small jitter keeps many feeds with one interval from hitting the network in lockstep.
    """
    base = clamp_interval(interval, schedule)
    if outcome.ttl is not None:
        base = min(max(base, outcome.ttl), schedule.max_interval)
    if outcome.ok:
        delay = base
    else:
        # 2**n grows fast: cap the exponent before it overflows a float.
        delay = min(base * (2 ** min(max(outcome.error_count - 1, 0), 30)), schedule.max_backoff)
        delay = max(delay, min(base, schedule.max_backoff))
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, schedule.max_backoff))
    jitter = rng.uniform(0.0, min(delay * 0.05, 60.0))
    return now + timedelta(seconds=delay + jitter)


# -- adaptive rate, cache headers, forced full fetches, staleness -----------------------------

RATE_SAMPLE = 20  # newest item dates the publishing rate is estimated from
# A server that answers 304 forever may be stuck on an old ETag (FreshRSS #1020): fetch the
# whole body unconditionally when the last one is older than this many intervals, or a day.
FULL_FETCH_INTERVALS = 20
FULL_FETCH_MAX_AGE = 24 * 3600.0
STALE_FACTOR = 3.0
STALE_MIN = 2 * 24 * 3600.0


def publishing_gap(dates: Iterable[datetime], *, now: datetime) -> float | None:
    """Median seconds between the newest distinct item dates, or None with fewer than 3.

    Dates in the future (clock-skewed feeds) count as ``now``; identical dates (a feed that
    stamps every item with the fetch time) give no gap and are folded.
    """
    seen = sorted({min(d, now) for d in dates}, reverse=True)[: RATE_SAMPLE + 1]
    if len(seen) < 3:
        return None
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(seen)]
    return float(statistics.median(gaps))


def adaptive_interval(gap: float | None, schedule: ScheduleConfig) -> float | None:
    """The poll interval for a feed publishing every ``gap`` seconds: half the gap (so a new
    item waits at most about half its period), within [min_interval, max_interval]."""
    if gap is None:
        return None
    return clamp_interval(gap / 2.0, schedule)


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the response may be cached: Cache-Control max-age (s-maxage ignored: we are not
    a shared cache), else Expires against the server's Date (else ``now``). None when unsaid,
    garbage, or "no-cache"/"no-store" (which ask for revalidation, not for silence)."""
    cc = headers.get("cache-control")
    if cc:
        for part in cc.split(","):
            name, _, value = part.strip().partition("=")
            name = name.strip().lower()
            if name in ("no-cache", "no-store"):
                return None
            if name == "max-age":
                text = value.strip().strip('"')
                if text.isascii() and text.isdigit():
                    return float(min(int(text[:15]), 10**12))
                return None
    expires = headers.get("expires")
    if not expires:
        return None
    when = _http_date(expires)
    if when is None:
        return None
    base = _http_date(headers.get("date") or "") or now
    try:
        return max(0.0, (when - base).total_seconds())
    except OverflowError:
        return None


def _http_date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def full_fetch_due(last_full: datetime | None, now: datetime, interval: float) -> bool:
    """True when the last full (200) body is old enough that the next fetch should ignore
    ETag/Last-Modified. A ``last_full`` in the future (the clock went back) counts as due."""
    if last_full is None:
        return True
    age = (now - last_full).total_seconds()
    return age < 0 or age >= min(FULL_FETCH_MAX_AGE, FULL_FETCH_INTERVALS * max(interval, 1.0))


def is_stale(
    newest: datetime | None,
    gap: float | None,
    now: datetime,
    *,
    last_success: datetime | None,
) -> bool:
    """A feed that still answers but has published nothing for much longer than it usually
    does: newest item older than max(3 x its median gap, 2 days) while the last successful
    fetch is more recent than that limit. Unknown rate: 6 days."""
    if newest is None or last_success is None:
        return False
    limit = max(STALE_FACTOR * gap, STALE_MIN) if gap is not None else STALE_FACTOR * STALE_MIN
    answered = (now - last_success).total_seconds() <= limit
    return answered and (now - newest).total_seconds() > limit
