"""The new holder (us-ncmec) takes a transfer in through its receiver: once, or not at all.

Real envelopes signed with the members' test keys, a real migrated database, the receiver with
its ``Arrivals``: a sound transfer opens a case linked to de-eco's (or joins us-ncmec's open
case for the URL), stores the report with its evidence so it verifies on its own, starts the
items unassessed with the clock at this receipt and queues a take-over for the origin and the
coordinator; a replay changes nothing; a refusal stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from auth.manifest import Manifest
from exchange.domain import Outcome
from exchange.lifecycle.model import EventKind, Stage, TakeOver
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.views import case_detail
from exchange.ops.verify import verify_report
from exchange.receiver import Receiver
from exchange.store.writer import Writer
from exchange.transfer.arrivals import Arrivals, transfer_case_id
from exchange.wire.envelope import KIND_REPORT, KIND_TRANSFER, Limits, Receipt, open_receipt
from ihx.v1 import exchange_pb2 as xpb
from tests.exchange.factories import (
    T0,
    FakeClock,
    make_report,
    report_wire,
    seal_batch,
    signing_key,
    table_counts,
)
from tests.exchange.transfer.factories import HOLDER, NEW, ORIGIN, Kit, make_kit

SKEW = timedelta(minutes=15)
NOW = T0 + timedelta(minutes=12)
COORDINATOR = "inhope"


@pytest.fixture
def receiver(manifest: Manifest, writer: Writer, clock: FakeClock) -> Receiver:
    clock.set(NOW)
    recorder = Recorder(self_member=NEW)
    arrivals = Arrivals(
        self_member=NEW, manifest=lambda: manifest, recorder=recorder, max_skew=SKEW
    )
    return Receiver(
        self_member=NEW,
        key=signing_key(NEW),
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        limits=Limits(),
        arrivals=arrivals,
    )


Send = Callable[..., tuple[Receipt, xpb.SignedReceipt]]


@pytest.fixture
def send(receiver: Receiver, manifest: Manifest) -> Send:
    sequences = iter(range(1, 1000))

    def deliver(
        payloads: list[bytes],
        *,
        sender: str = HOLDER,
        kind: int = KIND_TRANSFER,
        sequence: int | None = None,
    ) -> tuple[Receipt, xpb.SignedReceipt]:
        seq = sequence if sequence is not None else next(sequences)
        sealed = seal_batch(
            payloads,
            sender=sender,
            recipient=NEW,
            sequence=seq,
            kind=kind,
            signed_at=T0 + timedelta(minutes=11),
        )
        signed = receiver.receive(sealed.to_proto())
        receipt = open_receipt(
            signed,
            manifest=manifest,
            issuer=NEW,
            sender=sender,
            sequence=seq,
            root=sealed.root,
            count=len(payloads),
            kind=kind,
        )
        return receipt, signed

    return deliver


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def test_a_transfer_opens_a_case_linked_to_the_old_one(
    send: Send, engine: Engine, manifest: Manifest
) -> None:
    kit = make_kit()
    moved = kit.moved()
    receipt, _ = send([kit.payload()])
    (result,) = receipt.results
    case_id = transfer_case_id(moved.id, kit.report.id)
    assert (result.outcome, result.case_id, result.report_id) == (
        Outcome.NEW_CASE,
        case_id,
        kit.report.id,
    )
    with engine.connect() as conn:
        held = case_detail(conn, NEW, case_id)
    assert held.holder == NEW
    assert held.hosting_country == "US"
    assert held.reporting_members == (ORIGIN,)
    assert held.moved_from is not None
    assert (held.moved_from.from_member, held.moved_from.from_case) == (HOLDER, kit.case_id)
    assert [e.id for e in held.history] == [kit.assessed().id, moved.id]
    assert [(s.stage, s.holder, s.clock_started) for s in held.items] == [
        (Stage.UNASSESSED, NEW, NOW),
        (Stage.UNASSESSED, NEW, NOW),
    ]
    (taken,) = held.timeline
    assert taken.kind is EventKind.TAKEN_OVER
    assert taken.body == TakeOver(HOLDER, kit.case_id, moved.id, "US")
    queued = rows(engine, "SELECT destination, kind, report_id FROM outbox ORDER BY destination")
    assert [(r.destination, r.kind, r.report_id) for r in queued] == [
        (COORDINATOR, "event", taken.id),
        (ORIGIN, "event", taken.id),
    ]
    stored = rows(engine, "SELECT role, origin_member, sender, case_id FROM reports")
    assert [tuple(r) for r in stored] == [("received", ORIGIN, HOLDER, case_id)]
    logged = rows(engine, "SELECT kind FROM routing_log WHERE report_id = :r", r=kit.report.id)
    assert "transferred" in [r.kind for r in logged]

    result_ = verify_report(engine, kit.report.id, manifest=manifest, self_member=NEW)
    assert result_.ok, result_.checks


def test_a_transfer_is_taken_once(send: Send, engine: Engine) -> None:
    kit = make_kit()
    first, signed = send([kit.payload()], sequence=7)
    before = table_counts(engine)
    _, signed_again = send([kit.payload()], sequence=7)
    assert signed_again == signed  # the same envelope: the very receipt, byte for byte
    other, _ = send([kit.payload()])  # the same transfer in another envelope
    assert [(r.outcome, r.case_id) for r in other.results] == [
        (r.outcome, r.case_id) for r in first.results
    ]
    after = table_counts(engine)
    assert after.pop("inbox") == before.pop("inbox") + 1
    assert after == before


def test_a_refused_transfer_stores_nothing(send: Send, engine: Engine) -> None:
    kit = make_kit()
    before = table_counts(engine)
    # us-ncmec never held the case: it cannot pass nl-eokm's report on (here: to itself).
    forged = make_kit(country="US").transfer(kit.moved(member=ORIGIN))
    receipt, _ = send([kit.payload(forged)], sender=ORIGIN)
    (result,) = receipt.results
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith("not-holder: ")
    after = table_counts(engine)
    assert after.pop("inbox") == before.pop("inbox") + 1
    assert after.pop("routing_log") == before.pop("routing_log") + 1  # the refusal, logged
    assert after == before


def test_a_transfer_joins_the_open_case_for_its_url(send: Send, engine: Engine) -> None:
    kit = make_kit()
    direct = make_report(
        origin=HOLDER,
        decision_member=NEW,
        url=kit.report.url,
        hashes=["reported-to-us-directly"],
        received_at=T0,
    )
    (opened,) = send([report_wire(direct)], kind=KIND_REPORT)[0].results
    assert opened.outcome is Outcome.NEW_CASE
    (merged,) = send([kit.payload()])[0].results
    assert (merged.outcome, merged.case_id) == (Outcome.MERGED, opened.case_id)
    with engine.connect() as conn:
        held = case_detail(conn, NEW, opened.case_id)
    assert set(held.reporting_members) == {HOLDER, ORIGIN}
    assert held.moved_from is not None
    assert held.moved_from.from_case == kit.case_id
    # us-ncmec's take-over goes to every member of the case, de-eco (a reporter here) included.
    queued = rows(engine, "SELECT destination FROM outbox WHERE kind = 'event'")
    assert sorted(r.destination for r in queued) == sorted([COORDINATOR, HOLDER, ORIGIN])


def test_the_parts_of_one_move_share_its_case_and_url(send: Send) -> None:
    first = make_kit()
    moved = first.moved()
    second = make_kit(hashes=["moved-2"])  # another report of the same URL, in de-eco's case
    elsewhere = make_kit(hashes=["moved-3"], path="/elsewhere.jpg")

    def part(kit: Kit) -> bytes:
        own = kit.transfer(replace(moved, items=kit.refs()), history=())
        return kit.payload(own)

    receipt, _ = send([part(first), part(second), part(elsewhere)])
    one, two, three = receipt.results
    assert one.outcome is Outcome.NEW_CASE
    assert (two.outcome, two.case_id) == (Outcome.MERGED, one.case_id)
    assert three.outcome is Outcome.REJECTED
    assert three.reason.startswith("url-key-mismatch: ")


def _close_removed(engine: Engine, case_id: str) -> None:
    """us-ncmec worked the case to its end: its items removed, the case closed."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE cases SET status = 'closed', closed_at = 1 WHERE id = :c"), {"c": case_id}
        )
        conn.execute(
            text("UPDATE item_states SET stage = 'removed', closed_at = 1 WHERE case_id = :c"),
            {"c": case_id},
        )


