"""Key ``items``, ``item_hashes`` and ``deliveries`` by the report's place in storage order

A report id is a hash, so a child row keyed by it went to a random leaf of its table's primary
key, and every COMMIT wrote each of those leaves whole: on a node already holding 300,000
reports, a page per report per table. ``reports.seq`` numbers the reports in the order they are
stored (existing ones: SQLite's row order, PostgreSQL's ``stored_at``), and the three tables are
keyed by it instead, so a batch's rows append at the right edge of their keys (issue 16's layout
step; ``bench/row_layout.py`` priced it as its ``surrogate`` what-if).

Each table is rebuilt: a copy keyed by the place, the old table dropped, the copy renamed.
Downgrade rebuilds them keyed by the id again and drops the column.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ITEM_COLUMNS = (
    ("idx", sa.Integer(), False),
    ("classification", sa.String(16), False),
    ("media_type", sa.String(8), False),
    ("age_group", sa.String(16), False),
    ("known_member", sa.String(64), True),
    ("known_case", sa.String(40), True),
    ("known_report", sa.String(40), True),
    ("known_classification", sa.String(16), True),
    ("known_first_seen", sa.BigInteger(), True),
)
_HASH_COLUMNS = (
    ("idx", sa.Integer(), False),
    ("algorithm", sa.String(8), False),
    ("hex", sa.String(64), False),
    ("quality", sa.Integer(), True),
)
_DELIVERY_COLUMNS = (
    ("destination", sa.String(64), False),
    ("sequence", sa.BigInteger(), False),
    ("outcome", sa.String(10), False),
    ("remote_case_id", sa.String(40), True),
    ("reason", sa.Text(), True),
    ("receipted_at", sa.BigInteger(), False),
)
# Per table: its columns but the report's, the rest of its key, and its other indexes.
_TABLES = (
    ("items", _ITEM_COLUMNS, ("idx",), ()),
    (
        "item_hashes",
        _HASH_COLUMNS,
        ("idx", "algorithm"),
        (("ix_item_hashes_algorithm_hex", ["algorithm", "hex"]),),
    ),
    (
        "deliveries",
        _DELIVERY_COLUMNS,
        ("destination",),
        (("ix_deliveries_remote_case_id", ["remote_case_id"]),),
    ),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.add_column("reports", sa.Column("seq", sa.BigInteger(), nullable=True))
    if postgresql:
        op.execute(
            "UPDATE reports SET seq = o.n FROM (SELECT id, row_number() OVER "
            "(ORDER BY stored_at, id) AS n FROM reports) AS o WHERE reports.id = o.id"
        )
    else:
        op.execute("UPDATE reports SET seq = rowid")
    with op.batch_alter_table("reports") as batch:  # SQLite: a copy, to make it NOT NULL
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
    op.create_index("uq_reports_seq", "reports", ["seq"], unique=True)
    for table, columns, key, indexes in _TABLES:
        _rebuild(table, columns, key, indexes, by_place=True)


def downgrade() -> None:
    for table, columns, key, indexes in _TABLES:
        _rebuild(table, columns, key, indexes, by_place=False)
    op.drop_index("uq_reports_seq", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("seq")


def _rebuild(
    table: str,
    columns: Sequence[tuple[str, sa.types.TypeEngine[Any], bool]],
    key: Sequence[str],
    indexes: Sequence[tuple[str, list[str]]],
    *,
    by_place: bool,
) -> None:
    """``table`` again, its report named by place (``by_place``) or by id, rows copied over,
    its ``indexes`` built again (an index's name, too, is one per PostgreSQL schema)."""
    for name, _ in indexes:
        op.drop_index(name, table_name=table)
    report, other = ("report_seq", "report_id") if by_place else ("report_id", "report_seq")
    report_type: sa.types.TypeEngine[Any] = sa.BigInteger() if by_place else sa.String(40)
    copied = [name for name, _, _ in columns]
    new = f"{table}_rebuilt"
    # A PostgreSQL key's name is an index name, one per schema: the copy's key takes its own
    # until the old table is gone. SQLite's are the table's alone.
    postgresql = op.get_bind().dialect.name == "postgresql"
    key_name = f"pk_{new}" if postgresql else f"pk_{table}"
    op.create_table(
        new,
        sa.Column(report, report_type, nullable=False),
        *(sa.Column(name, kind, nullable=null) for name, kind, null in columns),
        sa.PrimaryKeyConstraint(report, *key, name=key_name),
    )
    value, match = ("r.seq", f"r.id = t.{other}") if by_place else ("r.id", f"r.seq = t.{other}")
    op.execute(  # every name is this module's own, none comes from outside
        f"INSERT INTO {new} ({report}, {', '.join(copied)}) "  # noqa: S608
        f"SELECT {value}, {', '.join(f't.{c}' for c in copied)} "
        f"FROM {table} AS t JOIN reports AS r ON {match}"
    )
    op.drop_table(table)
    op.rename_table(new, table)
    if postgresql:
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {key_name} TO pk_{table}")
    for name, indexed in indexes:
        op.create_index(name, table, indexed)
