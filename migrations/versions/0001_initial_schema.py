"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "announcements",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_announcements")),
    )
    op.create_table(
        "batches",
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("payload_count", sa.Integer(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("first_announcement", sa.Integer(), nullable=True),
        sa.Column("last_announcement", sa.Integer(), nullable=True),
        sa.Column("receipt_body", sa.LargeBinary(), nullable=True),
        sa.Column("receipt_signature", sa.LargeBinary(), nullable=True),
        sa.Column("receipted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("destination", "sequence", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_batches_destination_receipted", ["destination", "receipted_at"], unique=False
        )

    op.create_table(
        "case_reports",
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("reporting_member", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("new_items", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "report_id", name=op.f("pk_case_reports")),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("url_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("hosting_country", sa.String(length=2), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("first_report_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            "uq_cases_open_url_key",
            ["url_key"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "deliveries",
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("remote_case_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("receipted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "destination", name=op.f("pk_deliveries")),
    )
    op.create_table(
        "hash_index",
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("hex", sa.String(length=64), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("algorithm", "hex", name=op.f("pk_hash_index")),
    )
    op.create_table(
        "inbox",
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("payload_count", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("receipt_body", sa.LargeBinary(), nullable=False),
        sa.Column("receipt_signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sender", "sequence", name=op.f("pk_inbox")),
    )
    op.create_table(
        "item_hashes",
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("hex", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "idx", "algorithm", name=op.f("pk_item_hashes")),
    )
    with op.batch_alter_table("item_hashes", schema=None) as batch_op:
        batch_op.create_index("ix_item_hashes_algorithm_hex", ["algorithm", "hex"], unique=False)

    op.create_table(
        "items",
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("media_type", sa.String(length=8), nullable=False),
        sa.Column("age_group", sa.String(length=16), nullable=False),
        sa.Column("known_member", sa.String(length=64), nullable=True),
        sa.Column("known_case", sa.String(length=40), nullable=True),
        sa.Column("known_report", sa.String(length=40), nullable=True),
        sa.Column("known_classification", sa.String(length=16), nullable=True),
        sa.Column("known_first_seen", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("report_id", "idx", name=op.f("pk_items")),
    )
    op.create_table(
        "node_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_node_meta")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("batch_sequence", sa.BigInteger(), nullable=True),
        sa.Column("batch_position", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_destination_batch_id", ["destination", "batch_sequence", "id"], unique=False
        )

    op.create_table(
        "peers",
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("next_sequence", sa.BigInteger(), nullable=False),
        sa.Column("announce_cursor", sa.Integer(), nullable=False),
        sa.Column("last_heard_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("member", name=op.f("pk_peers")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("origin_member", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.BigInteger(), nullable=False),
        sa.Column("site_type", sa.String(length=16), nullable=False),
        sa.Column("commercial", sa.Boolean(), nullable=False),
        sa.Column("payment_methods", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("hosting_country", sa.String(length=2), nullable=True),
        sa.Column("decision_member", sa.String(length=64), nullable=False),
        sa.Column("decision_reason", sa.String(length=24), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("wire", sa.LargeBinary(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("envelope_sequence", sa.BigInteger(), nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.Column("proof", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_url_key"), ["url_key"], unique=False)

    op.create_table(
        "routing_log",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=True),
        sa.Column("member", sa.String(length=64), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("previous_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_routing_log")),
    )
    with op.batch_alter_table("routing_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routing_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_routing_log_report_id"), ["report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("routing_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_log_report_id"))
        batch_op.drop_index(batch_op.f("ix_routing_log_at"))

    op.drop_table("routing_log")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_url_key"))
        batch_op.drop_index(batch_op.f("ix_reports_case_id"))

    op.drop_table("reports")
    op.drop_table("peers")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_destination_batch_id")

    op.drop_table("outbox")
    op.drop_table("node_meta")
    op.drop_table("items")
    with op.batch_alter_table("item_hashes", schema=None) as batch_op:
        batch_op.drop_index("ix_item_hashes_algorithm_hex")

    op.drop_table("item_hashes")
    op.drop_table("inbox")
    op.drop_table("hash_index")
    op.drop_table("deliveries")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cases_open_url_key",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.drop_table("cases")
    op.drop_table("case_reports")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_destination_receipted")

    op.drop_table("batches")
    op.drop_table("announcements")
