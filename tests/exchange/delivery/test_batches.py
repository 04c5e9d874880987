"""Sealing and resending (nl-eokm → de-eco): persisted before sent, resent byte for byte.

Real SQLite (or the suite's PostgreSQL), real writer, real Ed25519 signatures: every sealed
envelope is opened as de-eco's receiver would open it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from auth.manifest import Manifest
from exchange.delivery.batches import Batches, fit
from exchange.delivery.leases import LeaseLost, Leases
from exchange.settings import ExchangeTuning
from exchange.store import peers, schema
from exchange.store.writer import Tx, Writer
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT, Limits, open_envelope
from tests.exchange.delivery.conftest import PEER, QueueReports
from tests.exchange.factories import T0, FakeClock, announcement_bytes, make_announcement


def outbox_rows(engine: Engine) -> list[Any]:
    o = schema.outbox
    with engine.connect() as conn:
        return list(conn.execute(select(o).order_by(o.c.id)).all())


def batch_rows(engine: Engine) -> list[Any]:
    b = schema.batches
    with engine.connect() as conn:
        return list(conn.execute(select(b).order_by(b.c.sequence)).all())


def log_kinds(engine: Engine) -> list[str]:
    r = schema.routing_log
    with engine.connect() as conn:
        return [row.kind for row in conn.execute(select(r.c.kind))]


def announce(writer: Writer, n: int, *, at: datetime = T0) -> None:
    def job(tx: Tx) -> None:
        tx.conn.execute(
            schema.announcements.insert(),
            [
                {"payload": announcement_bytes(make_announcement(f"ann-{i}")), "created_at": at}
                for i in range(n)
            ],
        )

    writer.execute(job)


def test_pending_reports_are_sealed_signed_and_stored_before_sending(
    batches: Batches,
    queue_reports: QueueReports,
    engine: Engine,
    manifest: Manifest,
    clock: FakeClock,
) -> None:
    ids = queue_reports(3)
    batch = batches.seal_next(batches.high_water())
    assert batch is not None
    assert (batch.sequence, batch.kind, batch.count) == (1, KIND_REPORT, 3)
    assert batch.report_ids == tuple(ids)
    opened = open_envelope(
        batch.envelope, manifest=manifest, self_member=PEER, now=clock(), limits=Limits()
    )
    assert (opened.sender, opened.sequence, opened.root) == ("nl-eokm", 1, batch.root)
    assert [(r.batch_sequence, r.batch_position) for r in outbox_rows(engine)] == [
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    (stored,) = batch_rows(engine)
    assert (stored.kind, stored.payload_count, stored.receipted_at) == ("report", 3, None)
    with engine.connect() as conn:
        (sent,) = conn.execute(select(schema.routing_log)).all()  # one for the batch
    assert (sent.kind, sent.report_id, sent.member, sent.batch_sequence) == ("sent", None, PEER, 1)
    assert json.loads(sent.detail) == {"count": 3, "reports": ids, "sequence": 1}
    assert batches.unreceipted() == [1]


def test_a_resend_is_byte_for_byte_the_sealed_envelope(
    batches: Batches, queue_reports: QueueReports, clock: FakeClock
) -> None:
    queue_reports(4)
    sealed = batches.seal_next(batches.high_water())
    assert sealed is not None
    clock.advance(3600)  # a later resend is not re-signed: the time inside stays the same
    again = batches.resend(sealed.sequence)
    assert again.envelope.SerializeToString() == sealed.envelope.SerializeToString()
    assert again == sealed


def test_the_next_batch_takes_only_rows_not_yet_batched(
    batches: Batches, queue_reports: QueueReports
) -> None:
    queue_reports(2)
    first = batches.seal_next(0)
    later = queue_reports(2)
    second = batches.seal_next(0)
    assert first is not None
    assert second is not None
    assert second.sequence == first.sequence + 1
    assert second.report_ids == tuple(later)
    assert batches.seal_next(0) is None  # nothing pending: no empty batch
    assert batches.unreceipted() == [1, 2]


def test_a_batch_holds_at_most_max_batch_and_never_more_than_max_payloads(
    make_batches: Callable[..., Batches], queue_reports: QueueReports
) -> None:
    queue_reports(5)
    by_count = make_batches(ExchangeTuning(linger_ms=0, max_batch=3))
    by_payloads = make_batches(ExchangeTuning(linger_ms=0, max_batch=500, max_payloads=2))
    first = by_count.seal_next(0)
    second = by_payloads.seal_next(0)
    assert first is not None
    assert second is not None
    assert (first.count, second.count) == (3, 2)


def test_a_batch_closes_on_bytes_too(
    make_batches: Callable[..., Batches], queue_reports: QueueReports
) -> None:
    # The smallest message size the settings allow (256 KiB) holds two of these, not three.
    queue_reports(4, payload_bytes=120_000)
    small = make_batches(ExchangeTuning(linger_ms=0, max_message_bytes=256 * 1024))
    batch = small.seal_next(0)
    assert batch is not None
    assert batch.count == 2
    assert batch.envelope.ByteSize() <= 256 * 1024


def test_fit_keeps_at_least_one_row_even_if_it_is_too_large() -> None:
    class Row:
        def __init__(self, size: int) -> None:
            self.payload = b"x" * size

    rows = [Row(5000), Row(10)]
    assert fit(rows, 100) == rows[:1]
    assert fit(rows, 10_000) == rows
    assert fit([], 100) == []


def test_announcements_follow_reports_and_move_the_high_water_mark(
    batches: Batches, queue_reports: QueueReports, writer: Writer
) -> None:
    queue_reports(1)
    announce(writer, 3)
    reports = batches.seal_next(batches.high_water())
    assert reports is not None
    assert reports.kind == KIND_REPORT
    announced = batches.seal_next(batches.high_water())
    assert announced is not None
    assert (announced.kind, announced.count, announced.report_ids) == (KIND_ANNOUNCEMENT, 3, ())
    assert announced.last_announcement == batches.high_water()
    assert batches.seal_next(batches.high_water()) is None
    again = batches.resend(announced.sequence)
    assert again.envelope.SerializeToString() == announced.envelope.SerializeToString()
    assert not batches.pending_announcements(batches.high_water())


def test_an_early_seal_says_whether_more_may_wait(
    make_batches: Callable[..., Batches], queue_reports: QueueReports
) -> None:
    """Intake's transaction seals what it queued (``seal_queued``); it looks again only when
    more may wait — a full batch, or rows cut off by bytes — not to find nothing."""
    batches = make_batches(ExchangeTuning(max_batch=3, linger_ms=0, max_message_bytes=256 * 1024))
    seals: list[tuple[int | None, bool]] = []

    def seal_all(tx: Tx) -> None:
        while True:
            batch, more = batches.seal_queued(tx)
            seals.append((batch.count if batch else None, more))
            if not more:
                return

    queue_reports(2, then=seal_all)
    assert seals == [(2, False)]  # all it read: no second look
    seals.clear()
    queue_reports(4, then=seal_all)
    assert seals == [(3, True), (1, False)]  # a full batch: more may wait
    seals.clear()
    queue_reports(3, payload_bytes=100_000, then=seal_all)
    assert seals == [(2, True), (1, False)]  # cut by bytes: the rest waits


class Ticker:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_short_batch_of_announcements_waits_for_the_linger(
    make_batches: Callable[..., Batches], writer: Writer, clock: FakeClock, engine: Engine
) -> None:
    ticker = Ticker()
    batches = make_batches(ExchangeTuning(linger_ms=0, announcement_linger_ms=250), None, ticker)
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    assert batches.seal_next(batches.high_water()) is None
    assert batches.announcements_due_in is None  # nothing waits: nothing to wake up for
    announce(writer, 3)  # queued at T0, the clock's time
    assert batches.seal_next(batches.high_water()) is None
    assert batches.announcements_due_in == pytest.approx(0.25)
    clock.advance(0.1)
    assert batches.seal_next(batches.high_water()) is None
    assert batches.announcements_due_in == pytest.approx(0.15)
    assert batch_rows(engine) == []  # nothing sealed while they wait
    clock.advance(0.15)
    sealed = batches.seal_next(batches.high_water())
    assert sealed is not None
    assert (sealed.kind, sealed.count) == (KIND_ANNOUNCEMENT, 3)
    assert batches.announcements_due_in is None


def test_a_full_batch_of_announcements_goes_at_once(
    make_batches: Callable[..., Batches], writer: Writer
) -> None:
    batches = make_batches(ExchangeTuning(max_batch=4, linger_ms=0, announcement_linger_ms=5000))
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    announce(writer, 3)
    assert batches.seal_next(batches.high_water()) is None  # 3 of 4: they wait
    announce(writer, 1)
    full = batches.seal_next(batches.high_water())
    assert full is not None
    assert (full.kind, full.count) == (KIND_ANNOUNCEMENT, 4)
    # Asked for full batches only (batches in flight), a full batch goes too.
    announce(writer, 4)
    again = batches.seal_next(batches.high_water(), full_only=True)
    assert again is not None
    assert again.count == 4


def test_a_report_queued_while_the_announcements_are_read_still_goes_first(
    make_batches: Callable[..., Batches],
    writer: Writer,
    queue_reports: QueueReports,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With batches in flight, the count of waiting reports and the look at the announcements
    are two reads: a report queued between them was queued before the announcements that look
    saw, and it goes first — the announcements wait."""
    batches = make_batches(ExchangeTuning(max_batch=3, linger_ms=0))
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    announce(writer, 3)
    reach = batches._announcements_reach

    def reach_as_a_report_is_queued(after: int, n: int) -> bool:
        queue_reports(1)  # committed after the count found none
        return reach(after, n)

    monkeypatch.setattr(batches, "_announcements_reach", reach_as_a_report_is_queued)
    assert batches.seal_next(batches.high_water(), full_only=True) is None
    assert batches.reports_pending
    monkeypatch.undo()
    report = batches.seal_next(batches.high_water())
    assert report is not None
    assert (report.kind, report.count) == (KIND_REPORT, 1)


