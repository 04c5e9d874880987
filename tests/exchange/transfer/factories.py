"""Factories for the transfer tests: a report, the origin's envelope it came in, and its move.

By default nl-eokm's two-item report of a DE-hosted URL reached de-eco as leaf 1 of a signed
envelope (sealed at ``T0``); de-eco assessed it and moves both items to the US (us-ncmec) at
``T0 + 10 min``. ``transfer()`` gives that move as the new holder decodes it, and
``transfer_payload()`` the bytes de-eco sends; every part can be replaced to build the
inconsistent transfers a receiver must refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from auth import merkle
from exchange.domain import Classification, Report, case_id_for
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    ItemRef,
    event_id_for,
)
from exchange.wire.transfer_codec import (
    OriginEvidence,
    ReceivedTransfer,
    transfer_bytes,
    transfer_message,
)
from tests.exchange.factories import T0, make_report, report_wire, seal_batch, url_in

ORIGIN, HOLDER, NEW = "nl-eokm", "de-eco", "us-ncmec"
RECEIVED_AT = T0 - timedelta(minutes=5)
MOVED_AT = T0 + timedelta(minutes=10)


def origin_envelope(
    wire: bytes, *, sender: str = ORIGIN, recipient: str = HOLDER
) -> OriginEvidence:
    """``wire`` as leaf 1 of an envelope ``sender`` sealed for ``recipient`` at T0."""
    payloads = [report_wire(make_report(origin=sender, hashes=["other-leaf"])), wire]
    sealed = seal_batch(payloads, sender=sender, recipient=recipient, signed_at=T0)
    _, proofs = merkle.root_and_proofs(payloads)
    return OriginEvidence(sealed.header, sealed.signature, 1, merkle.encode_proof(proofs[1]))


@dataclass(frozen=True)
class Kit:
    """A report, its origin's evidence and the holder's steps on it."""

    report: Report
    wire: bytes
    origin: OriginEvidence | None
    holder: str = HOLDER
    country: str = "US"
    to: str = NEW
    history: tuple[CaseEvent, ...] = field(default=())

    @property
    def evidence(self) -> OriginEvidence:
        """The origin's evidence (the default kit has it: the holder is not the origin)."""
        assert self.origin is not None
        return self.origin

    @property
    def case_id(self) -> str:
        """The case the holder opened for the report (at ``T0``)."""
        return case_id_for(self.report.id, T0)

    def refs(self, *indexes: int) -> tuple[ItemRef, ...]:
        chosen = indexes or tuple(range(len(self.report.items)))
        return tuple(
            ItemRef(
                self.report.id,
                i,
                self.report.origin_member,
                self.report.items[i].classification,
                T0,
            )
            for i in chosen
        )

    def assessed(self, sequence: int = 1) -> CaseEvent:
        return CaseEvent(
            id=event_id_for(self.holder, self.case_id, sequence),
            case_id=self.case_id,
            member=self.holder,
            sequence=sequence,
            at=T0 + timedelta(minutes=1),
            items=self.refs(),
            kind=EventKind.ASSESSMENT,
            body=Assessment(Classification.BASELINE),
        )

    def moved(
        self, *, sequence: int = 2, member: str | None = None, **changes: object
    ) -> CaseEvent:
        maker = member or self.holder
        event = CaseEvent(
            id=event_id_for(maker, self.case_id, sequence),
            case_id=self.case_id,
            member=maker,
            sequence=sequence,
            at=MOVED_AT,
            items=self.refs(),
            kind=EventKind.ACTION,
            body=Action(ActionKind.MOVED, moved_to_country=self.country, moved_to_member=self.to),
        )
        return replace(event, **changes) if changes else event  # type: ignore[arg-type]

    def transfer(self, moved: CaseEvent | None = None, **changes: object) -> ReceivedTransfer:
        t = ReceivedTransfer(
            moved=moved or self.moved(),
            trace=None,
            report=self.wire,
            origin=self.origin,
            history=self.history or (self.assessed(),),
            history_omitted=0,
        )
        return replace(t, **changes) if changes else t  # type: ignore[arg-type]

    def payload(self, t: ReceivedTransfer | None = None) -> bytes:
        t = t or self.transfer()
        msg = transfer_message(
            moved=t.moved,
            trace=None,
            report=t.report,
            origin=t.origin,
            history=t.history,
            history_omitted=t.history_omitted,
        )
        if t.trace is not None:
            msg.trace.CopyFrom(t.trace)
        return transfer_bytes(msg)


def make_kit(
    *,
    origin: str = ORIGIN,
    holder: str = HOLDER,
    hashes: Sequence[str] = ("moved-0", "moved-1"),
    path: str = "/moved.jpg",
    country: str = "US",
    to: str = NEW,
) -> Kit:
    report = make_report(
        origin=origin,
        decision_member=holder,
        url=url_in("DE", path),
        hashes=list(hashes),
        received_at=RECEIVED_AT,
    )
    wire = report_wire(report)
    evidence = None if origin == holder else origin_envelope(wire, sender=origin, recipient=holder)
    return Kit(report, wire, evidence, holder, country, to)
