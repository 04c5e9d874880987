"""The writer's memo of report places (store/reports.py ``PlaceMemo``), on a real database.

A place is a cache of something that never changes once committed — but a place an insert took
in a transaction, or a job, that rolled back is taken again by the next report. These tests
read places through the writer's own connection and count the statements it sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, Engine, event

from exchange.domain import Report, ReportRole
from exchange.errors import StorageUnavailable
from exchange.store import reports
from exchange.store.reports import Incoming, PlaceMemo
from exchange.store.writer import Tx, Writer
from tests.dbs import create_deferred_probe
from tests.exchange.factories import T0, make_report, report_place, writer_held


def store(*batch: Report) -> Callable[[Tx], None]:
    def job(tx: Tx) -> None:
        incoming = [Incoming(r, b"w", ReportRole.ORIGIN) for r in batch]
        reports.insert(tx.conn, incoming, [None] * len(batch), [(None,)] * len(batch), T0)

    return job


def failing(job: Callable[[Tx], None]) -> Callable[[Tx], None]:
    def run(tx: Tx) -> None:
        job(tx)
        raise RuntimeError("the job fails after its insert")

    return run


@contextmanager
def counted(conn: Connection) -> Iterator[list[str]]:
    """The statements ``conn`` sends that read the reports' places."""
    seen: list[str] = []

    def note(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "FROM reports" in statement:
            seen.append(statement)

    event.listen(conn, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", note)


def places_read(writer: Writer, ids: list[str]) -> tuple[dict[str, int], int]:
    """``places`` of ``ids`` in a writer job, and how many look-ups it sent the database."""

    def job(tx: Tx) -> tuple[dict[str, int], int]:
        with counted(tx.conn) as seen:
            found = reports.places(tx.conn, ids)
        return found, len(seen)

    return writer.execute(job)


def test_places_the_writer_stored_are_answered_without_a_look_up(
    engine: Engine, writer: Writer
) -> None:
    a, b = make_report(hashes=["a"]), make_report(hashes=["b"])
    writer.execute(store(a, b))
    found, lookups = places_read(writer, [a.id, b.id])
    assert found == {a.id: report_place(engine, a.id), b.id: report_place(engine, b.id)}
    assert lookups == 0
    # One not remembered is asked for, once, and remembered after.
    unknown = make_report(hashes=["c"])
    assert places_read(writer, [a.id, unknown.id]) == ({a.id: found[a.id]}, 1)


def test_places_read_from_the_database_are_remembered(engine: Engine, writer: Writer) -> None:
    a = make_report(hashes=["a"])
    with engine.begin() as conn:  # stored by another connection: the writer never saw it
        reports.insert(conn, [Incoming(a, b"w", ReportRole.ORIGIN)], [None], [(None,)], T0)
    assert places_read(writer, [a.id]) == ({a.id: report_place(engine, a.id)}, 1)
    assert places_read(writer, [a.id]) == ({a.id: report_place(engine, a.id)}, 0)


def test_a_place_a_rolled_back_job_took_is_not_remembered(engine: Engine, writer: Writer) -> None:
    """The next report takes the same place: the rolled-back one must not be found there."""
    gone, kept = make_report(hashes=["a"]), make_report(hashes=["b"])
    with writer_held(writer):
        first = writer.submit(failing(store(gone)))
        second = writer.submit(store(kept))
    with pytest.raises(RuntimeError):
        first.result(10)
    second.result(10)
    found, _ = places_read(writer, [gone.id, kept.id])
    assert found == {kept.id: report_place(engine, kept.id)}


def test_a_place_a_failed_transaction_took_is_not_remembered(
    engine: Engine, writer: Writer
) -> None:
    """COMMIT refused (a deferred constraint): the group's every insert is forgotten."""
    with engine.begin() as conn:
        create_deferred_probe(conn)

    def dangling(tx: Tx) -> None:
        tx.conn.exec_driver_sql("INSERT INTO probe (parent) VALUES (42)")

    gone, later = make_report(hashes=["a"]), make_report(hashes=["b"])
    with writer_held(writer):
        futures = [writer.submit(store(gone)), writer.submit(dangling)]
    for f in futures:
        with pytest.raises(StorageUnavailable):
            f.result(10)
    writer.execute(store(later))
    found, _ = places_read(writer, [gone.id, later.id])
    assert found == {later.id: report_place(engine, later.id)}


def test_the_memo_keeps_the_newest_half_when_full() -> None:
    memo = PlaceMemo(size=4)
    for seq in range(1, 6):
        memo.fresh[f"r{seq}"] = seq
        memo.settle(committed=True)
    assert memo.kept == {"r4": 4, "r5": 5}
    memo.fresh["r6"] = 6
    assert memo.get("r6") == 6
    memo.settle(committed=False)
    assert (memo.get("r6"), memo.get("r5")) == (None, 5)
