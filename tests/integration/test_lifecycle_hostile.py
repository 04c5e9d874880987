"""Hostile members and case events: valid signatures, forged content, over real gRPC.

A signature proves who sent an envelope, never that its content is sane or that its signer may
say it (DESIGN.md, "Trust between members"). Here members' real keys — de-eco's, which holds
the case, and us-ncmec's, which holds nothing of it — sign CASE_EVENT envelopes built by hand
and delivered straight to nl-eokm (the case's origin), the coordinator or de-eco. Each forged
event must come back rejected in the signed receipt (verified here against the manifest) with
the reason that names what is wrong, and leave nothing stored: no event, no item state, no
outbox row, no withdrawal (the routing log records the refusal, nothing else moves). Replays of
a genuine event are acknowledged and applied once. Afterwards the real de-eco's next step still
reaches nl-eokm and the coordinator, in order: the forgeries took no one's place.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from exchange.domain import Classification, Outcome, case_id_for
from exchange.lifecycle.model import (
    MAX_ITEMS_PER_EVENT,
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    ItemRef,
    Stage,
    Withdrawal,
    WithdrawalReason,
    event_id_for,
)
from exchange.wire.case_codec import event_to_bytes
from exchange.wire.envelope import KIND_EVENT, Receipt, open_receipt, seal
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.exchange.factories import FakeClock, length_delimited, make_submission, url_in
from tests.integration.case_flow import (
    deliver,
    quiet,
    snapshot,
    status,
    stored_events,
    wait_for_events,
)
from tests.integration.partner_cluster import stop_senders
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, provision, wait_until

pytestmark = pytest.mark.timeout(60)

BASELINE = Assessment(Classification.BASELINE, analyst_ref="an-1")


class Forger:
    """Members' real keys in hostile hands: envelopes sealed by hand, sent with Deliver."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.channels: dict[str, grpc.Channel] = {}
        self.sequences = itertools.count(7_000_000)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def _stub(self, member: str) -> xgrpc.ExchangeStub:
        if member not in self.channels:
            self.channels[member] = grpc.insecure_channel(self.cluster.address(member))
        return xgrpc.ExchangeStub(self.channels[member])

    def deliver(
        self, signer: str, to: str, payloads: list[bytes], sequence: int | None = None
    ) -> tuple[Receipt, xpb.SignedReceipt]:
        """Seal ``payloads`` as ``signer`` with its real key; the receipt, verified."""
        node = self.cluster.node(to)
        manifest = node.manifests.current()
        seq = sequence if sequence is not None else next(self.sequences)
        sealed = seal(
            self.cluster.fed.keys[signer],
            sender=signer,
            recipient=to,
            sequence=seq,
            kind=KIND_EVENT,
            payloads=payloads,
            signed_at=datetime.now(UTC),
            manifest_epoch=manifest.epoch,
        )
        signed = self._stub(to).Deliver(sealed.to_proto(), timeout=20)
        receipt = open_receipt(
            signed,
            manifest=manifest,
            issuer=to,
            sender=signer,
            sequence=seq,
            root=sealed.root,
            count=len(payloads),
            kind=KIND_EVENT,
        )
        return receipt, signed

    def refused(self, signer: str, to: str, payload: bytes) -> str:
        """One payload, which must come back rejected in the signed receipt: the reason."""
        receipt, _ = self.deliver(signer, to, [payload])
        (result,) = receipt.results
        assert result.outcome is Outcome.REJECTED, result
        return result.reason


