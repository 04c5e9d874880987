"""Drop ``ix_reports_url_key`` and ``ix_reports_case_id``: indexes no query reads

Both were kept up for every report a node stored. No statement looks a report up by its
``url_key`` (a case is found by URL through the partial index of open cases,
``uq_cases_open_url_key``; a report by its id, whose hash covers the URL key) or by its
``case_id`` (a case's reports are found through ``case_reports``). Each entry has a random key,
so in a small commit each costs a page of its own; retention's anonymisation rewrote the first.
Downgrade builds them again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_UNREAD = (("ix_reports_url_key", "url_key"), ("ix_reports_case_id", "case_id"))


def upgrade() -> None:
    for name, _ in _UNREAD:
        op.drop_index(name, table_name="reports")


def downgrade() -> None:
    for name, column in _UNREAD:
        op.create_index(name, "reports", [column])
