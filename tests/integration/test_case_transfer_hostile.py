"""Hostile case transfers and take-overs over real gRPC: valid signatures, forged content.

A transfer's envelope signature proves who sent it, never that the sender held the case, that
the report inside is the origin's, or that the receiver should take it. Here members' real keys
seal CASE_TRANSFER envelopes built by hand — from the member holding nl-eokm's report (de-eco)
and from one that never held it (us-ncmec) — carrying nl-eokm's genuine report and envelope as
de-eco stored them, or forgeries of them. Each must come back rejected in the signed receipt
(verified here) with the reason naming what is wrong, and leave nothing stored at the receiver:
no case, report, item state, transfer, event or outbox row (the routing log records the
refusal). A genuine transfer sent again is acknowledged with its case and applied once; a
take-over from a member the move did not name is refused by the coordinator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from auth.keys import SigningKey
from exchange.domain import Classification, Outcome
from exchange.lifecycle.inbound import MOVE_WAIT
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    ItemRef,
    TakeOver,
    event_id_for,
    take_over_scope,
)
from exchange.store import transfers
from exchange.wire.case_codec import event_to_bytes
from exchange.wire.envelope import KIND_EVENT, KIND_TRANSFER, Receipt, open_receipt, seal
from exchange.wire.transfer_codec import OriginEvidence, transfer_bytes, transfer_message
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import length_delimited, make_submission, url_in
from tests.integration.case_flow import deliver, quiet, snapshot, wait_for_events
from tests.integration.partner_cluster import stop_senders
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, provision, wait_until

pytestmark = pytest.mark.timeout(90)

BASELINE = Assessment(Classification.BASELINE, analyst_ref="an-9")


class Forger:
    """Members' real keys in hostile hands: envelopes sealed by hand, sent with Deliver."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.channels: dict[str, grpc.Channel] = {}
        self.sequences = itertools.count(8_000_000)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def deliver(
        self, signer: str, to: str, payloads: list[bytes], *, kind: int = KIND_TRANSFER
    ) -> Receipt:
        if to not in self.channels:
            self.channels[to] = grpc.insecure_channel(self.cluster.address(to))
        manifest = self.cluster.node(to).manifests.current()
        seq = next(self.sequences)
        sealed = seal(
            self.cluster.fed.keys[signer],
            sender=signer,
            recipient=to,
            sequence=seq,
            kind=kind,
            payloads=payloads,
            signed_at=datetime.now(UTC),
            manifest_epoch=manifest.epoch,
        )
        signed = xgrpc.ExchangeStub(self.channels[to]).Deliver(sealed.to_proto(), timeout=20)
        return open_receipt(
            signed,
            manifest=manifest,
            issuer=to,
            sender=signer,
            sequence=seq,
            root=sealed.root,
            count=len(payloads),
            kind=kind,
        )

    def refused(self, signer: str, to: str, payload: bytes, kind: int = KIND_TRANSFER) -> str:
        (result,) = self.deliver(signer, to, [payload], kind=kind).results
        assert result.outcome is Outcome.REJECTED, result
        return result.reason


@dataclass(frozen=True)
class Scene:
    """nl-eokm's two-item report in de-eco's case, assessed, with what de-eco stored of it."""

    report_id: str
    case_id: str
    carried: transfers.CarriedReport
    refs: tuple[ItemRef, ...]
    holder_key: SigningKey

    @property
    def origin(self) -> OriginEvidence:
        c = self.carried
        assert c.header is not None
        assert c.signature is not None
        assert c.leaf_index is not None
        return OriginEvidence(c.header, c.signature, c.leaf_index, c.proof or b"")

    def move(
        self,
        *,
        member: str = DE,
        country: str = "US",
        to: str = US,
        refs: tuple[ItemRef, ...] | None = None,
        case_id: str | None = None,
    ) -> CaseEvent:
        case = case_id or self.case_id
        return CaseEvent(
            id=event_id_for(member, case, 2),
            case_id=case,
            member=member,
            sequence=2,
            at=datetime.now(UTC),
            items=refs if refs is not None else self.refs,
            kind=EventKind.ACTION,
            body=Action(ActionKind.MOVED, moved_to_country=country, moved_to_member=to),
        )

    def transfer(
        self,
        moved: CaseEvent | None = None,
        *,
        report: bytes | None = None,
        origin: OriginEvidence | bool | None = True,
        history: tuple[CaseEvent, ...] = (),
        trace: pb.Trace | None = None,
    ) -> bytes:
        msg = transfer_message(
            moved=moved or self.move(),
            trace=None,
            report=report if report is not None else self.carried.wire,
            origin=self.origin if origin is True else (origin or None),
            history=history,
        )
        if trace is not None:
            msg.trace.CopyFrom(trace)
        return transfer_bytes(msg)


