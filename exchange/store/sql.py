"""Small SQL helpers shared by the node's write paths: chunked IN lookups and dialect upserts."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

# SQLite's default limit of host parameters is 32,766; stay far below on every backend.
IN_CHUNK = 2000


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, on SQLite and PostgreSQL."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """Insert rows; on a key conflict overwrite every column but ``key`` and ``keep``."""
    if not rows:
        return
    conn.execute(_upsert(conn.dialect.name, table, tuple(key), tuple(keep)), list(rows))


@functools.cache
def _upsert(dialect_name: str, table: Table, key: tuple[str, ...], keep: tuple[str, ...]) -> Any:
    # Built once: building it (a proxy column per ``excluded`` column) cost more than running it.
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    stmt = dialect.insert(table)
    fixed = {*key, *keep}
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in fixed}
    return stmt.on_conflict_do_update(index_elements=list(key), set_=update)


def upsert_earliest(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, key: Sequence[str], time: str
) -> None:
    """Insert rows; on a key conflict keep whichever row has the earlier ``time`` column."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_=update,
        where=stmt.excluded[time] < table.c[time],
    )
    conn.execute(stmt, list(rows))
