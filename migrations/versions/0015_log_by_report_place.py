"""Find a report's routing-log entries by its place, not through an index on every entry's id

``ix_routing_log_report_id`` indexed each entry's report id: a hash, so each of a report's
entries (intake, sent, receipted, …) took a random leaf of that index, and every COMMIT wrote
each of those leaves whole. On a node holding 300,000 reports it was the largest cost left in
the origin's commits (``bench/row_layout.py``'s ``no-lookup-indexes`` what-if: +32% alone).

``routing_log.report_seq`` is the place (``reports.seq``) of the report an entry names, when that
report is stored here; the entry's hash does not cover it (it is a local index, not part of the
entry). Its index (``report_seq``, ``idx``) takes a report's entries near the newest places (an
entry is mostly written soon after its report is stored), not at random. The id stays
indexed, partially, only for entries naming a report not stored here (a payload refused in a
receipt). Existing entries get their report's place; downgrade drops the column and builds the
old index again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_UNPLACED = "report_seq IS NULL AND report_id IS NOT NULL"


def upgrade() -> None:
    # The old index goes first: kept through the UPDATE, every row rewritten would add to it.
    op.drop_index("ix_routing_log_report_id", table_name="routing_log")
    op.add_column("routing_log", sa.Column("report_seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE routing_log SET report_seq = "
        "(SELECT r.seq FROM reports AS r WHERE r.id = routing_log.report_id) "
        "WHERE report_id IS NOT NULL"
    )
    op.create_index("ix_routing_log_report_seq", "routing_log", ["report_seq", "idx"])
    op.create_index(
        "ix_routing_log_unplaced_report_id",
        "routing_log",
        ["report_id", "idx"],
        sqlite_where=sa.text(_UNPLACED),
        postgresql_where=sa.text(_UNPLACED),
    )


def downgrade() -> None:
    op.drop_index("ix_routing_log_unplaced_report_id", table_name="routing_log")
    op.drop_index("ix_routing_log_report_seq", table_name="routing_log")
    with op.batch_alter_table("routing_log") as batch:
        batch.drop_column("report_seq")
    op.create_index("ix_routing_log_report_id", "routing_log", ["report_id"])