@pytest.mark.parametrize(
    "queued_at",
    [
        pytest.param(timedelta(hours=1), id="our-clock-stepped-back"),
        pytest.param(timedelta(minutes=10), id="queued-by-a-replica-whose-clock-runs-ahead"),
    ],
)
def test_announcements_queued_in_our_future_wait_one_linger_at_most(
    make_batches: Callable[..., Batches], writer: Writer, queued_at: timedelta
) -> None:
    """Their queue time says they are younger than they are; the monotonic clock, from when
    this sender first saw them, bounds the wait all the same."""
    ticker = Ticker()
    batches = make_batches(ExchangeTuning(linger_ms=0, announcement_linger_ms=250), None, ticker)
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    announce(writer, 2, at=T0 + queued_at)  # the clock stands at T0
    assert batches.seal_next(batches.high_water()) is None
    assert batches.announcements_due_in == pytest.approx(0.25)
    ticker.now += 0.1
    assert batches.seal_next(batches.high_water()) is None
    assert batches.announcements_due_in == pytest.approx(0.15)
    ticker.now += 0.15
    sealed = batches.seal_next(batches.high_water())
    assert sealed is not None
    assert (sealed.kind, sealed.count) == (KIND_ANNOUNCEMENT, 2)


def test_reports_are_never_held_back_by_announcements_waiting(
    make_batches: Callable[..., Batches], writer: Writer, queue_reports: QueueReports
) -> None:
    ticker = Ticker()
    batches = make_batches(ExchangeTuning(linger_ms=0, announcement_linger_ms=5000), None, ticker)
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    announce(writer, 3)
    assert batches.ready_in() == pytest.approx(5.0)  # nothing to open a stream for yet
    queue_reports(1)
    assert batches.ready_in() == 0
    reports = batches.seal_next(batches.high_water())
    assert reports is not None
    assert reports.kind == KIND_REPORT


class LostLease(Leases):
    """A lease another replica took over: every fence fails, as on PostgreSQL."""

    def fence(self, tx: Tx, peer: str) -> None:
        raise LeaseLost(peer)


def test_a_lost_lease_stops_sealing_and_changes_nothing(
    make_batches: Callable[..., Batches],
    queue_reports: QueueReports,
    writer: Writer,
    engine: Engine,
) -> None:
    queue_reports(3)
    announce(writer, 2)
    batches = make_batches(leases=LostLease(writer))
    with pytest.raises(LeaseLost):
        batches.seal_next(0)
    with pytest.raises(LeaseLost):
        writer.execute(lambda tx: batches.seal_announcements(tx, batches.pending_announcements(0)))
    assert batch_rows(engine) == []
    assert {r.batch_sequence for r in outbox_rows(engine)} == {None}
    with engine.connect() as conn:
        assert conn.execute(select(schema.peers.c.next_sequence)).scalar_one() == 1
    assert "sent" not in log_kinds(engine)
