"""Re-take a feed's lease just before fetching it, so two daemons never fetch it together.

``claim_due_feeds`` leases a batch; a daemon that is slow to reach the end of its batch (a
loaded host, slow feeds ahead in the queue) can outlive the lease, and another daemon then
rightly claims the feed too. Checking-and-extending the lease in one UPDATE right before the
fetch closes that window: whoever holds the row at that instant fetches, the other skips.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from seedwatch.storage.common import ALERTS, FEEDS, storage_errors


@storage_errors
def renew_feed_lease(
    s: Session, feed_id: int, *, owner: str, now: datetime, lease: float
) -> bool:
    """Extend ``owner``'s lease on the feed and commit; False when the lease is no longer
    ``owner``'s (another daemon took the feed over, or it was polled and released)."""
    try:
        row = s.execute(
            update(FEEDS)
            .where(FEEDS.c.id == feed_id, FEEDS.c.lease_owner == owner)
            .values(lease_until=now + timedelta(seconds=lease))
            .returning(FEEDS.c.id)
        ).first()
        s.commit()
    except BaseException:
        s.rollback()
        raise
    return row is not None


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
