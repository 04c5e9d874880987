"""case lifecycle: events, item states, partner feedback, withdrawal, consented region

``case_events`` holds every lifecycle event made or applied here with its signed bytes;
``item_states`` each item's fold with its takedown clock; ``partner_feedback`` partners' own
notes on their cases. Outbox rows get a ``kind`` (report or event), cases a closing and an
anonymisation time, reports the origin's withdrawal and the reporter's consented region.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MEMBER = sa.String(64)
REPORT_ID = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "case_events",
        sa.Column("cursor", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(34), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("member", MEMBER, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("report_id", REPORT_ID, nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sender", MEMBER, nullable=True),
        sa.Column("envelope_sequence", sa.BigInteger(), nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.Column("proof", sa.LargeBinary(), nullable=True),
        sa.Column("stored_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cursor", name="pk_case_events"),
    )
    op.create_index("uq_case_events_id", "case_events", ["id"], unique=True)
    op.create_index("ix_case_events_case_id_cursor", "case_events", ["case_id", "cursor"])
    op.create_table(
        "item_states",
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("report_id", REPORT_ID, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("holder", MEMBER, nullable=False),
        sa.Column("origin_member", MEMBER, nullable=False),
        sa.Column("origin_classification", sa.String(16), nullable=False),
        sa.Column("orphaned", sa.Boolean(), nullable=False),
        sa.Column("stage", sa.String(12), nullable=False),
        sa.Column("classification", sa.String(16), nullable=True),
        sa.Column("age_group", sa.String(16), nullable=True),
        sa.Column("gender", sa.String(16), nullable=True),
        sa.Column("virtual", sa.Boolean(), nullable=True),
        sa.Column("user_generated", sa.Boolean(), nullable=True),
        sa.Column("child_modelling", sa.Boolean(), nullable=True),
        sa.Column("analyst_ref", sa.String(128), nullable=True),
        sa.Column("disputed", sa.Boolean(), nullable=False),
        sa.Column("actions", sa.Integer(), nullable=False),
        sa.Column("last_action", sa.String(16), nullable=True),
        sa.Column("clock_started", sa.BigInteger(), nullable=True),
        sa.Column("assessed_at", sa.BigInteger(), nullable=True),
        sa.Column("lea_at", sa.BigInteger(), nullable=True),
        sa.Column("lea_partner", sa.String(64), nullable=True),
        sa.Column("host_notice_at", sa.BigInteger(), nullable=True),
        sa.Column("host_recipient", sa.String(128), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.Column("moved_to_country", sa.String(2), nullable=True),
        sa.Column("moved_to_member", MEMBER, nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "report_id", "idx", name="pk_item_states"),
    )
    op.create_index("ix_item_states_holder_stage", "item_states", ["holder", "stage"])
    op.create_index("ix_item_states_report_id", "item_states", ["report_id"])
    op.create_table(
        "partner_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_partner_feedback"),
    )
    op.create_index("ix_partner_feedback_case_id", "partner_feedback", ["case_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), server_default="report", nullable=False))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("closed_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("anonymised_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("reporter_region", sa.String(6), nullable=True))
        batch.add_column(sa.Column("withdrawn_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("withdrawal_reason", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("withdrawal_reason")
        batch.drop_column("withdrawn_at")
        batch.drop_column("reporter_region")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("anonymised_at")
        batch.drop_column("closed_at")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("kind")
    op.drop_table("partner_feedback")
    op.drop_table("item_states")
    op.drop_table("case_events")
