"""Small SQL helpers shared by the node's write paths: chunked IN lookups, dialect upserts, and
``insert_rows`` — the hottest inserts as prepared tuples straight to the driver.

``insert_rows`` exists because a Core ``executemany`` spends most of its time per row in Python
(parameter dicts built and processed value by value) — at intake and receipt that was a fifth of
a node's CPU. It keeps Core's meaning: the statement text is built once per table and column set
from the table itself, and every value still goes through its column type's bind processor (our
``UtcMicros`` times, booleans); only binary values, which both drivers take as ``bytes``, skip it.

On SQLite it inserts many rows per statement (``VALUES (…), (…), …``), not in one
``executemany``: that steps the statement once per row, and the driver gives up the GIL and
takes it back around every step — each time behind whichever other thread took it meanwhile.
Alone, 500 rows of ten columns took 3-4 ms either way; beside one busy Python thread they took
22-118 ms as an ``executemany`` and 15-21 ms in statements of up to 256 rows (two runs of a
micro-benchmark on a busy 2-core machine; the writer shares its process with intake's and
gRPC's threads). The row counts come from a fixed ladder (``LADDER``), so a table has a few
statement texts, each prepared once and kept by the driver's statement cache. psycopg
pipelines an ``executemany`` to PostgreSQL already: there it stays.

``update_rows`` does the same for an UPDATE that gives each row values of its own (a batch's
positions): ``UPDATE … FROM (VALUES (…), (…), …)`` in statements of the same ladder, on both
databases, where a Core ``executemany`` processed a parameter dict per row.

Both hand their statements to the driver's own cursor (``driver_execute``), inside the
transaction the Connection holds: SQLAlchemy's ``exec_driver_sql`` still built an execution
context and a result per statement — 5.4 µs against 1.1 µs for a small insert, on a writer that
runs dozens of statements per group. A driver error comes back as SQLAlchemy's own exception
(``DBAPIError.instance``: ``IntegrityError`` for a constraint), so callers see one error family.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, LargeBinary, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

# SQLite's default limit of host parameters is 32,766; stay far below on every backend.
IN_CHUNK = 2000

# Rows per INSERT statement on SQLite, largest first (see the module docstring); a size whose
# parameters would pass the connection's limit is skipped.
LADDER = (256, 64, 16, 4, 1)
# The most parameters one statement may bind on PostgreSQL (its protocol's 16-bit count).
POSTGRESQL_PARAMETERS = 65535


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


_Converter = Any  # a column type's bind processor: value -> driver value


@dataclass(frozen=True, slots=True)
class OnConflict:
    """An upsert's conflict clause, in the SQL SQLite and PostgreSQL share: on a conflict on
    ``key``, set each column to its expression (over ``excluded.<column>`` and the stored row,
    ``<table>.<column>``), only ``where`` that holds (if given)."""

    key: tuple[str, ...]
    set: tuple[tuple[str, str], ...]
    where: str = ""

    def sql(self) -> str:
        assignments = ", ".join(f"{column} = {expression}" for column, expression in self.set)
        clause = f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {assignments}"
        return clause + (f" WHERE {self.where}" if self.where else "")


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore: bool = False,
    conflict: OnConflict | None = None,
) -> None:
    """INSERT ``rows`` (all with the same keys) as tuples straight to the driver — on SQLite in
    statements of many rows each, on PostgreSQL in one ``executemany`` (see the module
    docstring); ``ignore``: ON CONFLICT DO NOTHING; ``conflict``: an upsert (both alike)."""
    if not rows:
        return
    keys = tuple(rows[0])
    suffix = " ON CONFLICT DO NOTHING" if ignore else conflict.sql() if conflict else ""
    prepared = _prepared(conn.dialect, table, keys, suffix)
    if prepared is None:  # a column left out has a Python-side default: Core knows how to fill it
        if conflict is not None:
            raise TypeError(f"insert_rows: an upsert on {table.name} must give every column")
        if ignore:
            insert_ignore(conn, table, rows)
        else:
            conn.execute(table.insert(), list(rows))
        return
    values = _tuples(rows, keys, prepared.converters)
    if conn.dialect.name != "sqlite":
        driver_execute(conn, prepared.statement(1), values, many=True)
        return
    _by_ladder(conn, prepared, values, _driver_limit(conn))


def update_rows(
    conn: Connection,
    table: Table,
    key: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    fixed: tuple[tuple[str, Any], ...] = (),
) -> None:
    """Give each row of ``table`` whose ``key`` is a row's first value the row's other values
    as ``columns``, and every one of them the ``fixed`` (column, value) pairs: one
    ``UPDATE … FROM (VALUES …)`` per part of the ladder, where a Core ``executemany`` built and
    processed a parameter dict per row (most of the writer's time in ``outbox.assign``). The
    values go to the driver as they are: give what it takes (ints, text, bytes)."""
    if not rows:
        return
    statement = _update(conn.dialect, table, key, columns, tuple(c for c, _ in fixed))
    limit = _driver_limit(conn) if conn.dialect.name == "sqlite" else POSTGRESQL_PARAMETERS
    _by_ladder(conn, statement, rows, limit, tuple(v for _, v in fixed))


def _by_ladder(
    conn: Connection,
    statement: _ManyRows,
    rows: Sequence[tuple[Any, ...]],
    limit: int,
    head: tuple[Any, ...] = (),
) -> None:
    """``rows`` in statements of the ladder's sizes, largest first, each binding ``head`` and
    then its rows' values; a size whose parameters would pass ``limit`` is skipped."""
    width = len(rows[0])
    done = 0
    for size in LADDER:
        if size * width + len(head) > limit and size > 1:
            continue
        while len(rows) - done >= size:
            part = rows[done : done + size]
            driver_execute(conn, statement.statement(size), (*head, *itertools.chain(*part)))
            done += size


def driver_execute(
    conn: Connection,
    statement: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
    *,
    many: bool = False,
) -> Any:
    """Run ``statement`` on the driver's own cursor, in ``conn``'s transaction; the cursor, for
    its rows. A driver error is raised as SQLAlchemy's (see the module docstring); listeners of
    ``before_cursor_execute`` hear of it as of Core's own (with no execution context)."""
    driver = conn.connection.dbapi_connection
    assert driver is not None
    cursor: Any = driver.cursor()
    if conn.dispatch.before_cursor_execute:  # empty: a truth test, nothing called
        conn.dispatch.before_cursor_execute(conn, cursor, statement, params, None, many)
    try:
        if many:
            cursor.executemany(statement, params)
        else:
            cursor.execute(statement, params)
    except conn.dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            statement, params, error, conn.dialect.loaded_dbapi.Error
        ) from error
    return cursor