class Ahead:
    """The real time, or later by ``by``: the origin's and the coordinator's clock, moved on to
    see a take-over grown old (the members joined just now: nothing is signed in their past)."""

    def __init__(self) -> None:
        self.by = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.by


AHEAD = Ahead()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(provision(tmp_path_factory.mktemp("transfer-hostile")))
    try:
        cluster.start(DE, US)
        cluster.start(NL, COORDINATOR, clock=AHEAD)
        yield cluster
    finally:
        stop_senders(cluster)
        cluster.close()


@pytest.fixture(scope="module")
def scene(net: Cluster) -> Scene:
    rid, cid = deliver(
        net, NL, make_submission(url_in("DE", "/hostile/moved.jpg"), hashes=["hm-0", "hm-1"])
    )
    first = net.node(DE).case_work.assess(cid, [], BASELINE)
    with net.engine(DE).connect() as conn:
        carried = transfers.carried_reports(conn, [rid])[rid]
    return Scene(rid, cid, carried, first.items, net.fed.keys[DE])


@pytest.fixture(scope="module")
def forger(net: Cluster) -> Iterator[Forger]:
    f = Forger(net)
    yield f
    f.close()


def stored(cluster: Cluster, member: str) -> dict[str, Any]:
    """What a refused transfer must leave on ``member`` (the log records the refusal)."""
    out = snapshot(cluster, member)
    del out["routing_log"]
    out["case_transfers"] = cluster.count(member, "case_transfers")
    out["partner_cases"] = cluster.count(member, "partner_cases")
    return out


def _tampered_report(s: Scene) -> bytes:
    msg = pb.Report.FromString(s.carried.wire)
    msg.notes = "the holder's words, not the origin's"
    return msg.SerializeToString(deterministic=True)


def _header_signed_by_the_holder(s: Scene) -> OriginEvidence:
    """nl-eokm's header as it was, signed again with de-eco's own key."""
    return replace(s.origin, signature=s.holder_key.sign(s.origin.header))


def _special_trace() -> pb.Trace:
    return pb.Trace(
        host="hosting-de.example",
        addresses=[pb.TracedAddress(address="10.1.2.3", country="US")],
        country="US",
    )


# (signer, receiver, the forged payload, the reason's code)
Forgery = Callable[[Scene], tuple[str, str, bytes, str]]

