"""When a new alert may go out: digest periods and quiet hours, as a pure function of the rules.

    store_batch(..., not_before=not_before_for(rules, now)) -> outbox row due at that time

A digest rule's alerts are due at the end of the current digest period. Periods are aligned
to the epoch (every 3600 s period ends on the hour), so every alert raised during one period,
by any daemon, is due at the same instant, and delivery sends them as one digest per channel.
An alert raised in a rule's quiet hours is due when they end (a digest period ending inside
quiet hours waits too). Rows held this way are sent as a digest (see digest.plan).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta

from seedwatch.config.model import RuleConfig

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def digest_due(now: datetime, period: float) -> datetime:
    """The end of the epoch-aligned digest period that ``now`` falls in."""
    if period <= 0:
        return now
    elapsed = (now - _EPOCH).total_seconds()
    periods = int(elapsed // period) + 1
    return _EPOCH + timedelta(seconds=periods * period)


def _in_window(t: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= t < end
    return t >= start or t < end  # the window spans midnight


def quiet_end(when: datetime, quiet: tuple[time, time] | None) -> datetime:
    """``when`` itself, or the end of the quiet hours (UTC) it falls in."""
    if quiet is None:
        return when
    start, end = quiet
    if start == end:
        return when  # an empty window rather than a rule that never speaks
    w = when.astimezone(UTC)
    if not _in_window(w.time().replace(tzinfo=None), start, end):
        return when
    candidate = datetime.combine(w.date(), end, tzinfo=UTC)
    if candidate <= w:
        candidate += timedelta(days=1)
    return candidate


def due_time(rule: RuleConfig, now: datetime) -> datetime:
    """When an alert of ``rule`` raised at ``now`` may be sent."""
    return quiet_end(digest_due(now, rule.digest), rule.quiet_hours)



def not_before_for(rules: Sequence[RuleConfig], now: datetime) -> Callable[[str, str], datetime]:
    """``not_before(rule_name, channel) -> datetime`` for storage.store_batch.

    Rules not in ``rules`` (renamed while a batch was in flight) are due ``now``.
    """
    by_name = {r.name: due_time(r, now) for r in rules}

    def not_before(rule: str, channel: str) -> datetime:
        return by_name.get(rule, now)

    return not_before


def digest_rule_names(rules: Sequence[RuleConfig]) -> frozenset[str]:
    """Names for deliver_due(digest_rules=...): rules whose alerts always go out as digests."""
    return frozenset(r.name for r in rules if r.digest > 0)