@pytest.mark.parametrize("closed", [False, True])
def test_a_former_holder_cannot_move_a_report_here_again(
    send: Send, engine: Engine, closed: bool
) -> None:
    kit = make_kit()
    first = kit.moved(sequence=2)
    receipt, _ = send([kit.payload(kit.transfer(first))])
    (taken,) = receipt.results
    assert taken.outcome is Outcome.NEW_CASE
    if closed:
        _close_removed(engine, taken.case_id)
    before = table_counts(engine)
    # de-eco, which holds nothing of it any more, signs a later "move" of the same report:
    # another move id, so no replay — and no way to re-open or duplicate the case here.
    again = kit.moved(sequence=3)
    receipt, _ = send([kit.payload(kit.transfer(again))])
    (result,) = receipt.results
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith(
        f"already-held: item {kit.report.id}#0 is held here already, in case {taken.case_id} "
        f"since move {first.id}"
    ), result.reason
    after = table_counts(engine)
    assert after.pop("inbox") == before.pop("inbox") + 1
    assert after.pop("routing_log") == before.pop("routing_log") + 1  # the refusal, logged
    assert after == before
    # The first transfer sent again is still answered as before.
    receipt, _ = send([kit.payload(kit.transfer(first))])
    assert [(r.outcome, r.case_id) for r in receipt.results] == [(Outcome.NEW_CASE, taken.case_id)]
