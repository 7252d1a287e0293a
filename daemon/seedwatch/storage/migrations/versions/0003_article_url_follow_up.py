"""items.article_url (one article per URL across feeds); follow-up alerts beside match alerts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN + CREATE UNIQUE INDEX: a batch rebuild of ``items`` on SQLite would
    # drop the full-text triggers that migration 0002 put on it.
    op.add_column("items", sa.Column("article_url", sa.Text(), nullable=True))
    op.create_index("uq_items_article_url", "items", ["article_url"], unique=True)
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alerts_rule_story_id_channel", type_="unique")
        batch.create_unique_constraint(
            "uq_alerts_rule_story_id_channel_kind", ["rule", "story_id", "channel", "kind"]
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alerts_rule_story_id_channel_kind", type_="unique")
        batch.create_unique_constraint(
            "uq_alerts_rule_story_id_channel", ["rule", "story_id", "channel"]
        )
    op.drop_index("uq_items_article_url", table_name="items")
    op.drop_column("items", "article_url")  # SQLite >= 3.35 drops a column in place
