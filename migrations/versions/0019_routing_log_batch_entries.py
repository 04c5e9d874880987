"""One ``sent`` and one ``receipted`` routing-log entry per batch of reports, not per report

A report left its origin with three routing-log entries: ``intake``, ``sent`` (in a signed
batch) and ``receipted`` (the holder's signed receipt came back). The last two name an event
that happens to a whole batch: written per report they were two of a node's eight rows per
report, each hashed, inserted and indexed by its report's place (issue 16). Entries appended
from now on name the batch once, its reports listed in the hashed detail.

``routing_log.batch_sequence`` is, like ``report_seq``, outside the entry: the sequence of the
batch such an entry names, indexed with its member only where it is set, so a report's listing
finds its batch's entries through its delivery. Entries written before keep their per-report
form (both stay readable). A batch entry already in the log (written before a downgrade, and
upgraded again) gets its sequence back from its detail.

Downgrade drops the column: batch entries stay in the chain, found by member and kind but no
longer under each report, and an older node's statistics count each as one report. The
statistics tell the two forms apart by the hashed entry (a batch's names no report) and fold
again from nothing under this version (``FOLD_VERSION`` 4), so a rollup an older replica folded
over batch entries during a rolling upgrade is rebuilt once the last one is gone.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_BATCH = "batch_sequence IS NOT NULL"


def upgrade() -> None:
    op.add_column("routing_log", sa.Column("batch_sequence", sa.BigInteger(), nullable=True))
    postgresql = op.get_bind().dialect.name == "postgresql"
    sequence = (
        "(detail::json ->> 'sequence')::bigint"
        if postgresql
        else "CAST(json_extract(detail, '$.sequence') AS INTEGER)"
    )
    op.execute(
        f"UPDATE routing_log SET batch_sequence = {sequence} "  # noqa: S608 - no value in it
        "WHERE report_id IS NULL AND kind IN ('sent', 'receipted')"
    )
    op.create_index(
        "ix_routing_log_batch",
        "routing_log",
        ["member", "batch_sequence"],
        sqlite_where=sa.text(_BATCH),
        postgresql_where=sa.text(_BATCH),
    )


def downgrade() -> None:
    op.drop_index("ix_routing_log_batch", table_name="routing_log")
    with op.batch_alter_table("routing_log") as batch:
        batch.drop_column("batch_sequence")
