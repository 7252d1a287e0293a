"""initial schema: feeds, stories, items, matches, alerts (outbox), tombstones, state

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("origin_url", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("interval", sa.Float(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("last_hash", sa.String(64), nullable=True),
        _ts("next_check_at", nullable=False),
        _ts("last_success_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("last_error_at"),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_until"),
        sa.Column("title", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feeds"),
        sa.UniqueConstraint("url", name="uq_feeds_url"),
    )
    op.create_index("ix_feeds_next_check_at", "feeds", ["next_check_at"])
    op.create_index("ix_feeds_origin_url", "feeds", ["origin_url"])

    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        _ts("first_seen_at", nullable=False),
        _ts("last_seen_at", nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("outlets", sa.Integer(), nullable=False),
        sa.Column("canonical_url", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stories"),
        sa.UniqueConstraint("canonical_url", name="uq_stories_canonical_url"),
    )
    op.create_index("ix_stories_last_seen_at", "stories", ["last_seen_at"])
    op.create_index("ix_stories_content_hash", "stories", ["content_hash"])

    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("guid", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("canonical_url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(35), nullable=False),
        _ts("published_at", nullable=False),
        _ts("fetched_at", nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("relevant", sa.Boolean(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name="fk_items_feed_id_feeds", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name="fk_items_story_id_stories", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.UniqueConstraint("feed_id", "key", name="uq_items_feed_id_key"),
    )
    op.create_index("ix_items_canonical_url", "items", ["canonical_url"])
    op.create_index("ix_items_content_hash", "items", ["content_hash"])
    op.create_index("ix_items_published_at", "items", ["published_at"])
    op.create_index("ix_items_fetched_at", "items", ["fetched_at"])
    op.create_index("ix_items_story_id", "items", ["story_id"])

    op.create_table(
        "matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name="fk_matches_item_id_items", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_matches"),
        sa.UniqueConstraint("item_id", "rule", name="uq_matches_item_id_rule"),
    )

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("story_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_until"),
        _ts("created_at", nullable=False),
        _ts("sent_at"),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name="fk_alerts_item_id_items", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name="fk_alerts_story_id_stories", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("rule", "story_id", "channel", name="uq_alerts_rule_story_id_channel"),
    )
    op.create_index("ix_alerts_next_attempt_at", "alerts", ["next_attempt_at"])
    op.create_index("ix_alerts_dedupe_key", "alerts", ["dedupe_key"])
    op.create_index("ix_alerts_item_id", "alerts", ["item_id"])
    op.create_index("ix_alerts_story_id", "alerts", ["story_id"])

    op.create_table(
        "tombstones",
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        _ts("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name="fk_tombstones_feed_id_feeds", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("feed_id", "key", name="pk_tombstones"),
    )

    op.create_table(
        "state",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_state"),
    )


def downgrade() -> None:
    for table in ("state", "tombstones", "alerts", "matches", "items", "stories", "feeds"):
        op.drop_table(table)
