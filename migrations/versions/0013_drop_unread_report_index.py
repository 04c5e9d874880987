"""Drop ``ix_reports_url_key``: an index no query reads, kept up on every report stored

No statement looks a report up by its ``url_key``: a case is found by URL through the partial
index of open cases (``uq_cases_open_url_key``), and a report by its id, whose hash covers the
URL key already. The index on ``reports.url_key`` was still written for every report each node
stored — a random key, so a page of its own per report in a small commit — and rewritten by
retention's anonymisation. Downgrade builds it again.

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


def upgrade() -> None:
    op.drop_index("ix_reports_url_key", table_name="reports")


def downgrade() -> None:
    op.create_index("ix_reports_url_key", "reports", ["url_key"])
