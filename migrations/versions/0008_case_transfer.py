"""case transfer: a move re-assigns a case to the new country's member, linked to the old one

``cases`` get the member and case a moved case came from; ``case_transfers`` holds each
transfer sent from here (its outcome and the new holder's case, from the receipt) or received
here (the payload as received, with the envelope that carried it and this node's own GeoIP view
of the old holder's trace).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MEMBER = sa.String(64)
CASE_ID = sa.String(40)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("moved_from_member", MEMBER, nullable=True))
        batch.add_column(sa.Column("moved_from_case", CASE_ID, nullable=True))
    op.create_table(
        "case_transfers",
        sa.Column("moved_event", sa.String(34), nullable=False),
        sa.Column("report_id", sa.String(40), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("from_member", MEMBER, nullable=False),
        sa.Column("from_case", CASE_ID, nullable=False),
        sa.Column("to_member", MEMBER, nullable=False),
        sa.Column("to_case", CASE_ID, nullable=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("moved_at", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("sender", MEMBER, nullable=True),
        sa.Column("envelope_sequence", sa.BigInteger(), nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.Column("proof", sa.LargeBinary(), nullable=True),
        sa.Column("geo_country", sa.String(2), nullable=True),
        sa.Column("geo_agrees", sa.Boolean(), nullable=True),
        sa.Column("stored_at", sa.BigInteger(), nullable=False),
        sa.Column("receipted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("moved_event", "report_id", name="pk_case_transfers"),
    )
    op.create_index("ix_case_transfers_report_id", "case_transfers", ["report_id"])
    op.create_index("ix_case_transfers_from_case", "case_transfers", ["from_case"])
    op.create_index("ix_case_transfers_to_case", "case_transfers", ["to_case"])


def downgrade() -> None:
    op.drop_index("ix_case_transfers_to_case", table_name="case_transfers")
    op.drop_index("ix_case_transfers_from_case", table_name="case_transfers")
    op.drop_index("ix_case_transfers_report_id", table_name="case_transfers")
    op.drop_table("case_transfers")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("moved_from_case")
        batch.drop_column("moved_from_member")
