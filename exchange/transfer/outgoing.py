"""The old holder's side of a move: the transfers, built and queued with the ``moved`` event.

When the holder records a ``moved`` action naming another member (``CaseWork``), each report
whose items moved becomes one transfer for that member, built inside the same writer
transaction and queued in the same durable outbox as reports and events (kind ``transfer``):
a move is recorded with its transfers or not at all, and delivered exactly once like anything
else. A transfer carries the move (its items: that report's), the holder's fresh trace, the
report's bytes with the origin's own evidence as stored here, and the holder's earlier steps
on those items (as many of the newest as fit one payload; the rest counted).

Only the member a report was decided to can pass on its origin's evidence: a report that came
here by an earlier move is refused here, with the reason, rather than sent to be refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine

from exchange.domain import LogKind
from exchange.errors import TransferRefused, TransitionRefused
from exchange.lifecycle.model import Action, ActionKind, CaseEvent, ItemRef
from exchange.store import cases as case_store
from exchange.store import outbox, transfers
from exchange.store.writer import Tx
from exchange.wire.envelope import Limits
from exchange.wire.transfer_codec import OriginEvidence, fitted_transfer
from routing.canonical import canonicalize
from routing.trace import Trace, Tracer

MAX_TRANSFER_BYTES = Limits().max_payload_bytes  # what every receiver accepts as one payload


@dataclass(frozen=True, slots=True)
class Part:
    """One report's transfer, ready to queue."""

    destination: str
    moved: CaseEvent
    report_id: str
    items: int
    payload: bytes


def moves_away(body: object, self_member: str) -> bool:
    """A ``moved`` action naming another member: its items go with a transfer."""
    return (
        isinstance(body, Action)
        and body.kind is ActionKind.MOVED
        and bool(body.moved_to_member)
        and body.moved_to_member != self_member
    )


class Outgoing:
    def __init__(
        self,
        *,
        self_member: str,
        wake: Callable[[set[str]], None] | None = None,
        max_bytes: int = MAX_TRANSFER_BYTES,
    ) -> None:
        self._self = self_member
        self._wake = wake
        self._max = max_bytes

    def parts(
        self, tx: Tx, moved: CaseEvent, earlier: Sequence[CaseEvent], trace: Trace | None
    ) -> list[Part]:
        """The transfers of a move about to be recorded; ``earlier``: this holder's steps on
        the case before it. Raises ``TransitionRefused`` (nothing recorded) when one cannot go."""
        body = moved.body
        assert isinstance(body, Action)
        by_report: dict[str, list[ItemRef]] = {}
        for ref in moved.items:
            by_report.setdefault(ref.report_id, []).append(ref)
        carried = transfers.carried_reports(tx.conn, list(by_report))
        out = []
        for report_id, refs in by_report.items():
            c = carried.get(report_id)
            if c is None or c.decision_member != self._self:
                raise TransitionRefused(
                    f"report {report_id} came to this node by an earlier move: only the member "
                    "its origin's report names can pass on the origin's evidence, so its items "
                    "cannot move on from here"
                )
            origin = None
            if c.origin_member != self._self:
                if c.header is None or c.signature is None or c.leaf_index is None:
                    raise TransitionRefused(f"the origin's envelope of {report_id} is not held")
                origin = OriginEvidence(c.header, c.signature, c.leaf_index, c.proof or b"")
            history = [h for e in earlier if (h := _only(e, report_id)) is not None]
            try:
                payload = fitted_transfer(
                    moved=replace(moved, items=tuple(refs)),
                    trace=trace,
                    report=c.wire,
                    origin=origin,
                    history=history,
                    max_bytes=self._max,
                )
            except TransferRefused as error:
                raise TransitionRefused(error.message) from None
            out.append(Part(body.moved_to_member, moved, report_id, len(refs), payload))
        return out

    def queue(self, tx: Tx, parts: Sequence[Part], now: datetime) -> None:
        """Queue the transfers (the move itself is recorded in the same transaction)."""
        if not parts:
            return
        outbox.enqueue(
            tx.conn,
            [outbox.Queued(p.destination, p.report_id, p.payload, outbox.TRANSFER) for p in parts],
            now,
        )
        transfers.record(tx.conn, [_sent(p, self._self, now) for p in parts])
        for p in parts:
            body = p.moved.body
            assert isinstance(body, Action)
            detail = {
                "case": p.moved.case_id,
                "event": p.moved.id,
                "to": p.destination,
                "country": body.moved_to_country,
                "items": p.items,
                "sha256": hashlib.sha256(p.payload).hexdigest(),
            }
            tx.log(
                tx.chain.append(
                    now,
                    LogKind.TRANSFERRED,
                    report_id=p.report_id,
                    member=p.destination,
                    country=body.moved_to_country,
                    detail=detail,
                )
            )
        destinations = {p.destination for p in parts}
        if self._wake is not None:
            wake = self._wake
            tx.after_commit.append(lambda: wake(destinations))


def _only(event: CaseEvent, report_id: str) -> CaseEvent | None:
    """The event as it concerns one report: its items of that report (None: it names none)."""
    refs = tuple(r for r in event.items if r.report_id == report_id)
    return replace(event, items=refs) if refs else None


def _sent(p: Part, self_member: str, now: datetime) -> transfers.Transfer:
    body = p.moved.body
    assert isinstance(body, Action)
    return transfers.Transfer(
        moved_event=p.moved.id,
        report_id=p.report_id,
        role=transfers.SENT,
        from_member=self_member,
        from_case=p.moved.case_id,
        to_member=p.destination,
        to_case=None,
        country=body.moved_to_country,
        moved_at=p.moved.at,
        items=p.items,
        stored_at=now,
    )


def retracer(engine: Engine, tracer: Tracer) -> Callable[[str], Trace | None]:
    """A fresh trace of a held case's URL (outside the writer: DNS must not hold it up)."""

    def trace(case_id: str) -> Trace | None:
        with engine.connect() as conn:
            held = case_store.held(conn, case_id)
        if held is None or not held.url:
            return None
        return tracer.trace(canonicalize(held.url))

    return trace
