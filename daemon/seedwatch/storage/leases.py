"""Re-take a feed's lease just before fetching it, so two daemons never fetch it together.

``claim_due_feeds`` leases a batch; a daemon that is slow to reach the end of its batch (a
loaded host, slow feeds ahead in the queue) can outlive the lease, and another daemon then
rightly claims the feed too. Checking-and-extending the lease in one UPDATE right before the
fetch closes that window: whoever holds the row at that instant fetches, the other skips.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from seedwatch.storage.common import ALERTS, FEEDS, storage_errors
from seedwatch.storage.feeds import (
    CONTEXT_COLUMNS,
    STATE_VALUE,
    PollContext,
    context_of,
    context_params,
)

_RENEW = (
    update(FEEDS)
    .where(FEEDS.c.id == bindparam("b_id"), FEEDS.c.lease_owner == bindparam("owner"))
    .values(lease_until=bindparam("until", type_=FEEDS.c.lease_until.type))
    .returning(*CONTEXT_COLUMNS, STATE_VALUE)
)


@storage_errors
def renew_feed_lease(
    s: Session, feed_id: int, *, owner: str, now: datetime, lease: float
) -> PollContext | None:
    """Extend ``owner``'s lease on the feed and commit; None when the lease is no longer
    ``owner``'s (another daemon took the feed over, or it was polled and released).

    Otherwise the feed's ``PollContext``, read by the same statement: the poll needs nothing
    else from the database before its fetch."""
    params = {**context_params(feed_id), "owner": owner, "until": now + timedelta(seconds=lease)}
    try:
        row = s.connection().execute(_RENEW, params).first()
        s.commit()
    except BaseException:
        s.rollback()
        raise
    return context_of(row) if row is not None else None


@storage_errors
def release_own_leases(s: Session, *, owner: str) -> int:
    """Give back every feed and alert lease ``owner`` still holds (a clean shutdown), so other
    daemons take that work at once instead of after the lease runs out. Commits."""
    released = 0
    try:
        for table in (FEEDS, ALERTS):
            released += len(
                s.execute(
                    update(table)
                    .where(table.c.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None)
                    .returning(table.c.lease_owner)
                ).all()
            )
        s.commit()
    except BaseException:
        s.rollback()
        raise
    return released
