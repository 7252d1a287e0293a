"""The alert outbox: leasing due alerts to a deliverer, and recording how delivery went.

Delivery is at least once: an alert is marked sent only after the channel took it, so a crash
between the two sends it again, with the same id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from seedwatch.alerts.render import snippet
from seedwatch.storage.common import (
    ALERTS,
    FEEDS,
    ITEMS,
    MATCHES,
    chunks,
    insert_for,
    storage_errors,
    tuple_of,
)
from seedwatch.types import AlertMessage

OPERATOR_REPEAT = timedelta(hours=24)
SNIPPET_CHARS = 280
DIGEST_MARK = "digest:"  # dedupe_key of match alerts sent inside a digest: "digest:<digest id>"
MAX_ERROR_TEXT = 1000
_OPERATOR_NS = uuid.UUID("6f1d8d0e-3c1b-5b7e-9a52-5eed0a7c0002")


def _also_reported(s: Session, story_ids: set[int]) -> dict[int, dict[int, str]]:
    """story id -> {feed id: feed name} of every feed carrying the story."""
    found: dict[int, dict[int, str]] = defaultdict(dict)
    for part in chunks(sorted(story_ids)):
        rows = s.execute(
            select(ITEMS.c.story_id, FEEDS.c.id, FEEDS.c.name)
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .where(ITEMS.c.story_id.in_(part))
            .distinct()
        ).all()
        for sid, fid, name in rows:
            found[int(sid)][int(fid)] = name
    return found


def _messages(s: Session, rows: list[Any]) -> list[AlertMessage]:
    item_ids = {r.item_id for r in rows if r.item_id is not None}
    items: dict[int, Any] = {}
    terms: dict[tuple[int, str], tuple[str, ...]] = {}
    for part in chunks(sorted(item_ids)):
        for r in s.execute(
            select(
                ITEMS.c.id,
                ITEMS.c.feed_id,
                ITEMS.c.title,
                ITEMS.c.url,
                ITEMS.c.text,
                ITEMS.c.published_at,
                ITEMS.c.score,
                ITEMS.c.topic,
                ITEMS.c.explanation,
                FEEDS.c.name.label("feed_name"),
            )
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .where(ITEMS.c.id.in_(part))
        ).all():
            items[int(r.id)] = r
        for m in s.execute(
            select(MATCHES.c.item_id, MATCHES.c.rule, MATCHES.c.terms).where(
                MATCHES.c.item_id.in_(part)
            )
        ).all():
            terms[(int(m.item_id), m.rule)] = tuple_of(m.terms)
    outlets = _also_reported(s, {r.story_id for r in rows if r.story_id is not None})
    out: list[AlertMessage] = []
    for a in rows:
        extra: tuple[tuple[str, str], ...] = (("attempts", str(a.attempts)),)
        if a.attempts == 0 and a.next_attempt_at > a.created_at:
            # Held back (digest period, quiet hours, rate limit): it goes out in a digest.
            extra = (*extra, ("held", "1"))
        if a.kind == "operator" or a.item_id not in items:
            payload = a.payload if isinstance(a.payload, dict) else {}
            body = str(payload.get("body", ""))
            out.append(
                AlertMessage(
                    id=a.id,
                    rule=a.rule or str(payload.get("kind", a.kind)),
                    channel=a.channel,
                    title=str(payload.get("title", "seedwatch")),
                    url=None,
                    feed="seedwatch",
                    published=a.created_at,
                    created=a.created_at,
                    score=0.0,
                    topic="",
                    snippet=body,
                    story_id=a.story_id,
                    kind=a.kind,
                    extra=(
                        *extra,
                        ("body", body),
                        ("operator_kind", str(payload.get("kind", ""))),
                        ("key", str(payload.get("key", ""))),
                    ),
                )
            )
            continue
        it = items[a.item_id]
        if a.kind == "follow_up" and isinstance(a.payload, dict):
            # The story reached the rule's follow_up_outlets: say how many carry it now.
            extra = (
                *extra,
                ("outlets", str(a.payload.get("outlets", ""))),
                ("threshold", str(a.payload.get("threshold", ""))),
            )
        found_terms = terms.get((a.item_id, a.rule or ""), ())
        explanation = it.explanation if isinstance(it.explanation, dict) else {}
        others = outlets.get(a.story_id, {}) if a.story_id is not None else {}
        also = tuple(
            sorted({name for fid, name in others.items() if fid != it.feed_id} - {it.feed_name})
        )
        out.append(
            AlertMessage(
                id=a.id,
                rule=a.rule or "",
                channel=a.channel,
                title=it.title,
                url=it.url,
                feed=it.feed_name,
                published=it.published_at,
                created=a.created_at,
                score=float(it.score),
                topic=it.topic,
                terms=found_terms,
                snippet=snippet(it.text or it.title, found_terms, width=SNIPPET_CHARS),
                nearest_seed=explanation.get("nearest_seed"),
                story_id=a.story_id,
                also_reported_by=also,
                kind=a.kind,
                extra=extra,
            )
        )
    return out


@storage_errors
def claim_due_alerts(
    s: Session, now: datetime, *, limit: int, owner: str, lease: float
) -> list[AlertMessage]:
    """Lease up to ``limit`` pending alerts that are due, and commit the lease.

    ``AlertMessage.extra`` carries ("attempts", n): deliveries tried before this one.
    """
    a = ALERTS
    due = (
        select(a.c.id)
        .where(
            a.c.status == "pending",
            a.c.next_attempt_at <= now,
            or_(a.c.lease_until.is_(None), a.c.lease_until <= now),
        )
        .order_by(a.c.next_attempt_at, a.c.created_at, a.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    stmt = (
        update(a)
        .where(a.c.id.in_(select(due.c.id)))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease))
        .returning(
            a.c.id,
            a.c.kind,
            a.c.rule,
            a.c.channel,
            a.c.item_id,
            a.c.story_id,
            a.c.attempts,
            a.c.created_at,
            a.c.next_attempt_at,
            a.c.payload,
        )
    )
    try:
        rows = list(s.execute(stmt).all())
        rows.sort(key=lambda r: (r.next_attempt_at, r.created_at, r.id))
        messages = _messages(s, rows)
        s.commit()
    except BaseException:
        s.rollback()
        raise
    return messages


@storage_errors
def mark_sent(s: Session, alert_id: str, now: datetime, *, digest: str | None = None) -> None:
    """The channel took the alert; ``digest`` is the id of the digest message that carried it
    (rate limits count messages, and a digest is one). Caller commits."""
    values: dict[str, Any] = {
        "status": "sent",
        "sent_at": now,
        "attempts": ALERTS.c.attempts + 1,
        "lease_owner": None,
        "lease_until": None,
    }
    if digest is not None:
        values["dedupe_key"] = DIGEST_MARK + digest
    s.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(values))


@storage_errors
def channel_sends_since(s: Session, channel: str, since: datetime) -> list[datetime]:
    """When each message to ``channel`` was sent after ``since``, oldest first: one entry per
    single alert and one per digest (however many alerts it carried). Read from the outbox
    itself, so a per-channel rate limit holds across restarts and between daemons."""
    a = ALERTS
    rows = s.execute(
        select(a.c.id, a.c.dedupe_key, a.c.sent_at).where(
            a.c.channel == channel,
            a.c.status == "sent",
            a.c.sent_at > since,
        )
    ).all()
    # Operator rows carry their own dedupe_key; each of them is one message as well.
    first: dict[str, datetime] = {}
    for row_id, dedupe, sent_at in rows:
        k = dedupe if dedupe and str(dedupe).startswith(DIGEST_MARK) else f"id:{row_id}"
        if k not in first or sent_at < first[k]:
            first[k] = sent_at
    return sorted(first.values())


@storage_errors
def defer_alerts(s: Session, alert_ids: Sequence[str], until: datetime) -> int:
    """Hand claimed alerts back, due at ``until`` (a channel's hourly limit is used up). They
    come back held, so they go out in the next digest; nothing is dropped. Caller commits."""
    done = 0
    for part in chunks(list(alert_ids)):
        result = s.execute(
            update(ALERTS)
            .where(ALERTS.c.id.in_(part), ALERTS.c.status == "pending")
            .values(next_attempt_at=until, lease_owner=None, lease_until=None)
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


@storage_errors
def mark_failed(
    s: Session, alert_id: str, now: datetime, *, error: str, next_attempt: datetime | None
) -> None:
    """A delivery failed: try again at ``next_attempt``, or give up ("dead") when None.
    ``error`` must already be free of secrets. Caller commits."""
    values: dict[str, Any] = {
        "attempts": ALERTS.c.attempts + 1,
        "last_error": error[:MAX_ERROR_TEXT],
        "lease_owner": None,
        "lease_until": None,
    }
    if next_attempt is None:
        values["status"] = "dead"
    else:
        values["status"] = "pending"
        values["next_attempt_at"] = next_attempt
    s.execute(
        update(ALERTS).where(ALERTS.c.id == alert_id, ALERTS.c.status != "sent").values(values)
    )


@storage_errors
def retry_alert(s: Session, alert_id: str, now: datetime) -> bool:
    """Make a dead or pending alert due now (``seedwatch alerts --retry ID``). ``alert_id`` may
    be the full id or a prefix naming one alert (``seedwatch alerts`` shows 12 characters).
    False when there is no such alert, the prefix is ambiguous, or it was already sent.
    Caller commits."""
    exact = s.execute(select(ALERTS.c.id).where(ALERTS.c.id == alert_id)).first()
    if exact is None and len(alert_id) >= 6:
        like = alert_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found = s.execute(
            select(ALERTS.c.id).where(ALERTS.c.id.like(like + "%", escape="\\")).limit(2)
        ).all()
        if len(found) == 1:
            alert_id = found[0].id
    result = s.execute(
        update(ALERTS)
        .where(ALERTS.c.id == alert_id, ALERTS.c.status.in_(("dead", "pending")))
        .values(status="pending", next_attempt_at=now, lease_owner=None, lease_until=None)
        .returning(ALERTS.c.id)
    )
    return result.first() is not None


def _dedupe_key(kind: str, key: str) -> str:
    # The key may be a long error text; the digest keeps the index small.
    return f"{kind}:{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()[:32]}"


@storage_errors
def enqueue_operator_alert(
    s: Session,
    *,
    channel: str,
    kind: str,
    key: str,
    title: str,
    body: str,
    now: datetime,
    repeat_after: timedelta = OPERATOR_REPEAT,
) -> str | None:
    """Queue a one-off alert to the operator ("feed failing", "watchlist broken").

    Returns its id, or None when the same (kind, key) is still pending for the channel or was
    raised within ``repeat_after`` (so a flapping feed does not flood the operator). Caller
    commits.
    """
    dk = _dedupe_key(kind, key)
    a = ALERTS
    recent = s.execute(
        select(a.c.id)
        .where(
            a.c.kind == "operator",
            a.c.dedupe_key == dk,
            a.c.channel == channel,
            or_(a.c.status == "pending", a.c.created_at >= now - repeat_after),
        )
        .limit(1)
    ).first()
    if recent is not None:
        return None
    aid = str(uuid.uuid5(_OPERATOR_NS, f"{dk}\x1f{channel}\x1f{now.isoformat()}"))
    got = s.execute(
        insert_for(s, ALERTS)
        .values(
            id=aid,
            kind="operator",
            rule=None,
            channel=channel,
            item_id=None,
            story_id=None,
            dedupe_key=dk,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            payload={"kind": kind, "key": key, "title": title, "body": body},
        )
        .on_conflict_do_nothing()
        .returning(a.c.id)
    ).scalar_one_or_none()
    return str(got) if got is not None else None
