"""Recording a lifecycle step in the writer's transaction — shared by every way one happens.

An event made here (an analyst's assessment or action, the holder confirming a withdrawal,
this node withdrawing a report it sent) is stored with its canonical bytes, the items' new
states written, the case closed once all its items are, a routing-log entry appended that
commits to the event's bytes, and the event queued in the durable outbox for every recipient —
all in one transaction, so a step is either wholly recorded and on its way, or not at all.
An event received from a member is stored with the envelope that carried it and logged too.
After COMMIT the senders of the recipients are woken and WatchCases streams notified.

A member whose report joins a case that already has a history gets that history first
(``catch_up``, in the transaction that merged the report): every receiver folds a case's events
from its first, so a late origin must see the assessment before the removal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange.domain import LogKind
from exchange.lifecycle.model import (
    Action,
    Assessment,
    CaseEvent,
    EventKind,
    ItemState,
)
from exchange.lifecycle.rules import case_closed
from exchange.store import cases as case_store
from exchange.store import lifecycle as store
from exchange.store import outbox, partners
from exchange.store.lifecycle import StoredEvent
from exchange.store.writer import Tx
from exchange.wire.case_codec import event_to_bytes

_LOG_KIND = {
    EventKind.ASSESSMENT: LogKind.ASSESSED,
    EventKind.ACTION: LogKind.ACTED,
    EventKind.WITHDRAWAL: LogKind.WITHDRAWAL,
    EventKind.WITHDRAWN: LogKind.WITHDRAWN,
}


@dataclass(frozen=True, slots=True)
class Carrier:
    """The envelope a received event came in (so it stays verifiable on its own)."""

    sender: str
    sequence: int
    leaf_index: int
    proof: bytes


class Recorder:
    """Writes lifecycle steps; ``wake`` takes the members whose senders have work after COMMIT,
    ``changed`` tells WatchCases streams that the feed grew."""

    def __init__(
        self,
        *,
        self_member: str,
        wake: Callable[[set[str]], None] | None = None,
        changed: Callable[[], None] | None = None,
    ) -> None:
        self.self_member = self_member
        self._wake = wake
        self._changed = changed

    def own(
        self,
        tx: Tx,
        event: CaseEvent,
        states: Iterable[ItemState],
        recipients: Iterable[str],
        now: datetime,
    ) -> None:
        """An event made here: stored, states written, logged, queued for ``recipients``."""
        payload = event_to_bytes(event)
        self._store(tx, event, payload, None, now)
        self._apply_states(tx, event, list(states), now)
        targets = sorted(set(recipients) - {self.self_member})
        outbox.enqueue(
            tx.conn,
            [outbox.Queued(m, event.id, payload, kind=outbox.EVENT) for m in targets],
            now,
        )
        self._log(tx, _LOG_KIND[event.kind], event, payload, now, recipients=targets)
        if targets and self._wake is not None:
            wake = self._wake
            tx.after_commit.append(lambda: wake(set(targets)))

    def catch_up(self, tx: Tx, case_ids: Iterable[str], now: datetime) -> None:
        """Queue the events made here on each case for the members that joined it ``now``."""
        ids = sorted(set(case_ids))
        queued: list[outbox.Queued] = []
        for case_id, firsts in case_store.first_linked(tx.conn, ids).items():
            joined = sorted(m for m, at in firsts.items() if at >= now and m != self.self_member)
            if not joined:
                continue
            past = store.own_events(tx.conn, case_id, self.self_member)
            queued.extend(
                outbox.Queued(m, eid, payload, kind=outbox.EVENT)
                for m in joined
                for eid, payload in past
            )
        outbox.enqueue(tx.conn, queued, now)
        members = {q.destination for q in queued}
        if members and self._wake is not None:
            wake = self._wake
            tx.after_commit.append(lambda: wake(members))

    def received(
        self,
        tx: Tx,
        event: CaseEvent,
        payload: bytes,
        states: Iterable[ItemState],
        carrier: Carrier,
        now: datetime,
    ) -> None:
        """A member's event, verified and allowed: stored with its envelope, states written."""
        self._store(tx, event, payload, carrier, now)
        self._apply_states(tx, event, list(states), now)
        self._log(tx, LogKind.EVENT_APPLIED, event, payload, now)

    # -- parts ----------------------------------------------------------------------------

    def _store(
        self, tx: Tx, event: CaseEvent, payload: bytes, carrier: Carrier | None, now: datetime
    ) -> None:
        store.insert_events(
            tx.conn,
            [
                StoredEvent(
                    id=event.id,
                    case_id=event.case_id,
                    member=event.member,
                    sequence=event.sequence,
                    at=event.at,
                    kind=str(event.kind),
                    payload=payload,
                    report_id=_report_of(event),
                    sender=carrier.sender if carrier else None,
                    envelope_sequence=carrier.sequence if carrier else None,
                    leaf_index=carrier.leaf_index if carrier else None,
                    proof=carrier.proof if carrier else None,
                )
            ],
            now,
        )
        if self._changed is not None:
            tx.after_commit.append(self._changed)

    def _apply_states(
        self, tx: Tx, event: CaseEvent, states: Sequence[ItemState], now: datetime
    ) -> None:
        if not states or not event.case_id:
            return
        store.save_states(tx.conn, event.case_id, states, now)
        if case_store.held(tx.conn, event.case_id) is None:
            return  # a case held elsewhere: its holder decides when it closes
        all_items = store.states(tx.conn, [event.case_id]).get(event.case_id, [])
        case_store.set_closed(tx.conn, event.case_id, case_closed(all_items), now)
        partners.reoffer(tx.conn, [event.case_id])

    def _log(
        self,
        tx: Tx,
        kind: LogKind,
        event: CaseEvent,
        payload: bytes,
        now: datetime,
        recipients: Sequence[str] = (),
    ) -> None:
        reports = {r.report_id for r in event.items}
        detail: dict[str, object] = {
            "case": event.case_id,
            "event": event.id,
            "sequence": event.sequence,
            "items": len(event.items),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "step": _step(event),
        }
        if recipients:
            detail["to"] = list(recipients)
        tx.log(
            tx.chain.append(
                now,
                kind,
                report_id=next(iter(reports)) if len(reports) == 1 else None,
                member=event.member,
                detail=detail,
            )
        )


def _report_of(event: CaseEvent) -> str | None:
    if event.kind in (EventKind.WITHDRAWAL, EventKind.WITHDRAWN):
        return event.items[0].report_id
    return None


def _step(event: CaseEvent) -> str:
    body = event.body
    if isinstance(body, Assessment):
        return f"assessed {body.classification}"
    if isinstance(body, Action):
        return f"{body.kind}" + (f" ({body.reason})" if body.reason else "")
    return f"{event.kind} ({body.reason})"
