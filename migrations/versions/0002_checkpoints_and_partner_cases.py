"""checkpoints and partner cases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "partner_cases",
        sa.Column("cursor", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("assigned_at", sa.BigInteger(), nullable=False),
        sa.Column("visible_after", sa.BigInteger(), nullable=True),
        sa.Column("pulls", sa.Integer(), nullable=False),
        sa.Column("acked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("cursor", name=op.f("pk_partner_cases")),
    )
    with op.batch_alter_table("partner_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partner_cases_partner_acked_cursor", ["partner", "acked_at", "cursor"], unique=False
        )
        batch_op.create_index("uq_partner_cases_partner_case", ["partner", "case_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("partner_cases", schema=None) as batch_op:
        batch_op.drop_index("uq_partner_cases_partner_case")
        batch_op.drop_index("ix_partner_cases_partner_acked_cursor")

    op.drop_table("partner_cases")
    op.drop_table("checkpoints")
