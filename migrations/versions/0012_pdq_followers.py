"""PDQ change feed followers: ``pdq_changes`` trimmed while the node runs

``pdq_followers``: each process following ``pdq_changes`` (exchange/pdq/matcher.py) — a node,
a web view, each replica of either — with the change it has applied up to and when it last said
so. The feed is trimmed below the lowest cursor among the followers heard from within their
lease, so it holds only changes some live follower has still to apply.

``item_hashes.quality``: the item's own PDQ quality as its report gave it (NULL: not given, an
older report, or another algorithm), so a case view decides whether to near-match an item as
intake did, not by another member's sighting of the same hash.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pdq_followers",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("item_hashes") as batch:
        batch.add_column(sa.Column("quality", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("item_hashes") as batch:
        batch.drop_column("quality")
    op.drop_table("pdq_followers")
