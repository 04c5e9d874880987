"""item_states: an index in the case queues' order (holder, clock started, case)

``store/lifecycle.queue`` walks a holder's item states in clock order and aggregates only the
cases of the page it is filling; this index makes that walk a range read.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_item_states_queue_order", "item_states", ["holder", "clock_started", "case_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_item_states_queue_order", table_name="item_states")
