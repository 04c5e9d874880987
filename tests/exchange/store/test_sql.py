"""store/sql.py's ``insert_rows``: every value goes through its column type, row by row, in one
``executemany`` — checked on a real SQLite file with a table of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Boolean, Column, Integer, LargeBinary, MetaData, String, Table, select

from exchange.store.engine import open_engine
from exchange.store.schema import UtcMicros
from exchange.store.sql import insert_rows

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
