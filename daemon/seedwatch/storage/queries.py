"""Every read and write the daemon and the CLI make, in one namespace.

Each function takes a Session; the caller owns the transaction unless the docstring says the
function commits (claim_due_feeds, claim_due_polls, claim_due_alerts, store_batch).
SQLAlchemy's errors leave as ``StorageError``.
"""

from __future__ import annotations

from seedwatch.storage.feeds import (
    FeedHealth,
    PollContext,
    add_feeds,
    all_feeds,
    claim_due_feeds,
    claim_due_polls,
    feed_error_count,
    feed_interval,
    poll_context,
    record_fetch,
    release_dead_leases,
    sync_config_feeds,
)
from seedwatch.storage.outbox import (
    claim_due_alerts,
    enqueue_operator_alert,
    mark_failed,
    mark_sent,
    retry_alert,
)
from seedwatch.storage.reads import (
    AlertRow,
    FeedStatusRow,
    HealthSummary,
    ItemRow,
    StoryItem,
    StoryRow,
    feed_status,
    get_state,
    health_summary,
    list_alerts,
    list_items,
    list_stories,
    set_state,
)
from seedwatch.storage.store import (
    STORY_WINDOW,
    alert_id,
    delete_items,
    follow_up_id,
    items_with_stories,
    known_keys,
    recent_items_with_stories,
    store_batch,
)

__all__ = [
    "STORY_WINDOW",
    "AlertRow",
    "FeedHealth",
    "FeedStatusRow",
    "HealthSummary",
    "ItemRow",
    "PollContext",
    "StoryItem",
    "StoryRow",
    "add_feeds",
    "alert_id",
    "all_feeds",
    "claim_due_alerts",
    "claim_due_feeds",
    "claim_due_polls",
    "delete_items",
    "enqueue_operator_alert",
    "feed_error_count",
    "feed_interval",
    "feed_status",
    "follow_up_id",
    "get_state",
    "health_summary",
    "items_with_stories",
    "known_keys",
    "list_alerts",
    "list_items",
    "list_stories",
    "mark_failed",
    "mark_sent",
    "poll_context",
    "recent_items_with_stories",
    "record_fetch",
    "release_dead_leases",
    "retry_alert",
    "set_state",
    "store_batch",
    "sync_config_feeds",
]
