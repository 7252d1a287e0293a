"""The delivery tick: claim due outbox rows, send each to its channel, record what happened.

    claim_due_alerts (lease) --> channel.send (one thread per channel) --> mark_sent
                                                                      \\-> mark_failed(next try)
                                                                      \\-> dead + operator told

Alerts of digest rules, and whatever exceeds a channel's hourly rate limit, go out as one
digest message per channel (digest.py); nothing is dropped.

Delivery is at least once: a crash between send and mark sends again after the lease, with
the same alert id. Each outcome is committed on its own, as soon as it is known, so a crash
repeats as little as possible; one channel's failure or slowness never holds back another's.
"""

from __future__ import annotations

import logging
import queue
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.alerts import render
from seedwatch.alerts.backoff import next_attempt
from seedwatch.alerts.channels import Channel
from seedwatch.alerts.digest import WINDOW, RateLimiter, make_digest, plan, room_at
from seedwatch.errors import DeliveryError, SeedwatchError
from seedwatch.storage import outbox, queries
from seedwatch.types import AlertMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
MAX_CHANNEL_THREADS = 8
# Sends stop once this share of the lease is used up: the rest are left claimed and come
# back when the lease runs out, instead of being sent while another daemon may claim them.
LEASE_BUDGET = 0.5


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # failed this time, another try scheduled
    dead: int = 0  # failed for the last time (or permanently)
    deferred: int = 0  # claimed, not tried (lease budget or hourly limit); due after the lease


def attempt_number(msg: AlertMessage) -> int:
    """Which try this is (1 = first), from the ``attempts`` storage puts in ``msg.extra``."""
    for key, value in msg.extra:
        if key == "attempts":
            try:
                return max(0, int(value)) + 1
            except ValueError:
                break
    return 1


_DEFERRED = object()
Outcome = DeliveryError | None | object


@dataclass(frozen=True)
class _Unit:
    """One send: a single alert, or a digest standing for several."""

    message: AlertMessage
    alerts: tuple[AlertMessage, ...]


def _send_channel(
    channel: Channel | None,
    name: str,
    units: Sequence[_Unit],
    deadline: float,
    out: queue.Queue[tuple[_Unit, Outcome]],
) -> None:
    done = 0
    try:
        for unit in units:
            out.put((unit, _send_one(channel, name, unit, deadline)))
            done += 1
    finally:
        # Whatever happened, the caller waits for one outcome per unit; the rest come back
        # after the lease.
        for unit in units[done:]:
            out.put((unit, _DEFERRED))


def _send_one(channel: Channel | None, name: str, unit: _Unit, deadline: float) -> Outcome:
    msg = unit.message
    if time.monotonic() > deadline:
        return _DEFERRED
    if channel is None:
        return DeliveryError(name, "no such channel in the configuration")
    try:
        channel.send(msg)
    except DeliveryError as e:
        return e
    except Exception as e:
        # A bug in one channel must not lose the alert or stop the tick; its message may
        # carry a URL, so only the type is kept.
        log.error("channel raised channel=%s alert=%s error=%s", name, msg.id, type(e).__name__)
        return DeliveryError(name, f"unexpected {type(e).__name__}")
    return None


def rate_limit_of(channel: Channel | None) -> int | None:
    """The channel's alerts-per-hour limit (build_channel copies it from the config)."""
    value = getattr(channel, "rate_limit", None)
    return value if isinstance(value, int) and value > 0 else None


def deliver_due(
    sessions: sessionmaker[Session],
    channels: Mapping[str, Channel],
    *,
    now: datetime,
    owner: str,
    lease: float,
    rng: random.Random,
    limit: int = 100,
    operator_channel: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    digest_rules: Collection[str] = (),
    limiter: RateLimiter | None = None,
) -> DeliveryReport:
    """Send every due alert (up to ``limit``) and record each outcome.

    Due alerts of ``digest_rules`` go to their channel as one digest message; a channel with a
    rate limit gets at most that many messages an hour, its overflow folded into a digest or,
    when the hour is used up, handed back due when the hour has room (and then sent in a
    digest), never dropped. The count comes from the outbox, so it holds across restarts; a
    ``limiter`` given instead keeps it in memory (held alerts then stay leased until ``lease``).
    """
    with sessions() as s:  # claim_due_alerts commits its lease itself
        msgs = queries.claim_due_alerts(s, now, limit=limit, owner=owner, lease=lease)
    if not msgs:
        return DeliveryReport()
    digests = frozenset(digest_rules)

    by_channel: dict[str, list[AlertMessage]] = {}
    for msg in msgs:
        by_channel.setdefault(msg.channel, []).append(msg)
    work: dict[str, list[_Unit]] = {}
    deferred = 0
    for name, group in by_channel.items():
        channel = channels.get(name)
        per_hour = rate_limit_of(channel)
        sends: list[datetime] | None = None
        budget: int | None
        if per_hour is None:
            budget = None
        elif limiter is not None:
            budget = limiter.remaining(name, per_hour, now)
        else:
            sends = _sends_in_window(sessions, name, now)
            budget = None if sends is None else max(0, per_hour - len(sends))
        singles, batch, held = plan(group, digest_rules=digests, budget=budget)
        if held:
            deferred += len(held)
            if sends is not None and per_hour is not None:
                until = room_at(sends, per_hour, now)
                _record(
                    sessions,
                    held[0],
                    partial(_defer, alert_ids=[m.id for m in held], until=until),
                )
                log.info(
                    "rate limit reached channel=%s held=%d until=%s",
                    name,
                    len(held),
                    until.isoformat(),
                )
            else:
                log.info("rate limit reached channel=%s held=%d", name, len(held))
        units = [_Unit(m, (m,)) for m in singles]
        if batch:
            units.append(_Unit(make_digest(name, batch, now=now), tuple(batch)))
        if units:
            work[name] = units

    deadline = time.monotonic() + lease * LEASE_BUDGET
    out: queue.Queue[tuple[_Unit, Outcome]] = queue.Queue()
    sent = failed = dead = 0
    pending = sum(len(units) for units in work.values())
    if not pending:
        return DeliveryReport(deferred=deferred)
    workers = min(MAX_CHANNEL_THREADS, len(work))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver") as pool:
        for name, units in work.items():
            pool.submit(_send_channel, channels.get(name), name, units, deadline, out)
        # Outcomes are recorded here, in the calling thread, as they arrive: one writer.
        for _ in range(pending):
            unit, outcome = out.get()
            if outcome is _DEFERRED:
                deferred += len(unit.alerts)
            elif outcome is None:
                if limiter is not None:
                    limiter.record(unit.message.channel, now)
                ids = [m.id for m in unit.alerts]
                digest = unit.message.id if unit.message.kind == "digest" else None
                _record(
                    sessions,
                    unit.message,
                    partial(_mark_sent, alert_ids=ids, now=now, digest=digest),
                )
                log.info(
                    "alert sent alert=%s channel=%s rule=%s alerts=%d",
                    unit.message.id,
                    unit.message.channel,
                    unit.message.rule,
                    len(ids),
                )
                sent += len(ids)
            elif isinstance(outcome, DeliveryError):
                for msg in unit.alerts:
                    if _fail(sessions, msg, outcome, now, rng, max_attempts, operator_channel):
                        dead += 1
                    else:
                        failed += 1
    return DeliveryReport(sent=sent, failed=failed, dead=dead, deferred=deferred)


