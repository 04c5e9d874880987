"""store/prepared.py: a Core statement compiled once and run on the driver's cursor gives what
Core gives — on SQLite and on PostgreSQL (``db_url``), against a table of its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from exchange.store.engine import open_engine
from exchange.store.prepared import Prepared
from exchange.store.schema import UtcMicros
from exchange.store.sql import insert_rows

META = MetaData()
ITEMS = Table(
    "prepared_items",
    META,
    Column("id", Integer, primary_key=True),
    Column("owner", String(20), nullable=False),
    Column("at", UtcMicros),
    Column("flag", Boolean),
)
T = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

BY_OWNER = Prepared(
    select(ITEMS.c.id, ITEMS.c.at, ITEMS.c.flag)
    .where(ITEMS.c.owner == bindparam("owner"), ITEMS.c.id > bindparam("after"))
    .order_by(ITEMS.c.id)
    .limit(bindparam("limit"))
)
FIRST_TWO = Prepared(select(ITEMS.c.id).order_by(ITEMS.c.id.desc()).limit(2))
COUNT = Prepared(select(func.count()).select_from(ITEMS).where(ITEMS.c.owner == bindparam("o")))
STAMP = Prepared(
    update(ITEMS)
    .where(ITEMS.c.owner == bindparam("owner"), ITEMS.c.at.is_(None))
    .values(at=bindparam("at", type_=UtcMicros()), flag=True)
)
DROP = Prepared(delete(ITEMS).where(ITEMS.c.owner == bindparam("owner")))


@pytest.fixture
def items(db_url: str) -> Iterator[Engine]:
    engine = open_engine(db_url)
    META.create_all(engine)
    rows = [
        {"id": i, "owner": "a" if i % 2 else "b", "at": T + timedelta(seconds=i), "flag": i > 2}
        for i in range(1, 7)
    ]
    rows.append({"id": 7, "owner": "a", "at": None, "flag": None})
    with engine.begin() as conn:
        insert_rows(conn, ITEMS, rows)
    yield engine
    META.drop_all(engine)
    engine.dispose()


def test_rows_come_back_typed_as_core_gives_them(items: Engine) -> None:
    with items.connect() as conn:
        prepared = BY_OWNER.rows(conn, owner="a", after=1, limit=10)
        core = conn.execute(
            select(ITEMS.c.id, ITEMS.c.at, ITEMS.c.flag)
            .where(ITEMS.c.owner == "a", ITEMS.c.id > 1)
            .order_by(ITEMS.c.id)
        ).all()
    assert prepared == [tuple(r) for r in core]
    assert prepared == [
        (3, T + timedelta(seconds=3), True),
        (5, T + timedelta(seconds=5), True),
        (7, None, None),
    ]
    assert isinstance(prepared[0][1], datetime)  # through the column's result processor


def test_bound_and_fixed_values_and_scalars(items: Engine) -> None:
    with items.connect() as conn:
        assert BY_OWNER.rows(conn, owner="b", after=0, limit=2) == [
            (2, T + timedelta(seconds=2), False),
            (4, T + timedelta(seconds=4), True),
        ]
        assert FIRST_TWO.rows(conn) == [(7,), (6,)]  # the LIMIT bound in the statement itself
        assert COUNT.scalar(conn, o="a") == 4
        assert BY_OWNER.first(conn, owner="nobody", after=0, limit=5) is None
        with pytest.raises(LookupError):
            Prepared(select(ITEMS.c.id).where(ITEMS.c.id == bindparam("i"))).scalar(conn, i=99)


def test_a_change_reports_its_rows_and_binds_through_the_type(items: Engine) -> None:
    later = T + timedelta(days=1, microseconds=5)
    with items.begin() as conn:
        assert STAMP.run(conn, owner="a", at=later) == 1  # only id 7 had no time
        assert DROP.run(conn, owner="b") == 3
    with items.connect() as conn:
        assert conn.execute(select(ITEMS.c.at, ITEMS.c.flag).where(ITEMS.c.id == 7)).one() == (
            later,
            True,
        )
        assert COUNT.scalar(conn, o="b") == 0


def test_a_driver_error_is_sqlalchemys_and_the_transaction_goes_on(items: Engine) -> None:
    clash = Prepared(update(ITEMS).where(ITEMS.c.id == 2).values(id=bindparam("to")))
    with items.connect() as conn, conn.begin():
        nested = conn.begin_nested()
        with pytest.raises(IntegrityError):
            clash.run(conn, to=1)  # id 1 is taken
        nested.rollback()
        assert COUNT.scalar(conn, o="b") == 3


def test_an_in_list_is_refused_at_first_use(items: Engine) -> None:
    listed = Prepared(select(ITEMS.c.id).where(ITEMS.c.id.in_(bindparam("ids", expanding=True))))
    with items.connect() as conn, pytest.raises(TypeError, match="expanding"):
        listed.rows(conn, ids=[1, 2])
