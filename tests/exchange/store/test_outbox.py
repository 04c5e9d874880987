"""The outbox aggregate's SQL: queue, read pending, claim, store and load batches, receipts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Connection, Engine, select

from exchange.domain import ReportRole
from exchange.store import outbox, peers, reports, schema
from exchange.store.reports import Incoming
from exchange.store.writer import Tx, Writer
from tests.exchange.factories import T0, make_report, report_place, report_wire
from tests.exchange.store.plans import sqlite_plans

PEER = "de-eco"


def queue(writer: Writer, n: int, destination: str = PEER) -> None:
    rows = [outbox.Queued(destination, f"r-{destination}-{i}", b"payload %d" % i) for i in range(n)]

    def job(tx: Tx) -> None:
        peers.ensure(tx.conn, destination)
        outbox.enqueue(tx.conn, rows, T0)

    writer.execute(job)


def seal(writer: Writer, sequence: int, row_ids: list[int]) -> None:
    def job(tx: Tx) -> None:
        outbox.insert_batch(
            tx.conn,
            peer=PEER,
            sequence=sequence,
            kind=outbox.REPORT,
            header=b"header %d" % sequence,
            signature=b"signature",
            root=b"r" * 32,
            count=len(row_ids),
            created_at=T0,
        )
        outbox.assign(tx.conn, sequence, row_ids)

    writer.execute(job)


def test_pending_reports_are_per_destination_oldest_first_and_limited(
    writer: Writer, engine: Engine
) -> None:
    queue(writer, 3)
    queue(writer, 2, destination="us-ncmec")
    with engine.connect() as conn:
        pending = outbox.pending_reports(conn, PEER, limit=10)
        assert [p.report_id for p in pending] == [f"r-{PEER}-{i}" for i in range(3)]
        assert [p.payload for p in outbox.pending_reports(conn, PEER, limit=2)] == [
            b"payload 0",
            b"payload 1",
        ]


def test_pending_rows_are_counted_per_destination_up_to_a_bound(
    writer: Writer, engine: Engine
) -> None:
    queue(writer, 3)
    queue(writer, 5, destination="us-ncmec")
    with engine.connect() as conn:
        assert outbox.count_pending_reports(conn, PEER, 10) == 3  # another peer's not counted
        assert outbox.count_pending_reports(conn, PEER, 2) == 2
        ids = [p.id for p in outbox.pending_reports(conn, PEER, limit=10)]
    seal(writer, 1, ids[:1])
    with engine.connect() as conn:
        assert outbox.count_pending_reports(conn, PEER, 10) == 2  # a batched row is not pending


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda c: outbox.count_pending_reports(c, PEER, 2), id="count"),
        pytest.param(lambda c: outbox.pending_reports(c, PEER, 2), id="rows"),
    ],
)
def test_pending_rows_are_read_in_the_index_order(
    writer: Writer, engine: Engine, read: Callable[[Connection], object]
) -> None:
    """The count runs on every wake while batches are in flight, the rows for every batch: a
    peer's backlog is read from the front of its index, never sorted whole."""
    queue(writer, 3)
    plans = sqlite_plans(engine, "outbox", read)
    assert len(plans) == (1 if engine.dialect.name == "sqlite" else 0)
    for plan in plans:
        assert "INDEX ix_outbox_destination_batch_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


def test_a_stored_batch_loads_its_payloads_in_sealed_order(writer: Writer, engine: Engine) -> None:
    queue(writer, 3)
    with engine.connect() as conn:
        ids = [p.id for p in outbox.pending_reports(conn, PEER, limit=10)]
    seal(writer, 1, [ids[2], ids[0]])  # positions follow the envelope, not the row ids
    with engine.connect() as conn:
        batch = outbox.load_batch(conn, PEER, 1)
        assert batch.payloads == (b"payload 2", b"payload 0")
        assert batch.report_ids == (f"r-{PEER}-2", f"r-{PEER}-0")
        assert (batch.header, batch.count, batch.created_at) == (b"header 1", 2, T0)
        assert outbox.unreceipted(conn, PEER) == [1]
        assert [p.report_id for p in outbox.pending_reports(conn, PEER, 10)] == [f"r-{PEER}-1"]


def test_claim_leaves_out_rows_already_batched(writer: Writer, engine: Engine) -> None:
    queue(writer, 3)
    with engine.connect() as conn:
        ids = [p.id for p in outbox.pending_reports(conn, PEER, limit=10)]
    seal(writer, 1, ids[:1])
    assert writer.execute(lambda tx: outbox.claim(tx.conn, ids)) == set(ids[1:])


def test_a_receipt_marks_its_batch_once(writer: Writer, engine: Engine) -> None:
    queue(writer, 2)
    with engine.connect() as conn:
        ids = [p.id for p in outbox.pending_reports(conn, PEER, limit=10)]
    seal(writer, 1, ids)

    def mark(tx: Tx) -> bool:
        return outbox.mark_receipted(
            tx.conn, PEER, 1, body=b"body", signature=b"sig", at=T0 + timedelta(seconds=5)
        )

    assert writer.execute(mark) is True
    assert writer.execute(mark) is False
    with engine.connect() as conn:
        assert outbox.unreceipted(conn, PEER) == []
        assert outbox.queued_times(conn, PEER, 1) == [T0, T0]
    writer.execute(lambda tx: outbox.remove_batch_rows(tx.conn, PEER, 1))
    with engine.connect() as conn:
        assert conn.execute(select(schema.outbox)).all() == []