@dataclass(frozen=True)
class Scene:
    """nl-eokm's two-item report in de-eco's case; de-eco assessed item 0 (event 1)."""

    report_id: str
    case_id: str
    first: CaseEvent
    first_payload: bytes

    def ref(self, index: int, **changes: Any) -> ItemRef:
        held = self.first.items[0]
        return replace(held, index=index, **changes)

    def event(
        self,
        *,
        member: str = DE,
        sequence: int = 2,
        items: tuple[ItemRef, ...] | None = None,
        body: Assessment | Action | Withdrawal = BASELINE,
        kind: EventKind = EventKind.ASSESSMENT,
        at: datetime | None = None,
        case_id: str | None = None,
        event_id: str | None = None,
    ) -> CaseEvent:
        """A well-formed event of the case (by default: de-eco's next, assessing item 1)."""
        case = self.case_id if case_id is None else case_id
        return CaseEvent(
            id=event_id or event_id_for(member, case, sequence),
            case_id=case,
            member=member,
            sequence=sequence,
            at=at or datetime.now(UTC),
            items=items if items is not None else (self.ref(1),),
            kind=kind,
            body=body,
        )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(provision(tmp_path_factory.mktemp("lifecycle-hostile")))
    try:
        cluster.start(NL, DE, US, COORDINATOR)
        yield cluster
    finally:
        stop_senders(cluster)
        cluster.close()


@pytest.fixture(scope="module")
def scene(net: Cluster) -> Scene:
    rid, cid = deliver(
        net, NL, make_submission(url_in("DE", "/hostile/case.jpg"), hashes=["hc-0", "hc-1"])
    )
    first = net.node(DE).case_work.assess(cid, [(rid, 0)], BASELINE)
    for member in (NL, COORDINATOR):
        wait_for_events(net, member, cid, [first])
    payload = net.scalar(DE, "SELECT payload FROM case_events WHERE id = :e", e=first.id)
    return Scene(rid, cid, first, bytes(payload))


@pytest.fixture(scope="module")
def forger(net: Cluster) -> Iterator[Forger]:
    f = Forger(net)
    yield f
    f.close()


def stored(cluster: Cluster, member: str) -> dict[str, Any]:
    """What a refused event must leave on ``member`` (the log records the refusal)."""
    out = snapshot(cluster, member)
    del out["routing_log"]
    return out


# (signer, receiver, the forged payload, the reason's code)
Forgery = Callable[[Scene], tuple[str, str, bytes, str]]


def _bytes(e: CaseEvent) -> bytes:
    return event_to_bytes(e)


