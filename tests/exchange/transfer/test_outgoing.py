"""The old holder (de-eco) moves a case: its transfers are queued with the move, or nothing is.

nl-eokm's report reached de-eco in a real signed envelope; de-eco's analyst assesses it, then
records a ``moved`` action through ``CaseWork``. In that one transaction a transfer for the new
member is queued in the outbox carrying exactly what de-eco stored — the report's bytes and
nl-eokm's signed header, leaf and proof — with de-eco's trace and history, and it verifies at
the new member. A move whose transfer cannot go (a report that came here by an earlier move, a
transfer beyond one payload's limit) is refused and records nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from auth.manifest import Manifest
from exchange.domain import Classification, case_id_for
from exchange.errors import TransitionRefused
from exchange.lifecycle.model import Action, ActionKind, Assessment
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.work import CaseWork, Command
from exchange.receiver import Receiver
from exchange.store.writer import Writer
from exchange.time_window import TimeWindow
from exchange.transfer.arrivals import Arrivals
from exchange.transfer.checks import verify_transfer
from exchange.transfer.outgoing import Outgoing
from exchange.wire.envelope import KIND_TRANSFER, Limits
from exchange.wire.transfer_codec import transfer_from_bytes
from routing.canonical import canonicalize
from routing.trace import Trace, Tracer
from tests.exchange.factories import (
    T0,
    FakeClock,
    make_report,
    report_wire,
    seal_batch,
    signing_key,
    table_counts,
    url_in,
)
from tests.exchange.transfer.factories import HOLDER, NEW, make_kit

SKEW = timedelta(minutes=15)
MOVED = Action(ActionKind.MOVED, moved_to_country="US")


@pytest.fixture
def receiver(manifest: Manifest, writer: Writer, clock: FakeClock) -> Receiver:
    recorder = Recorder(self_member=HOLDER)
    return Receiver(
        self_member=HOLDER,
        key=signing_key(HOLDER),
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        limits=Limits(),
        arrivals=Arrivals(
            self_member=HOLDER, manifest=lambda: manifest, recorder=recorder, max_skew=SKEW
        ),
    )


def case_work(manifest: Manifest, writer: Writer, clock: FakeClock, **outgoing: Any) -> CaseWork:
    return CaseWork(
        self_member=HOLDER,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        recorder=Recorder(self_member=HOLDER),
        transfers=Outgoing(self_member=HOLDER, **outgoing),
    )


def held_case(
    receiver: Receiver, clock: FakeClock, path: str = "/out.jpg", sequence: int = 1
) -> tuple[str, str]:
    """nl-eokm's two-item report delivered to de-eco: (report id, case id)."""
    report = make_report(url=url_in("DE", path), hashes=[f"{path}-0", f"{path}-1"])
    sealed = seal_batch([report_wire(report)], signed_at=T0, sequence=sequence)
    opened = clock()  # the receiver's clock: de-eco opens the case now
    receiver.receive(sealed.to_proto())
    clock.advance(60)
    return report.id, case_id_for(report.id, opened)


def rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_a_move_queues_the_transfer_with_the_origins_own_evidence(
    receiver: Receiver,
    writer: Writer,
    clock: FakeClock,
    manifest: Manifest,
    engine: Engine,
    tracer: Tracer,
) -> None:
    rid, cid = held_case(receiver, clock)
    work = case_work(manifest, writer, clock)
    assessed = work.assess(cid, [], Assessment(Classification.BASELINE))
    clock.advance(60)
    trace = tracer.trace(canonicalize(url_in("DE", "/out.jpg")))  # the fresh trace that found it
    moved = work.act(cid, [], MOVED, trace=trace)

    (queued,) = rows(
        engine, "SELECT destination, kind, report_id, payload FROM outbox WHERE kind = 'transfer'"
    )
    assert (queued.destination, queued.kind, queued.report_id) == (NEW, "transfer", rid)
    carried = transfer_from_bytes(queued.payload)
    assert carried.moved == moved
    assert [e.id for e in carried.history] == [assessed.id]
    (stored,) = rows(engine, "SELECT wire, leaf_index, proof FROM reports")
    (envelope,) = rows(engine, "SELECT header, signature FROM inbox")
    assert carried.report == stored.wire
    assert carried.origin is not None
    assert (carried.origin.header, carried.origin.signature) == (
        envelope.header,
        envelope.signature,
    )
    assert (carried.origin.leaf_index, carried.origin.proof) == (stored.leaf_index, stored.proof)
    assert carried.trace is not None
    assert carried.trace.host == canonicalize(url_in("DE")).host
    (sent,) = rows(engine, "SELECT role, to_member, to_case, items FROM case_transfers")
    assert tuple(sent) == ("sent", NEW, None, 2)
    # What de-eco sent is what us-ncmec believes (the test GeoIP databases are built after T0).
    window = TimeWindow.for_signer(None, T0 + timedelta(days=365), SKEW)
    verified = verify_transfer(
        carried,
        sender=HOLDER,
        self_member=NEW,
        manifest=manifest,
        window=window,
        max_skew=SKEW,
        locate=None,
    )
    assert verified.items == (0, 1)