def _driver_limit(conn: Connection) -> int:
    """The most host parameters one statement may have on this SQLite connection."""
    driver = conn.connection.dbapi_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _tuples(
    rows: Sequence[dict[str, Any]], keys: tuple[str, ...], converters: tuple[_Converter, ...]
) -> list[tuple[Any, ...]]:
    """The rows as the driver takes them, column by column: ``itemgetter`` reads the values in
    C, and only the columns with a converter (times, booleans) are touched in Python — a
    third less than a tuple built per row cell by cell, on the writer's every insert."""
    # itemgetter of one key gives the value itself, not a 1-tuple
    row = itemgetter(*keys) if len(keys) > 1 else lambda r: (r[keys[0]],)
    columns = list(zip(*map(row, rows), strict=True))
    for i, f in enumerate(converters):
        if f is not None:
            columns[i] = tuple([None if v is None else f(v) for v in columns[i]])
    return list(zip(*columns, strict=True))


@dataclass(frozen=True)
class _ManyRows:
    """A statement over a VALUES list (an INSERT, or ``update_rows``'s UPDATE): its text for
    any number of rows, and each value's converter (None: as is)."""

    head: str  # INSERT INTO table (columns) VALUES / UPDATE … FROM (VALUES
    row: str  # (?, ?, …)
    suffix: str  # the conflict clause, if any / ) AS v WHERE …
    converters: tuple[_Converter | None, ...] = ()

    @functools.cache  # noqa: B019 - a few sizes per statement, statements cached for ever
    def statement(self, rows: int) -> str:
        return self.head + ", ".join([self.row] * rows) + self.suffix


@functools.cache
def _prepared(
    dialect: Dialect, table: Table, keys: tuple[str, ...], suffix: str
) -> _ManyRows | None:
    """The INSERT of ``keys`` of ``table`` (None: a column left out has a Python-side default)."""
    if any(c.default is not None for c in table.columns if c.name not in keys):
        return None
    columns = [table.c[k] for k in keys]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    # Identifiers come from the schema, quoted by the dialect; every value is bound.
    head = (
        f"INSERT INTO {preparer.format_table(table)} "  # noqa: S608
        f"({', '.join(preparer.format_column(c) for c in columns)}) VALUES "
    )
    converters = tuple(
        None if isinstance(c.type, LargeBinary) else c.type.bind_processor(dialect) for c in columns
    )
    return _ManyRows(head, f"({', '.join(mark for _ in columns)})", suffix, converters)


@functools.cache
def _update(
    dialect: Dialect, table: Table, key: str, columns: tuple[str, ...], fixed: tuple[str, ...]
) -> _ManyRows:
    """``update_rows``'s statement: the ``fixed`` columns bound first, then a VALUES list of
    (key, columns…) per row."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    q = dialect.identifier_preparer
    name = q.format_table(table)
    sets = [f"{q.format_column(table.c[c])} = {mark}" for c in fixed]
    # A VALUES list's columns are column1, column2, … on SQLite and PostgreSQL alike.
    sets += [f"{q.format_column(table.c[c])} = v.column{i + 2}" for i, c in enumerate(columns)]
    # Identifiers come from the schema, quoted by the dialect; every value is bound.
    return _ManyRows(
        f"UPDATE {name} SET {', '.join(sets)} FROM (VALUES ",  # noqa: S608
        f"({', '.join(mark for _ in range(1 + len(columns)))})",
        f") AS v WHERE {name}.{q.format_column(table.c[key])} = v.column1",
    )