FORGERIES: dict[str, Forgery] = {
    # us-ncmec signs an event it says de-eco made.
    "made by another member than the signer": lambda s: (
        US,
        NL,
        _bytes(s.event()),
        "origin-mismatch",
    ),
    "id not implied by its sequence": lambda s: (
        DE,
        NL,
        _bytes(s.event(event_id=event_id_for(DE, s.case_id, 3))),
        "event-id-mismatch",
    ),
    "id of another case": lambda s: (
        DE,
        NL,
        _bytes(s.event(event_id=event_id_for(DE, "c-" + "0" * 32, 2))),
        "event-id-mismatch",
    ),
    "time after the envelope was signed": lambda s: (
        DE,
        NL,
        _bytes(s.event(at=datetime.now(UTC) + timedelta(days=1))),
        "event-time-range",
    ),
    "time before the network existed": lambda s: (
        DE,
        NL,
        _bytes(s.event(at=datetime(2001, 1, 1, tzinfo=UTC))),
        "event-time-range",
    ),
    "a step backdated before the item's clock started": lambda s: (
        DE,
        NL,
        _bytes(s.event(at=s.first.items[0].clock_started - timedelta(milliseconds=1))),  # type: ignore[operator]
        "transition-refused",
    ),
    "an item's clock started after the envelope was signed": lambda s: (
        DE,
        NL,
        _bytes(s.event(items=(s.ref(1, clock_started=datetime.now(UTC) + timedelta(days=1)),))),
        "event-time-range",
    ),
    "unknown protobuf field": lambda s: (
        DE,
        NL,
        _bytes(s.event()) + length_delimited(99, b"\xff\xd8\xff\xe0" + bytes(4000)),
        "unknown-field",
    ),
    "not the holder, to the origin": lambda s: (
        US,
        NL,
        _bytes(s.event(member=US, sequence=1)),
        "not-assigned",
    ),
    "not the holder, to the coordinator": lambda s: (
        US,
        COORDINATOR,
        _bytes(s.event(member=US, sequence=1)),
        "not-assigned",
    ),
    "a case the origin never reported": lambda s: (
        US,
        NL,
        _bytes(
            s.event(
                member=US,
                sequence=1,
                case_id="c-" + secrets.token_hex(16),
                items=(ItemRef("r-" + secrets.token_hex(16), 0, US),),
            )
        ),
        "not-assigned",
    ),
    "withdrawing another origin's report": lambda s: (
        US,
        DE,
        _bytes(
            CaseEvent(
                id=event_id_for(US, s.report_id, 1),
                case_id="",
                member=US,
                sequence=1,
                at=datetime.now(UTC),
                items=(s.ref(0), s.ref(1)),
                kind=EventKind.WITHDRAWAL,
                body=Withdrawal(WithdrawalReason.MISREPORT),
            )
        ),
        "not-assigned",
    ),
    "an item of a report the origin never sent": lambda s: (
        DE,
        NL,
        _bytes(s.event(items=(s.ref(0, report_id="r-" + secrets.token_hex(16)),))),
        "invalid-event",
    ),
    "an item beyond the report's items": lambda s: (
        DE,
        NL,
        _bytes(s.event(items=(s.ref(5),))),
        "invalid-event",
    ),
    "the origin's item with another classification": lambda s: (
        DE,
        NL,
        _bytes(s.event(items=(s.ref(1, origin_classification=Classification.NATIONAL),))),
        "invalid-event",
    ),
    "the origin's item claimed as another origin's": lambda s: (
        DE,
        NL,
        _bytes(s.event(items=(s.ref(1, origin_member=""),))),
        "invalid-event",
    ),
    "the origin's report withdrawn without its request": lambda s: (
        DE,
        NL,
        _bytes(
            s.event(
                items=(s.ref(1),),
                kind=EventKind.WITHDRAWN,
                body=Withdrawal(WithdrawalReason.MISREPORT),
            )
        ),
        "not-assigned",
    ),
    "an action carrying a field its kind does not take": lambda s: (
        DE,
        NL,
        _bytes(
            s.event(
                body=Action(ActionKind.REMOVED, recipient="a name, perhaps"),
                kind=EventKind.ACTION,
            )
        ),
        "invalid-event",
    ),
    "an oversized item list": lambda s: (
        DE,
        NL,
        _bytes(
            s.event(
                items=tuple(
                    ItemRef("r-" + secrets.token_hex(16), 0, US)
                    for _ in range(MAX_ITEMS_PER_EVENT + 1)
                )
            )
        ),
        "invalid-event",
    ),
    "out of order": lambda s: (
        DE,
        NL,
        _bytes(s.event(sequence=3)),
        "transition-refused",
    ),
    "a step the holder's own rules forbid": lambda s: (
        DE,
        NL,
        _bytes(s.event(body=Action(ActionKind.REMOVED), kind=EventKind.ACTION)),
        "transition-refused",
    ),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_event_is_refused_in_the_receipt_with_nothing_stored(
    net: Cluster, scene: Scene, forger: Forger, forgery: str
) -> None:
    signer, to, payload, code = FORGERIES[forgery](scene)
    quiet(net)
    before = stored(net, to)
    reason = forger.refused(signer, to, payload)
    assert reason.startswith(f"{code}: "), reason
    quiet(net)
    assert stored(net, to) == before
    info = xgrpc.ExchangeStub(forger.channels[to]).GetNodeInfo(xpb.NodeInfoRequest(), timeout=5)
    assert info.member == to


def test_replays_of_a_genuine_event_are_applied_once(
    net: Cluster, scene: Scene, forger: Forger
) -> None:
    quiet(net)
    before = stored(net, NL)
    # de-eco's own event 1 again, in an envelope of its own and next to a forgery: acknowledged,
    # not applied twice; the forgery beside it is refused on its own.
    forged = event_to_bytes(scene.event(sequence=3))
    receipt, signed = forger.deliver(DE, NL, [scene.first_payload, forged])
    assert [r.outcome for r in receipt.results] == [Outcome.ACCEPTED, Outcome.REJECTED]
    assert receipt.results[0].report_id == scene.first.id
    # The same envelope again (same sequence): the very receipt it got, byte for byte.
    again, signed_again = forger.deliver(
        DE, NL, [scene.first_payload, forged], sequence=receipt.sequence
    )
    assert signed_again == signed
    assert again.results == receipt.results
    quiet(net)
    assert stored(net, NL) == before
    assert net.count(NL, "case_events", "id = :e", e=scene.first.id) == 1


def test_the_holder_keeps_its_place_after_the_forgeries(
    net: Cluster, scene: Scene, forger: Forger
) -> None:
    # Run last: every forged "event 2" above was refused, so de-eco's real event 2 is applied.
    for forge in FORGERIES.values():
        signer, to, payload, _ = forge(scene)
        forger.refused(signer, to, payload)
    second = net.node(DE).case_work.act(
        scene.case_id, [(scene.report_id, 0)], Action(ActionKind.REPORTED_TO_LEA, partner="bka")
    )
    assert second.sequence == 2
    for member in (NL, COORDINATOR):
        wait_for_events(net, member, scene.case_id, [scene.first, second])
    seen = status(net, NL, scene.report_id)
    assert [i.stage for i in seen.items] == [Stage.ACTIONED, Stage.UNASSESSED]
    assert not seen.withdrawn
    assert (
        net.scalar(DE, "SELECT withdrawn_at FROM reports WHERE id = :r", r=scene.report_id) is None
    )


def test_events_ahead_of_the_receipt(net: Cluster, forger: Forger) -> None:
    """A holder's first steps may overtake the receipt that tells the origin the case (a merged
    case's history is sent when the report joins it; an analyst may act at once). One naming
    our report's item is taken at once: the report went to its maker. One naming only another
    origin's item cannot be placed yet: the envelope is refused as not yet (UNAVAILABLE,
    nothing stored) and taken when it comes again, once the case is known."""
    net.stop(US)
    # us-ncmec comes back on a clock held still, so the case it will open is known now.
    opening = FakeClock(datetime.now(UTC))
    try:
        (answer,) = net.submit(NL, [make_submission(url_in("US", "/hostile/ahead.jpg"))])
        rid = answer.report_id
        case_id = case_id_for(rid, opening())  # the case us-ncmec will open for it

        def event(sequence: int, item: ItemRef) -> bytes:
            return event_to_bytes(
                CaseEvent(
                    id=event_id_for(US, case_id, sequence),
                    case_id=case_id,
                    member=US,
                    sequence=sequence,
                    at=datetime.now(UTC),
                    items=(item,),
                    kind=EventKind.ASSESSMENT,
                    body=BASELINE,
                )
            )

        theirs = event(2, ItemRef("r-" + secrets.token_hex(16), 0, DE, Classification.BASELINE))
        before = stored(net, NL)
        sequence = next(forger.sequences)
        with pytest.raises(grpc.RpcError) as refused:
            forger.deliver(US, NL, [theirs], sequence=sequence)
        error: Any = refused.value
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error.details().startswith("not-yet: ")
        assert stored(net, NL) == before

        ours = event(1, ItemRef(rid, 0, NL, Classification.BASELINE))
        receipt, _ = forger.deliver(US, NL, [ours])
        assert [r.outcome for r in receipt.results] == [Outcome.ACCEPTED]
        receipt, _ = forger.deliver(US, NL, [theirs], sequence=sequence)
        assert [r.outcome for r in receipt.results] == [Outcome.ACCEPTED]
        assert [e[2] for e in stored_events(net, NL, case_id)] == [1, 2]
    finally:
        net.start(US, clock=opening)
    try:
        views = net.node(NL).case_views
        wait_until(lambda: views.report_status(rid).case_id == case_id, 15, what="the receipt")
    finally:  # the tests after this one see time pass at us-ncmec again
        net.stop(US)
        net.start(US)
