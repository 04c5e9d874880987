"""Index only held content's item hashes by hash

``ix_item_hashes_algorithm_hex`` indexed every item hash a node stores, by its hash: a random
key, so each took a leaf of its own, written whole at COMMIT. Its one reader,
``reports.carried_elsewhere`` (is this content still carried by a report in a case held here?),
reads only hashes of reports in a case held here — never those of the reports a node sends on
to another member, about half of a node's and every one at a member that holds few cases.

``item_hashes.held`` copies "the report is in a case held here" (``reports.case_id`` set) onto
each hash row, and the partial index ``ix_item_hashes_held_algorithm_hex`` covers those rows
alone (``bench/row_layout.py``'s ``no-lookup-indexes`` what-if priced dropping the index whole:
+30% for the origin's storage alone). Existing rows are marked from their report; downgrade
drops the column and builds the old index again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# As exchange/store/schema.py's HELD_SQLITE and HELD_POSTGRESQL (a migration keeps its own copy).
_HELD_SQLITE, _HELD_POSTGRESQL = "held = 1", "held"


def upgrade() -> None:
    # The old index goes first: kept through the UPDATE, every row rewritten would add to it.
    op.drop_index("ix_item_hashes_algorithm_hex", table_name="item_hashes")
    op.add_column(
        "item_hashes",
        sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(
        sa.text(
            "UPDATE item_hashes SET held = :held WHERE report_seq IN "
            "(SELECT seq FROM reports WHERE case_id IS NOT NULL)"
        ).bindparams(held=True)
    )
    op.create_index(
        "ix_item_hashes_held_algorithm_hex",
        "item_hashes",
        ["algorithm", "hex"],
        sqlite_where=sa.text(_HELD_SQLITE),
        postgresql_where=sa.text(_HELD_POSTGRESQL),
    )


def downgrade() -> None:
    op.drop_index("ix_item_hashes_held_algorithm_hex", table_name="item_hashes")
    with op.batch_alter_table("item_hashes") as batch:
        batch.drop_column("held")
    op.create_index("ix_item_hashes_algorithm_hex", "item_hashes", ["algorithm", "hex"])
