"""Find a report's item states by its place, not through an index on every row's report id

``ix_item_states_report_id`` indexed each item state by its report's id: a hash, so each item a
holder opened took a random leaf of that index, written whole at COMMIT — on a holder's file
of 300,000 reports one of the costs left in its commits (``bench/row_layout.py``). Its one
reader finds the states of one report (``lifecycle.states_of_report``).

``item_states.report_seq`` is the place (``reports.seq``) of the item's report when that report
is stored here, as 0015 gave the routing log: its index takes a report's states near the
newest places. The id stays indexed, partially, only for rows naming a report not stored here
(another reporter's, seen through its case's events). Existing rows get their report's place;
downgrade drops the column and builds the old index again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_UNPLACED = "report_seq IS NULL"


def upgrade() -> None:
    # The old index goes first: kept through the UPDATE, every row rewritten would add to it.
    op.drop_index("ix_item_states_report_id", table_name="item_states")
    op.add_column("item_states", sa.Column("report_seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE item_states SET report_seq = "
        "(SELECT r.seq FROM reports AS r WHERE r.id = item_states.report_id)"
    )
    op.create_index("ix_item_states_report_seq", "item_states", ["report_seq"])
    op.create_index(
        "ix_item_states_unplaced_report_id",
        "item_states",
        ["report_id"],
        sqlite_where=sa.text(_UNPLACED),
        postgresql_where=sa.text(_UNPLACED),
    )


def downgrade() -> None:
    op.drop_index("ix_item_states_unplaced_report_id", table_name="item_states")
    op.drop_index("ix_item_states_report_seq", table_name="item_states")
    with op.batch_alter_table("item_states") as batch:
        batch.drop_column("report_seq")
    op.create_index("ix_item_states_report_id", "item_states", ["report_id"])
