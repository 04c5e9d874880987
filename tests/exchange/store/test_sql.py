"""store/sql.py's ``insert_rows``: every value goes through its column type, row by row, and on
SQLite many rows go in one statement — checked on a real SQLite file with a table of its own."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.exc import IntegrityError

from exchange.store.engine import open_engine
from exchange.store.schema import UtcMicros
from exchange.store.sql import OnConflict, insert_rows, update_rows

META = MetaData()
THINGS = Table(
    "things",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("at", UtcMicros),
    Column("flag", Boolean),
    Column("blob", LargeBinary),
)
T = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _stored(tmp_path: Path, rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    engine = open_engine(f"sqlite:///{tmp_path / 'things.db'}")
    META.create_all(engine)
    with engine.begin() as conn:
        insert_rows(conn, THINGS, rows)
    with engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT id, name, at, flag, blob FROM things ORDER BY id")
        out = [tuple(r) for r in raw]
        # Read back through the types, too: the stored micros are the times given.
        typed = conn.execute(select(THINGS.c.at).order_by(THINGS.c.id)).scalars().all()
    engine.dispose()
    assert typed == [r.get("at") for r in rows]
    return out


def test_each_value_is_converted_by_its_column_type_and_none_stays_null(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"id": 1, "name": "a", "at": T, "flag": True, "blob": b"\x00\x01"},
        {"id": 2, "name": None, "at": None, "flag": None, "blob": None},
        {"id": 3, "name": "c", "at": T + timedelta(microseconds=7), "flag": False, "blob": b""},
    ]
    micros = int(T.timestamp()) * 1_000_000
    assert _stored(tmp_path, rows) == [
        (1, "a", micros, 1, b"\x00\x01"),
        (2, None, None, None, None),
        (3, "c", micros + 7, 0, b""),
    ]


def test_rows_of_one_column_are_converted_too(tmp_path: Path) -> None:
    micros = int(T.timestamp()) * 1_000_000
    assert _stored(tmp_path, [{"at": T}, {"at": None}]) == [
        (1, None, micros, None, None),
        (2, None, None, None, None),
    ]


# -- many rows per statement on SQLite ----------------------------------------------------------


def _inserts(conn: Connection, verb: str = "INSERT") -> list[int]:
    """The rows of every INSERT (or ``verb``) SQLite runs on ``conn`` from now on, one entry
    per statement run (an ``executemany`` would show as one per row): SQLite's own trace, which
    sees what reaches it by any road, SQLAlchemy's or the driver's cursor."""
    rows: list[int] = []

    def record(sql: str) -> None:
        if sql.startswith(verb):  # the text with its values bound: "(0, 'x'), (1, 'x')"
            rows.append(sql.count("), (") + 1)

    driver = conn.connection.dbapi_connection
    assert isinstance(driver, sqlite3.Connection)
    driver.set_trace_callback(record)
    return rows


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 17, 255, 256, 257, 500, 1001])
def test_any_number_of_rows_is_inserted_once_each_in_order(tmp_path: Path, n: int) -> None:
    rows: list[dict[str, object]] = [
        {
            "id": i,
            "name": f"n{i}",
            "at": T + timedelta(seconds=i),
            "flag": i % 2 == 0,
            "blob": bytes([i % 256]),
        }
        for i in range(1, n + 1)
    ]
    micros = int(T.timestamp()) * 1_000_000
    assert _stored(tmp_path, rows) == [
        (i, f"n{i}", micros + i * 1_000_000, int(i % 2 == 0), bytes([i % 256]))
        for i in range(1, n + 1)
    ]


def test_sqlite_takes_hundreds_of_rows_in_a_few_statements_not_one_step_per_row(
    tmp_path: Path,
) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'things.db'}")
    META.create_all(engine)
    with engine.begin() as conn:
        seen = _inserts(conn)
        insert_rows(conn, THINGS, [{"id": i, "name": "x"} for i in range(500)])
    engine.dispose()
    # 500 = 256 + 3 x 64 + 3 x 16 + 4: eight statements, none an executemany.
    assert seen == [256, 64, 64, 64, 16, 16, 16, 4]


def test_a_statement_never_passes_the_connections_parameter_limit(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'things.db'}")
    META.create_all(engine)
    with engine.begin() as conn:
        seen = _inserts(conn)
        conn.connection.dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # type: ignore[union-attr]
        insert_rows(conn, THINGS, [{"id": i, "name": "x"} for i in range(70)])
        count = conn.exec_driver_sql("SELECT count(*) FROM things").scalar_one()
    engine.dispose()
    assert count == 70
    # Two columns: at most 50 rows per statement, so 16-row ones (and 4s and 1s) only.
    assert seen == [16, 16, 16, 16, 4, 1, 1]


def test_duplicates_within_one_call_keep_their_meaning(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'things.db'}")
    META.create_all(engine)
    rows: list[dict[str, object]] = [{"id": i % 7, "name": f"v{i}"} for i in range(20)]
    with engine.begin() as conn:
        insert_rows(conn, THINGS, rows, ignore=True)  # the first of each id stays
        first = dict(conn.exec_driver_sql("SELECT id, name FROM things").all())
        conn.exec_driver_sql("DELETE FROM things")
        newest = OnConflict(key=("id",), set=(("name", "excluded.name"),))
        insert_rows(conn, THINGS, rows, conflict=newest)  # each later one overwrites
        last = dict(conn.exec_driver_sql("SELECT id, name FROM things").all())
        conn.exec_driver_sql("DELETE FROM things")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, THINGS, rows)  # a plain INSERT refuses a duplicate, as before
    engine.dispose()
    assert first == {i: f"v{i}" for i in range(7)}
    assert last == {i: f"v{max(j for j in range(20) if j % 7 == i)}" for i in range(7)}


# -- update_rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 300])
def test_update_rows_gives_each_keyed_row_its_values_and_the_fixed_ones(
    db_url: str, n: int
) -> None:
    """On both backends: each row named by its key gets its own value and the fixed one; a
    row not named keeps its values; SQLite takes the rows in a few statements."""
    engine = open_engine(db_url)
    META.create_all(engine)
    seen: list[int] = []
    try:
        with engine.begin() as conn:
            insert_rows(conn, THINGS, [{"id": i, "name": "old"} for i in range(1, n + 2)])
        named = list(range(n, 0, -1))  # not in key order: each value follows its key
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                seen = _inserts(conn, "UPDATE")
            update_rows(
                conn,
                THINGS,
                "id",
                ("name",),
                [(i, f"new{i}") for i in named],
                fixed=(("flag", True),),
            )
        with engine.connect() as conn:
            rows = conn.execute(
                select(THINGS.c.id, THINGS.c.name, THINGS.c.flag).order_by(THINGS.c.id)
            )
            stored = [tuple(r) for r in rows]
    finally:
        META.drop_all(engine)
        engine.dispose()
    assert stored == [*((i, f"new{i}", True) for i in range(1, n + 1)), (n + 1, "old", None)]
    if engine.dialect.name == "sqlite":
        assert len(seen) == {1: 1, 5: 2, 300: 6}[n]  # 300 = 256 + 2 x 16 + 3 x 4
