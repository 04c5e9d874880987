"""Receipts from de-eco for nl-eokm's batches: verified first, applied once, moving only forward.

Every receipt here is really signed (de-eco's test key, or a wrong one) over an envelope opened
as de-eco's receiver opens it; the store is real.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from auth.errors import AuthError
from auth.manifest import Manifest
from exchange.delivery.batches import Batch, Batches
from exchange.delivery.receipts import Receipts
from exchange.domain import Outcome, PayloadResult
from exchange.errors import ExchangeError
from exchange.ops.metrics import Metrics
from exchange.store import outbox, peers, schema
from exchange.store.writer import Tx, Writer
from exchange.wire.envelope import KIND_EVENT, Limits, open_envelope, sign_receipt
from tests.exchange.delivery.conftest import PEER, QueueReports, ReceiptFor
from tests.exchange.delivery.test_batches import announce
from tests.exchange.factories import FakeClock, signing_key, table_counts


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)).all())


def peer_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(schema.peers).where(schema.peers.c.member == PEER)).one()


def sealed(batches: Batches) -> Batch:
    batch = batches.seal_next(batches.high_water())
    assert batch is not None
    return batch


def delivered(metrics: Metrics) -> float:
    return float(metrics.reports_out.labels(PEER)._value.get())


def test_a_receipt_is_applied_deliveries_log_rows_and_peer_health(
    batches: Batches,
    receipts: Receipts,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    writer: Writer,
    engine: Engine,
    clock: FakeClock,
    metrics: Metrics,
) -> None:
    ids = queue_reports(2)
    batch = sealed(batches)
    writer.execute(lambda tx: peers.record_failure(tx.conn, PEER, "UNAVAILABLE: down", clock()))
    clock.advance(2)
    signed = receipt_for(batch, [Outcome.NEW_CASE, Outcome.REJECTED])
    assert receipts.apply(batch, signed).result(10) is True

    (b,) = rows(engine, schema.batches)
    assert b.receipted_at == clock()
    assert b.receipt_body == signed.body
    assert rows(engine, schema.outbox) == []
    with engine.connect() as conn:
        outcome_rows = conn.execute(
            select(schema.reports.c.id, schema.deliveries).join(
                schema.deliveries, schema.deliveries.c.report_seq == schema.reports.c.seq
            )
        ).all()
    outcomes = {d.id: (d.outcome, d.remote_case_id) for d in outcome_rows}
    assert outcomes == {ids[0]: ("new-case", f"c-{0:032x}"), ids[1]: ("rejected", None)}
    log = {r.kind: r for r in rows(engine, schema.routing_log)}
    assert sorted(log) == ["receipted", "rejected", "sent"]
    # One entry for the batch, the reports the peer took listed in it; one per refusal.
    taken = log["receipted"]
    assert (taken.report_id, taken.member, taken.batch_sequence) == (None, PEER, batch.sequence)
    assert json.loads(taken.detail)["reports"] == [[ids[0], "new-case", f"c-{0:032x}"]]
    refused = log["rejected"]
    assert (refused.report_id, refused.batch_sequence) == (ids[1], None)
    assert json.loads(refused.detail)["outcome"] == "rejected"
    peer = peer_row(engine)
    assert (peer.failures, peer.failing_since, peer.last_error) == (0, None, None)
    assert peer.last_heard_at == clock()
    assert delivered(metrics) == 2
    assert batches.unreceipted() == []


def test_a_batch_refused_whole_leaves_a_rejected_entry_per_report_and_no_receipted_one(
    batches: Batches,
    receipts: Receipts,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> None:
    ids = queue_reports(2)
    batch = sealed(batches)
    assert receipts.apply(batch, receipt_for(batch, [Outcome.REJECTED] * 2)).result(10) is True
    log = [(r.kind, r.report_id) for r in rows(engine, schema.routing_log)]
    assert log == [("sent", None), ("rejected", ids[0]), ("rejected", ids[1])]


def test_a_receipt_applied_twice_counts_once(
    batches: Batches,
    receipts: Receipts,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
    metrics: Metrics,
) -> None:
    queue_reports(3)
    batch = sealed(batches)
    signed = receipt_for(batch)
    assert receipts.apply(batch, signed).result(10) is True
    before = table_counts(engine)
    # The same receipt again: another replica's copy of the batch, or a replayed answer.
    assert receipts.apply(batch, signed).result(10) is False
    assert table_counts(engine) == before
    assert delivered(metrics) == 3
    assert [r.kind for r in rows(engine, schema.routing_log)].count("receipted") == 1


@pytest.mark.parametrize(
    "forge",
    ["other-batch", "wrong-key", "wrong-issuer", "from-the-future", "before-signing"],
)
def test_a_receipt_that_does_not_verify_changes_nothing(
    forge: str,
    batches: Batches,
    receipts: Receipts,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
    clock: FakeClock,
) -> None:
    queue_reports(1)
    first = sealed(batches)
    queue_reports(1)
    second = sealed(batches)
    signed = {
        "other-batch": lambda: receipt_for(second),
        "wrong-key": lambda: receipt_for(first, key_of="us-ncmec"),
        "wrong-issuer": lambda: receipt_for(first, issuer="us-ncmec", key_of="us-ncmec"),
        "from-the-future": lambda: receipt_for(first, received_at=clock() + timedelta(hours=2)),
        "before-signing": lambda: receipt_for(first, received_at=clock() - timedelta(hours=2)),
    }[forge]()
    before = table_counts(engine)
    with pytest.raises((AuthError, ExchangeError)):
        receipts.apply(first, signed)
    assert table_counts(engine) == before
    assert batches.unreceipted() == [first.sequence, second.sequence]


def test_announcement_receipts_move_the_cursor_forward_only(
    batches: Batches,
    receipts: Receipts,
    receipt_for: ReceiptFor,
    writer: Writer,
    engine: Engine,
) -> None:
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    announce(writer, 2)
    older = sealed(batches)
    announce(writer, 2)
    newer = sealed(batches)
    assert older.last_announcement is not None
    assert newer.last_announcement is not None
    # Two replicas' receipts may be applied out of order: the newer first here.
    assert receipts.apply(newer, receipt_for(newer)).result(10) is True
    assert receipts.apply(older, receipt_for(older)).result(10) is True
    assert peer_row(engine).announce_cursor == newer.last_announcement
    assert rows(engine, schema.deliveries) == []


def test_storing_is_one_job_of_the_callers_transaction(
    batches: Batches,
    receipts: Receipts,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    writer: Writer,
    engine: Engine,
) -> None:
    queue_reports(1)
    batch = sealed(batches)
    receipt = receipts.verify(batch, receipt_for(batch))

    def store_then_fail(tx: Tx) -> None:
        assert receipts.store(tx, batch, receipt) is True
        raise RuntimeError("the rest of the job failed")

    with pytest.raises(RuntimeError):
        writer.execute(store_then_fail)
    assert batches.unreceipted() == [batch.sequence]  # rolled back: resent, applied later
    assert rows(engine, schema.deliveries) == []


def test_a_receipt_for_case_events_echoing_their_ids_is_applied(
    batches: Batches,
    receipts: Receipts,
    writer: Writer,
    engine: Engine,
    clock: FakeClock,
    manifest: Manifest,
) -> None:
    # A receiver answers each applied event with its id (inbound.py): the receipt must verify,
    # or the batch is resent forever and every later event for the peer waits behind it.
    ids = [f"e-{i:032x}" for i in range(3)]

    def queue(tx: Tx) -> None:
        peers.ensure(tx.conn, PEER)
        rows = [outbox.Queued(PEER, e, e.encode(), kind=outbox.EVENT) for e in ids]
        outbox.enqueue(tx.conn, rows, clock())

    writer.execute(queue)
    batch = sealed(batches)
    assert batch.kind == KIND_EVENT
    opened = open_envelope(
        batch.envelope, manifest=manifest, self_member=PEER, now=clock(), limits=Limits()
    )
    results = [
        PayloadResult(0, ids[0], Outcome.ACCEPTED),
        PayloadResult(1, ids[1], Outcome.REJECTED, reason="not-assigned: held by us-ncmec"),
        PayloadResult(2, ids[2], Outcome.ACCEPTED),
    ]
    signed = sign_receipt(
        signing_key(PEER), issuer=PEER, opened=opened, received_at=clock(), results=results
    )
    assert receipts.apply(batch, signed).result(10) is True
    assert rows(engine, schema.outbox) == []
    assert batches.unreceipted() == []
    refused = [r for r in rows(engine, schema.routing_log) if r.kind == "rejected"]
    assert len(refused) == 1
