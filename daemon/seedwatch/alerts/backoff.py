"""When to try a failed alert again: exponential backoff with jitter, spread over hours.

Pure: the clock and the random source come in as arguments.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

# A receiver's Retry-After is honoured up to this; beyond it a hostile or broken server could
# park an alert forever.
MAX_RETRY_AFTER = 7 * 24 * 3600.0


def delay(
    attempts: int,
    *,
    retry_after: float | None,
    rng: random.Random,
    base: float = 30.0,
    factor: float = 2.0,
    cap: float = 6 * 3600.0,
) -> float:
    """Seconds to wait after the ``attempts``-th failed try (1 = the first try failed)."""
    exponent = max(0, attempts - 1)
    # math.pow overflows for huge exponents; the cap is reached long before.
    ceiling = cap if exponent > 64 else min(cap, base * math.pow(factor, exponent))
    # "Equal jitter": never less than half the ceiling, so the schedule still grows, while
    # alerts that failed together (one outage) spread out instead of retrying in a herd.
    wait = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
    return wait


def next_attempt(
    attempts: int,
    now: datetime,
    *,
    retry_after: float | None,
    rng: random.Random,
    base: float = 30.0,
    factor: float = 2.0,
    cap: float = 6 * 3600.0,
    max_attempts: int = 12,
) -> datetime | None:
    """When to try again after the ``attempts``-th failed try, or None when that was the last.

    With the defaults the twelve tries span roughly 7 to 15 hours.
    """
    if attempts >= max_attempts:
        return None
    wait = delay(attempts, retry_after=retry_after, rng=rng, base=base, factor=factor, cap=cap)
    return now + timedelta(seconds=wait)