def test_a_report_that_came_by_a_move_does_not_move_on(
    receiver: Receiver,
    writer: Writer,
    clock: FakeClock,
    manifest: Manifest,
    engine: Engine,
) -> None:
    # ro-safernet moved nl-eokm's report (decided to ro-safernet) to de-eco.
    kit = make_kit(holder="ro-safernet", to=HOLDER, country="DE")
    clock.set(T0 + timedelta(minutes=12))
    sealed = seal_batch(
        [kit.payload()],
        sender="ro-safernet",
        recipient=HOLDER,
        kind=KIND_TRANSFER,
        signed_at=T0 + timedelta(minutes=11),
    )
    receiver.receive(sealed.to_proto())
    (case_id,) = [r.to_case for r in rows(engine, "SELECT to_case FROM case_transfers")]
    work = case_work(manifest, writer, clock)
    before = table_counts(engine)
    with pytest.raises(TransitionRefused) as info:
        work.act(case_id, [], MOVED)
    assert "came to this node by an earlier move" in info.value.message
    assert table_counts(engine) == before


def test_a_transfer_beyond_one_payload_is_refused_with_the_move(
    receiver: Receiver,
    writer: Writer,
    clock: FakeClock,
    manifest: Manifest,
    engine: Engine,
) -> None:
    rid, cid = held_case(receiver, clock)
    work = case_work(manifest, writer, clock, max_bytes=600)
    before = table_counts(engine)
    with pytest.raises(TransitionRefused) as info:
        work.act(cid, [], MOVED)
    assert f"the transfer of report {rid} would be" in info.value.message
    assert table_counts(engine) == before


def test_a_move_within_the_holders_own_countries_sends_nothing(
    receiver: Receiver,
    writer: Writer,
    clock: FakeClock,
    manifest: Manifest,
    engine: Engine,
) -> None:
    _, cid = held_case(receiver, clock)
    work = case_work(manifest, writer, clock)
    work.act(cid, [], Action(ActionKind.MOVED, moved_to_country="DE"))
    assert rows(engine, "SELECT kind FROM outbox WHERE kind = 'transfer'") == []
    assert rows(engine, "SELECT stage FROM item_states")[0].stage == "moved"


def test_a_move_inside_the_schedulers_transaction_queues_its_transfer_untraced(
    receiver: Receiver,
    writer: Writer,
    clock: FakeClock,
    manifest: Manifest,
    engine: Engine,
) -> None:
    rid, cid = held_case(receiver, clock)
    traced: list[str] = []

    def retrace(case_id: str) -> Trace | None:
        traced.append(case_id)
        return None

    work = CaseWork(
        self_member=HOLDER,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        recorder=Recorder(self_member=HOLDER),
        transfers=Outgoing(self_member=HOLDER),
        retrace=retrace,
    )
    (moved,) = writer.execute(lambda tx: work.run_in(tx, [Command.act(cid, [], MOVED)]))
    assert not isinstance(moved, Exception)
    assert traced == []  # no DNS inside the writer's transaction
    (queued,) = rows(engine, "SELECT report_id, payload FROM outbox WHERE kind = 'transfer'")
    assert queued.report_id == rid
    carried = transfer_from_bytes(queued.payload)
    assert carried.moved == moved
    assert carried.trace is None
    # Outside a transaction the same move would have been traced first.
    _, other = held_case(receiver, clock, "/traced.jpg", sequence=2)
    work.act(other, [], MOVED)
    assert traced == [other]