def _stored(writer: Writer, n: int) -> list[str]:
    """``n`` reports stored here (what a delivery's report always is), their ids."""
    made = [make_report(hashes=[f"sent-{i}"]) for i in range(n)]
    incoming = [Incoming(r, report_wire(r), ReportRole.ORIGIN) for r in made]
    marks = [(None,) * len(r.items) for r in made]
    writer.execute(lambda tx: reports.insert(tx.conn, incoming, [None] * n, marks, T0))
    return [r.id for r in made]


def test_a_delivery_recorded_twice_is_kept_once(writer: Writer, engine: Engine) -> None:
    _, rid = _stored(writer, 2)
    first = outbox.Delivery(rid, PEER, 1, "new-case", "c-1", None, T0)
    again = outbox.Delivery(rid, PEER, 2, "merged", "c-2", None, T0)
    writer.execute(lambda tx: outbox.record_deliveries(tx.conn, [first]))
    writer.execute(lambda tx: outbox.record_deliveries(tx.conn, [again]))
    with engine.connect() as conn:
        (row,) = conn.execute(select(schema.deliveries)).all()
        assert outbox.delivery_of(conn, rid) == first
        assert outbox.remote_case(conn, rid) == "c-1"
        assert outbox.case_destination(conn, "c-1") == PEER
    assert (row.sequence, row.outcome, row.remote_case_id) == (1, "new-case", "c-1")


def test_a_delivery_of_a_report_not_stored_here_is_refused(writer: Writer, engine: Engine) -> None:
    (rid,) = _stored(writer, 1)
    known = outbox.Delivery(rid, PEER, 1, "new-case", "c-1", None, T0)
    unknown = outbox.Delivery("r-" + "0" * 32, PEER, 1, "new-case", "c-2", None, T0)
    with pytest.raises(LookupError, match="not stored here: r-0000"):
        writer.execute(lambda tx: outbox.record_deliveries(tx.conn, [known, unknown]))
    with engine.connect() as conn:
        assert conn.execute(select(schema.deliveries)).all() == []


def test_a_report_stored_here_is_queued_by_its_place_and_sent_as_its_row(
    writer: Writer, engine: Engine
) -> None:
    """Intake queues a report by its place (0018): the row carries no copy of its bytes, and
    what is sealed and resent is the report row's own ``wire``, beside rows that carry theirs."""
    ids = _stored(writer, 2)

    def job(tx: Tx) -> None:
        peers.ensure(tx.conn, PEER)
        outbox.enqueue_stored(tx.conn, [(PEER, ids[1])], T0)
        outbox.enqueue(tx.conn, [outbox.Queued(PEER, "e-1", b"event", outbox.EVENT)], T0)
        outbox.enqueue_stored(tx.conn, [(PEER, ids[0])], T0)

    writer.execute(job)
    with engine.connect() as conn:
        wires = dict(conn.execute(select(schema.reports.c.id, schema.reports.c.wire)).all())
        rows = conn.execute(
            select(schema.outbox.c.report_seq, schema.outbox.c.payload).order_by(schema.outbox.c.id)
        ).all()
        pending = outbox.pending_reports(conn, PEER, limit=10)
    places = [report_place(engine, rid) for rid in (ids[1], ids[0])]
    assert [tuple(r) for r in rows] == [(places[0], None), (None, b"event"), (places[1], None)]
    assert [(p.report_id, p.payload) for p in pending] == [
        (ids[1], wires[ids[1]]),
        ("e-1", b"event"),
        (ids[0], wires[ids[0]]),
    ]
    seal(writer, 1, [pending[2].id, pending[0].id])
    with engine.connect() as conn:
        assert outbox.load_batch(conn, PEER, 1).payloads == (wires[ids[0]], wires[ids[1]])
        assert outbox.queued_among(conn, [*ids, "r-" + "0" * 32]) == set(ids)


def test_a_report_not_stored_here_is_not_queued_by_place(writer: Writer, engine: Engine) -> None:
    (rid,) = _stored(writer, 1)
    with pytest.raises(LookupError, match="not stored here: r-0000"):
        writer.execute(
            lambda tx: outbox.enqueue_stored(tx.conn, [(PEER, rid), (PEER, "r-" + "0" * 32)], T0)
        )
    with engine.connect() as conn:
        assert conn.execute(select(schema.outbox)).all() == []


def test_the_announcement_high_water_is_the_cursor_or_the_last_sealed(
    writer: Writer, engine: Engine
) -> None:
    def job(tx: Tx) -> None:
        peers.ensure(tx.conn, PEER)
        tx.conn.execute(
            schema.announcements.insert(),
            [{"payload": b"a%d" % i, "created_at": T0} for i in range(5)],
        )

    writer.execute(job)
    with engine.connect() as conn:
        assert outbox.announcement_high_water(conn, PEER) == 0
        assert [a.seq for a in outbox.pending_announcements(conn, 2, limit=10)] == [3, 4, 5]
        assert [a.seq for a in outbox.pending_announcements(conn, 0, limit=2)] == [1, 2]
        assert outbox.announcements_pending_reach(conn, 2, 3)
        assert not outbox.announcements_pending_reach(conn, 2, 4)

    def sealed(tx: Tx) -> None:
        outbox.insert_batch(
            tx.conn,
            peer=PEER,
            sequence=1,
            kind=outbox.ANNOUNCEMENT,
            header=b"h",
            signature=b"s",
            root=b"r" * 32,
            count=3,
            created_at=T0,
            announcements=(1, 3),
        )

    writer.execute(sealed)
    with engine.connect() as conn:
        assert outbox.announcement_high_water(conn, PEER) == 3
        assert outbox.load_batch(conn, PEER, 1).payloads == (b"a0", b"a1", b"a2")
    writer.execute(lambda tx: peers.record_heard(tx.conn, PEER, T0, announced_upto=5))
    with engine.connect() as conn:
        assert outbox.announcement_high_water(conn, PEER) == 5
