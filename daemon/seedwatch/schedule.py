"""When to poll a feed next: a pure function of what the last poll saw.

The schedule itself lives in the database (``feeds.next_check_at``); this module only decides
the next value, so restarts, several daemons and clock jumps all read the same truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

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
