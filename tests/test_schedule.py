from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from seedwatch.config.model import ScheduleConfig
from seedwatch.schedule import PollOutcome, clamp_interval, next_check

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SCHED = ScheduleConfig(interval=900, min_interval=300, max_interval=3600, max_backoff=86400)


def delay(outcome: PollOutcome, interval: float | None = None) -> float:
    when = next_check(NOW, outcome, interval=interval, schedule=SCHED, rng=random.Random(1))
    return (when - NOW).total_seconds()


def test_success_uses_interval_with_small_jitter() -> None:
    d = delay(PollOutcome(ok=True))
    assert 900 <= d <= 900 + 45


def test_interval_is_clamped() -> None:
    assert clamp_interval(10, SCHED) == 300
    assert clamp_interval(10**9, SCHED) == 3600
    assert clamp_interval(None, SCHED) == 900


def test_errors_back_off_but_never_beyond_max_backoff() -> None:
    delays = [delay(PollOutcome(ok=False, error_count=n)) for n in range(1, 40)]
    assert delays[0] < delays[3] < delays[6]
    assert all(d <= 86400 + 60 for d in delays)
    assert delays[-1] >= 86400  # still polled, once a day


def test_retry_after_is_honoured_and_capped() -> None:
    assert delay(PollOutcome(ok=False, error_count=1, retry_after=7200)) >= 7200
    assert delay(PollOutcome(ok=False, error_count=1, retry_after=1e12)) <= 86400 + 60


def test_ttl_lengthens_interval_within_bounds() -> None:
    assert delay(PollOutcome(ok=True, ttl=1800)) >= 1800
    assert delay(PollOutcome(ok=True, ttl=10**7)) <= 3600 + 60


@given(
    ok=st.booleans(),
    errors=st.integers(min_value=0, max_value=10**6),
    retry=st.none() | st.floats(min_value=0, max_value=1e15),
    interval=st.none() | st.floats(min_value=0, max_value=1e9),
)
def test_next_check_always_in_bounds(
    ok: bool, errors: int, retry: float | None, interval: float | None
) -> None:
    when = next_check(
        NOW, PollOutcome(ok=ok, error_count=errors, retry_after=retry), interval=interval,
        schedule=SCHED, rng=random.Random(0),
    )
    assert NOW + timedelta(seconds=SCHED.min_interval) <= when
    assert when <= NOW + timedelta(seconds=SCHED.max_backoff + 60)