def _fail(
    sessions: sessionmaker[Session],
    msg: AlertMessage,
    err: DeliveryError,
    now: datetime,
    rng: random.Random,
    max_attempts: int,
    operator_channel: str | None,
) -> bool:
    """Record a failed try; True when the alert is now dead."""
    attempt = attempt_number(msg)
    when = (
        None
        if err.permanent
        else next_attempt(
            attempt, now, retry_after=err.retry_after, rng=rng, max_attempts=max_attempts
        )
    )
    if when is None:
        log.error(
            "alert dead alert=%s channel=%s rule=%s attempts=%d error=%s",
            msg.id,
            msg.channel,
            msg.rule,
            attempt,
            err.message,
        )
    else:
        log.warning(
            "alert failed alert=%s channel=%s rule=%s attempt=%d next=%s error=%s",
            msg.id,
            msg.channel,
            msg.rule,
            attempt,
            when.isoformat(),
            err.message,
        )

    def record(s: Session) -> None:
        queries.mark_failed(s, msg.id, now, error=err.message, next_attempt=when)
        if when is None and operator_channel and operator_channel != msg.channel:
            if msg.kind == "operator":
                return  # an operator notice about an operator notice would loop
            queries.enqueue_operator_alert(
                s,
                channel=operator_channel,
                kind="alert_dead",
                key=f"alert_dead:{msg.id}",
                title=f"alert {msg.id} to channel {msg.channel} could not be delivered",
                body=_dead_notice(msg, err, attempt),
                now=now,
            )

    _record(sessions, msg, record)
    return when is None


def _dead_notice(msg: AlertMessage, err: DeliveryError, attempts: int) -> str:
    # DeliveryError messages never carry URLs or secrets; the rest is the alert's own text.
    return "\n".join(
        [
            f"Alert {msg.id} was given up after {attempts} attempt(s).",
            f"Channel: {msg.channel}",
            f"Rule: {render.one_line(msg.rule)}",
            f"Item: {render.one_line(msg.title)}",
            f"Link: {render.safe_link(msg.url) or '-'}",
            f"Last error: {err.message}",
            f"Retry with: seedwatch alerts --retry {msg.id}",
        ]
    )


def _mark_sent(s: Session, *, alert_ids: Sequence[str], now: datetime, digest: str | None) -> None:
    # A digest's alerts are marked together: the message carried all of them.
    for alert_id in alert_ids:
        outbox.mark_sent(s, alert_id, now, digest=digest)


def _defer(s: Session, *, alert_ids: Sequence[str], until: datetime) -> None:
    outbox.defer_alerts(s, alert_ids, until)


def _sends_in_window(
    sessions: sessionmaker[Session], channel: str, now: datetime
) -> list[datetime] | None:
    """Messages sent to ``channel`` in the last hour; None when the database cannot tell (the
    channel is then not limited this tick rather than stalled)."""
    try:
        with sessions() as s:
            return outbox.channel_sends_since(s, channel, now - WINDOW)
    except (SQLAlchemyError, SeedwatchError) as e:
        log.error("rate limit: cannot count sends channel=%s error=%s", channel, type(e).__name__)
        return None


def _record(
    sessions: sessionmaker[Session], msg: AlertMessage, action: Callable[[Session], None]
) -> None:
    try:
        with sessions.begin() as s:
            action(s)
    except (SQLAlchemyError, SeedwatchError) as e:
        # The row stays claimed; when the lease ends it is tried again (at least once).
        log.error(
            "could not record delivery outcome alert=%s channel=%s error=%s",
            msg.id,
            msg.channel,
            type(e).__name__,
        )
