"""Queue a report stored here by its place, not by a second copy of its wire bytes

An outbox row carried the report's wire bytes, which the report's own row (``reports.wire``)
holds already: at an origin every report was written twice, and its copy was rewritten with
its page when the row was put into a batch and again when the receipt deleted it — three page
writes of the bytes a report's row holds once (``bench/exchange_throughput.py``: about a tenth
of node A's bytes written to storage per report).

``outbox.report_seq`` is the place (``reports.seq``) of a queued report stored here; such a row
has no ``payload`` and the sender reads the report's bytes through its place. Rows that carry
bytes no report row holds (case events, transfers) keep their payload. Existing rows keep
theirs; downgrade copies every report's bytes back into its row and drops the column.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("report_seq", sa.BigInteger(), nullable=True))
        batch.alter_column("payload", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    op.execute(
        "UPDATE outbox SET payload = (SELECT r.wire FROM reports AS r WHERE r.seq = "
        "outbox.report_seq) WHERE payload IS NULL"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("report_seq")
        batch.alter_column("payload", existing_type=sa.LargeBinary(), nullable=False)