FORGERIES: dict[str, Forgery] = {
    "a member that never held the case passes the report on": lambda s: (
        US,
        NL,
        s.transfer(s.move(member=US, country="NL", to=NL)),
        "not-holder",
    ),
    "the holder changes the origin's report": lambda s: (
        DE,
        US,
        s.transfer(report=_tampered_report(s)),
        "origin-evidence",
    ),
    "the origin's envelope with a signature that is not the origin's": lambda s: (
        DE,
        US,
        s.transfer(origin=_header_signed_by_the_holder(s)),
        "origin-evidence",
    ),
    "the report at another leaf of the origin's envelope": lambda s: (
        DE,
        US,
        s.transfer(origin=replace(s.origin, leaf_index=s.origin.leaf_index + 1)),
        "origin-evidence",
    ),
    "no evidence of the origin at all": lambda s: (
        DE,
        US,
        s.transfer(origin=False),
        "origin-evidence",
    ),
    "a country the receiver does not serve": lambda s: (
        DE,
        US,
        s.transfer(s.move(country="NL")),
        "not-responsible",
    ),
    "a move naming another member": lambda s: (
        DE,
        US,
        s.transfer(s.move(country="NL", to=NL)),
        "not-responsible",
    ),
    "a move the signer did not make": lambda s: (
        DE,
        US,
        s.transfer(s.move(member=US)),
        "origin-mismatch",
    ),
    "an item the report does not have": lambda s: (
        DE,
        US,
        s.transfer(s.move(refs=(replace(s.refs[0], index=7),))),
        "transfer-items",
    ),
    "an item with another classification than the origin's": lambda s: (
        DE,
        US,
        s.transfer(
            s.move(refs=(replace(s.refs[0], origin_classification=Classification.NATIONAL),))
        ),
        "transfer-items",
    ),
    "history the signer did not write": lambda s: (
        DE,
        US,
        s.transfer(history=(replace(s.move(member=US), sequence=1),)),
        "transfer-history",
    ),
    "a private address as the new hosting location": lambda s: (
        DE,
        US,
        s.transfer(trace=_special_trace()),
        "transfer-trace",
    ),
    "an unknown protobuf field": lambda s: (
        DE,
        US,
        s.transfer() + length_delimited(99, b"\xff\xd8\xff\xe0" + bytes(2000)),
        "unknown-field",
    ),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_transfer_is_refused_in_the_receipt_with_nothing_stored(
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


@pytest.fixture(scope="module")
def real_move(net: Cluster, scene: Scene) -> tuple[CaseEvent, str, bytes]:
    """de-eco's real move of the case to us-ncmec: the move, the new case and the transfer."""
    move = net.node(DE).case_work.act(
        scene.case_id, [], Action(ActionKind.MOVED, moved_to_country="US")
    )
    rows = wait_until(
        lambda: net.rows(
            US, "SELECT to_case, payload FROM case_transfers WHERE moved_event = :e", e=move.id
        ),
        15,
        what="the transfer at us-ncmec",
    )
    quiet(net)
    return move, rows[0].to_case, bytes(rows[0].payload)


def test_a_genuine_transfer_sent_again_is_taken_once(
    net: Cluster, scene: Scene, forger: Forger, real_move: tuple[CaseEvent, str, bytes]
) -> None:
    _, to_case, payload = real_move
    before = stored(net, US)
    (result,) = forger.deliver(DE, US, [payload]).results
    assert (result.outcome, result.case_id, result.report_id) == (
        Outcome.NEW_CASE,
        to_case,
        scene.report_id,
    )
    quiet(net)
    assert stored(net, US) == before


def test_a_take_over_from_a_member_the_move_did_not_name_is_refused(
    net: Cluster, scene: Scene, forger: Forger, real_move: tuple[CaseEvent, str, bytes]
) -> None:
    move, to_case, _ = real_move
    now = datetime.now(UTC)
    claimed = CaseEvent(
        id=event_id_for(NL, take_over_scope(move.id, scene.report_id), 1),
        case_id="c-" + "7" * 32,
        member=NL,
        sequence=1,
        at=now,
        items=tuple(replace(r, clock_started=now) for r in scene.refs),
        kind=EventKind.TAKEN_OVER,
        body=TakeOver(DE, scene.case_id, move.id, "US"),
    )
    before = stored(net, COORDINATOR)
    reason = forger.refused(NL, COORDINATOR, event_to_bytes(claimed), kind=KIND_EVENT)
    assert reason.startswith("not-assigned: "), reason
    assert "not by de-eco to nl-eokm" in reason
    quiet(net)
    assert stored(net, COORDINATOR) == before
    # The genuine take-over went through: the coordinator follows us-ncmec's case.
    steps = [e for e in net.node(COORDINATOR).case_views.case(to_case).timeline]
    assert [e.kind for e in steps] == [EventKind.TAKEN_OVER]
    assessed = net.node(US).case_work.assess(to_case, [], BASELINE)
    wait_for_events(net, COORDINATOR, to_case, [steps[0], assessed])


def _take_over(scene: Scene, moved_event: str, case_id: str) -> CaseEvent:
    """us-ncmec's take-over of the scene's items from de-eco's case, naming ``moved_event``."""
    now = datetime.now(UTC)
    return CaseEvent(
        id=event_id_for(US, take_over_scope(moved_event, scene.report_id), 1),
        case_id=case_id,
        member=US,
        sequence=1,
        at=now,
        items=tuple(replace(r, clock_started=now) for r in scene.refs),
        kind=EventKind.TAKEN_OVER,
        body=TakeOver(DE, scene.case_id, moved_event, "US"),
    )


@pytest.mark.parametrize("target", [COORDINATOR, NL])
def test_the_member_a_move_named_takes_its_items_over_only_once(
    net: Cluster,
    scene: Scene,
    forger: Forger,
    real_move: tuple[CaseEvent, str, bytes],
    target: str,
) -> None:
    move, to_case, _ = real_move
    quiet(net)
    before = stored(net, target)
    # Naming another event of de-eco's case (its assessment, held everywhere) as the move: a
    # fresh take-over id, but no move — refused, not a second case for the same items.
    assessed = event_id_for(DE, scene.case_id, 1)
    other_event = _take_over(scene, assessed, "c-" + "8" * 32)
    reason = forger.refused(US, target, event_to_bytes(other_event), kind=KIND_EVENT)
    assert reason.startswith("invalid-event: "), reason
    assert f"{assessed} is no move held here by {DE}" in reason
    # The genuine move again, into another case: the take-over's id is held, its content
    # another — refused, not acknowledged.
    again = _take_over(scene, move.id, "c-" + "9" * 32)
    reason = forger.refused(US, target, event_to_bytes(again), kind=KIND_EVENT)
    assert reason.startswith("not-assigned: "), reason
    assert "taken over from" in reason
    quiet(net)
    assert stored(net, target) == before
    states = net.rows(
        target, "SELECT DISTINCT case_id FROM item_states WHERE report_id = :r", r=scene.report_id
    )
    assert sorted(r.case_id for r in states) == sorted([scene.case_id, to_case])


def test_a_take_over_whose_move_never_comes_is_refused_once_it_is_old(
    net: Cluster, forger: Forger, real_move: tuple[CaseEvent, str, bytes]
) -> None:
    _, to_case, _ = real_move
    # de-eco holds another of nl-eokm's reports and never moves it; us-ncmec takes it over (a
    # hostile old holder's transfer it never recorded): the coordinator never sees the move.
    rid, cid = deliver(net, NL, make_submission(url_in("DE", "/hostile/never.jpg"), hashes=["nv"]))
    assessed = net.node(DE).case_work.assess(cid, [], BASELINE)
    quiet(net)
    never = event_id_for(DE, cid, 2)  # the move de-eco would have made: it did not
    now = datetime.now(UTC)
    take_over = event_to_bytes(
        CaseEvent(
            id=event_id_for(US, take_over_scope(never, rid), 1),
            case_id="c-" + "6" * 32,
            member=US,
            sequence=1,
            at=now,
            items=tuple(replace(r, clock_started=now) for r in assessed.items),
            kind=EventKind.TAKEN_OVER,
            body=TakeOver(DE, cid, never, "US"),
        )
    )
    (genuine,) = net.rows(
        COORDINATOR,
        "SELECT payload FROM case_events WHERE case_id = :c AND kind = 'taken_over'",
        c=to_case,
    )
    before = stored(net, COORDINATOR)
    # Young, the move may still be on its way: the whole envelope comes again later.
    with pytest.raises(grpc.RpcError) as info:
        forger.deliver(US, COORDINATOR, [take_over], kind=KIND_EVENT)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    # Past MOVE_WAIT, that take-over alone is refused; the rest of the envelope is answered.
    AHEAD.by = MOVE_WAIT + timedelta(minutes=1)
    try:
        payloads = [take_over, bytes(genuine.payload)]
        first, second = forger.deliver(US, COORDINATOR, payloads, kind=KIND_EVENT).results
    finally:
        AHEAD.by = timedelta(0)
    assert first.outcome is Outcome.REJECTED
    assert first.reason.startswith(f"move-unknown: item {rid}#0: no move by {DE}"), first
    assert second.outcome is Outcome.ACCEPTED
    quiet(net)
    assert stored(net, COORDINATOR) == before


def test_a_move_that_never_comes_does_not_jam_the_new_holders_events(
    net: Cluster, forger: Forger
) -> None:
    # Control: nl-eokm's report of a US-hosted URL, in us-ncmec's case.
    _, control = deliver(net, NL, make_submission(url_in("US", "/hostile/ctl.jpg"), hashes=["ct"]))
    # de-eco sends us-ncmec a genuine-looking transfer of another report (its own signature,
    # nl-eokm's real evidence) but never records the move: nl-eokm and the coordinator never
    # see it, and answer the envelope of us-ncmec's take-over NotYet, each time it comes.
    rid, cid = deliver(net, NL, make_submission(url_in("DE", "/hostile/frozen.jpg"), hashes=["fz"]))
    assessed = net.node(DE).case_work.assess(cid, [], BASELINE)
    quiet(net)
    with net.engine(DE).connect() as conn:
        carried = transfers.carried_reports(conn, [rid])[rid]
    frozen = Scene(rid, cid, carried, assessed.items, net.fed.keys[DE])
    (taken,) = forger.deliver(DE, US, [frozen.transfer()]).results
    assert taken.outcome is Outcome.NEW_CASE
    step = net.node(US).case_work.assess(control, [], BASELINE)
    wait_until(
        lambda: net.rows(
            US,
            "SELECT member FROM peers WHERE member = :m AND last_error LIKE '%not-yet%'",
            m=COORDINATOR,
        ),
        15,
        what="the coordinator answering us-ncmec NotYet",
    )
    # Once the take-over is older than MOVE_WAIT, it alone is refused: us-ncmec's later steps
    # arrive and its outbox drains (before, the take-over came back for ever).
    AHEAD.by = MOVE_WAIT + timedelta(minutes=1)
    try:
        for member in (COORDINATOR, NL):
            wait_for_events(net, member, control, [step], timeout=30)
        quiet(net, timeout=30)
    finally:
        AHEAD.by = timedelta(0)
    assert net.rows(US, "SELECT id FROM cases WHERE id = :c", c=taken.case_id)  # still held
    for member in (COORDINATOR, NL):
        held = net.rows(member, "SELECT id FROM case_events WHERE case_id = :c", c=taken.case_id)
        assert held == [], f"{member} took a take-over of a move it never saw"
