"""PDQ near-duplicates: each sighting's quality, and the change log the PDQ index follows

``hash_index.quality``: a PDQ sighting's quality (0-100), NULL when not given (an older sender,
or another algorithm). ``pdq_changes``: every PDQ sighting added, updated or retracted, in
order — the node's in-memory PDQ index (exchange/pdq/matcher.py) applies the changes after its
cursor, so it follows every writer of ``hash_index`` without being called by them, and its file
records the cursor it is current to.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hash_index") as batch:
        batch.add_column(sa.Column("quality", sa.Integer(), nullable=True))
    op.create_table(
        "pdq_changes",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("hex", sa.String(64), nullable=False),
        sa.Column("retracted", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pdq_changes")
    with op.batch_alter_table("hash_index") as batch:
        batch.drop_column("quality")
