"""statistics rollups: counts per day, figure, key and bucket, each item's counted facts

``stats_counts`` is the rollup a snapshot reads; ``stats_items`` keeps each item's facts as
last counted, so a later change applies only its difference; ``stats_marks`` holds the folder's
watermarks. ``item_states`` gets an index on ``updated_at``: the folder reads what changed.
Empty at first: the node's folder counts the existing rows on its first run.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_counts",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("figure", sa.String(24), nullable=False),
        sa.Column("series_key", sa.String(128), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "figure", "series_key", "bucket", name="pk_stats_counts"),
    )
    op.create_table(
        "stats_items",
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("report_id", sa.String(40), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),  # six keys of up to 128 characters
        sa.PrimaryKeyConstraint("case_id", "report_id", "idx", name="pk_stats_items"),
    )
    op.create_table(
        "stats_marks",
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_stats_marks"),
    )
    op.create_index(
        "ix_item_states_updated_at", "item_states", ["updated_at", "case_id", "report_id", "idx"]
    )


def downgrade() -> None:
    op.drop_index("ix_item_states_updated_at", table_name="item_states")
    op.drop_table("stats_marks")
    op.drop_table("stats_items")
    op.drop_table("stats_counts")
