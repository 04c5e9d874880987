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
    event,
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


LISTED = Prepared(
    select(ITEMS.c.id, ITEMS.c.at)
    .where(
        ITEMS.c.owner == bindparam("owner"),
        ITEMS.c.id.in_(bindparam("ids", expanding=True)),
        ITEMS.c.at.in_(bindparam("times", expanding=True)),
    )
    .order_by(ITEMS.c.id)
)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_in_lists_of_any_length_mean_what_core_means(items: Engine, n: int) -> None:
    """Lists are padded to a power of two by their last value (one text per power): the rows
    are those of the list as given; times bound through their type inside the list too."""
    ids = list(range(n, 0, -1))
    times = [T + timedelta(seconds=i) for i in range(1, 8)][: max(1, n - 1)]
    with items.connect() as conn:
        got = LISTED.rows(conn, owner="a", ids=ids, times=times)
        core = conn.execute(
            select(ITEMS.c.id, ITEMS.c.at)
            .where(ITEMS.c.owner == "a", ITEMS.c.id.in_(ids), ITEMS.c.at.in_(times))
            .order_by(ITEMS.c.id)
        ).all()
    assert got == [tuple(r) for r in core]
    assert [r.id for r in got] == [i for i in range(1, n + 1) if i % 2 and i <= max(1, n - 1)]
    assert all(r.at == T + timedelta(seconds=r.id) for r in got)  # named, typed


def test_an_empty_in_list_matches_nothing(items: Engine) -> None:
    with items.begin() as conn:
        assert LISTED.rows(conn, owner="a", ids=[], times=[T]) == []
        gone = Prepared(delete(ITEMS).where(ITEMS.c.id.in_(bindparam("ids", expanding=True))))
        assert gone.run(conn, ids=[]) == 0
        assert gone.run(conn, ids=[1, 2, 3]) == 3
        assert COUNT.scalar(conn, o="a") + COUNT.scalar(conn, o="b") == 4


def test_listeners_hear_of_statements_on_the_driver_cursor(items: Engine) -> None:
    """``before_cursor_execute`` hears of them as of Core's own: what watches statements
    (tests counting look-ups, a query-plan check) keeps seeing them."""
    heard: list[str] = []

    def note(_c: object, _cur: object, statement: str, *_: object) -> None:
        heard.append(statement.split(maxsplit=1)[0])

    event.listen(items, "before_cursor_execute", note)
    with items.begin() as conn:
        COUNT.scalar(conn, o="a")
        insert_rows(conn, ITEMS, [{"id": 9, "owner": "c"}])
    event.remove(items, "before_cursor_execute", note)
    assert heard[-2:] == ["SELECT", "INSERT"]
