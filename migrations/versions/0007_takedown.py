"""takedown automation: watches, checks, notices, holds

``takedown_watches`` holds each watched case's schedule, last check, hoster and notice count;
``takedown_checks`` every re-check's result (the evidence, never content); ``takedown_notices``
and ``takedown_notice_cases`` the notices sent to abuse contacts and the cases each named;
``takedown_holds`` the audited holds on notices.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CASE_ID = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "takedown_watches",
        sa.Column("case_id", CASE_ID, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("next_check_at", sa.BigInteger(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("last_check_at", sa.BigInteger(), nullable=True),
        sa.Column("last_outcome", sa.String(12), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("not_online", sa.Integer(), nullable=False),
        sa.Column("online_since", sa.BigInteger(), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("organisation", sa.String(128), nullable=True),
        sa.Column("notices", sa.Integer(), nullable=False),
        sa.Column("first_notice_at", sa.BigInteger(), nullable=True),
        sa.Column("last_notice_at", sa.BigInteger(), nullable=True),
        sa.Column("no_contact", sa.Boolean(), nullable=False),
        sa.Column("hold_until", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_takedown_watches"),
    )
    op.create_index(
        "ix_takedown_watches_state_next", "takedown_watches", ["state", "next_check_at"]
    )
    op.create_table(
        "takedown_checks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", CASE_ID, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("organisation", sa.String(128), nullable=False),
        sa.Column("redirects", sa.Integer(), nullable=False),
        sa.Column("elapsed_ms", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_takedown_checks"),
    )
    op.create_index("ix_takedown_checks_case_id_at", "takedown_checks", ["case_id", "at"])
    op.create_table(
        "takedown_notices",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("contact_key", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_takedown_notices"),
    )
    op.create_index(
        "ix_takedown_notices_status_next", "takedown_notices", ["status", "next_attempt_at"]
    )
    op.create_table(
        "takedown_notice_cases",
        sa.Column("notice_id", sa.String(40), nullable=False),
        sa.Column("case_id", CASE_ID, nullable=False),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("organisation", sa.String(128), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("notice_id", "case_id", name="pk_takedown_notice_cases"),
    )
    op.create_index("ix_takedown_notice_cases_case_id", "takedown_notice_cases", ["case_id"])
    op.create_table(
        "takedown_holds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", CASE_ID, nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("released_at", sa.BigInteger(), nullable=True),
        sa.Column("released_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_takedown_holds"),
    )
    op.create_index("ix_takedown_holds_case_id", "takedown_holds", ["case_id"])


def downgrade() -> None:
    for table in (
        "takedown_holds",
        "takedown_notice_cases",
        "takedown_notices",
        "takedown_checks",
        "takedown_watches",
    ):
        op.drop_table(table)
