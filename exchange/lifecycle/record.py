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

Steps are recorded many at a time (a group of analysts' commands, an envelope's events) with
one statement per table: a few statements per group instead of a dozen per event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from exchange.domain import LogKind
from exchange.lifecycle.model import (
    Action,
    Assessment,
    CaseEvent,
    EventKind,
    ItemState,
    TakeOver,
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
    EventKind.TAKEN_OVER: LogKind.TAKEN_OVER,
}


@dataclass(frozen=True, slots=True)
class Carrier:
    """The envelope a received event came in (so it stays verifiable on its own)."""

    sender: str
    sequence: int
    leaf_index: int
    proof: bytes


@dataclass(frozen=True, slots=True)
class Step:
    """One event to record with the new states of the items it names; made here: the members
    it goes to; received: the bytes it came as and the envelope that carried it."""

    event: CaseEvent
    states: tuple[ItemState, ...]
    recipients: tuple[str, ...] = ()
    payload: bytes = b""
    carrier: Carrier | None = None


class Recorder:
    """Writes lifecycle steps; ``wake`` takes the members whose senders have work after COMMIT,
    ``changed`` tells WatchCases streams that the feed grew.

    Many steps are written at once (``own_many``, ``received_many``) with one statement per
    table, not per event: the states a step names are written once each (the last step's), and
    each case touched is re-read once to decide whether it closed.
    """

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
        self.own_many(tx, [Step(event, tuple(states), tuple(recipients))], now)

    def own_many(
        self,
        tx: Tx,
        steps: Sequence[Step],
        now: datetime,
        cases: Mapping[str, Collection[ItemState]] | None = None,
    ) -> None:
        """Events made here, in the order made: each queued for its recipients in that order.

        ``cases``: every item state of each case held here that the steps touch, as the steps
        leave them, when the caller has them (the holder's commands do) — nothing is re-read;
        a case the steps touch that is not in ``cases`` is not held here.
        """
        if not steps:
            return
        made = [replace(s, payload=event_to_bytes(s.event)) for s in steps]
        self._store(tx, made, now)
        self._apply_states(tx, made, now, cases)
        queued: list[outbox.Queued] = []
        woken: set[str] = set()
        for step in made:
            event = step.event
            targets = sorted(set(step.recipients) - {self.self_member})
            queued.extend(
                outbox.Queued(m, event.id, step.payload, kind=outbox.EVENT) for m in targets
            )
            woken.update(targets)
            self._log(tx, _LOG_KIND[event.kind], event, step.payload, now, recipients=targets)
        outbox.enqueue(tx.conn, queued, now)
        if woken and self._wake is not None:
            wake = self._wake
            tx.after_commit.append(lambda: wake(woken))

    def catch_up(self, tx: Tx, case_ids: Iterable[str], now: datetime) -> None:
        """Queue the events made here on each case for the members that joined it ``now``."""
        ids = sorted(set(case_ids))
        # The events first, one query for all: most cases of a batch have none made here (one
        # opened now has no history yet), and only those that do need their members' joins.
        past = store.own_events(tx.conn, ids, self.self_member) if ids else {}
        joiners: dict[str, list[str]] = {}
        for case_id, firsts in case_store.first_linked(tx.conn, list(past)).items():
            joined = sorted(m for m, at in firsts.items() if at >= now and m != self.self_member)
            if joined:
                joiners[case_id] = joined
        queued = [
            outbox.Queued(m, eid, payload, kind=outbox.EVENT)
            for case_id, joined in joiners.items()
            for m in joined
            for eid, payload in past[case_id]
        ]
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
        self.received_many(tx, [Step(event, tuple(states), payload=payload, carrier=carrier)], now)

    def received_many(self, tx: Tx, steps: Sequence[Step], now: datetime) -> None:
        """Members' events, verified and allowed, in the order they are applied."""
        if not steps:
            return
        self._store(tx, steps, now)
        # Held by the member that made them (``inbound`` applies nothing else), so not here:
        # none of these cases is ours to close.
        self._apply_states(tx, steps, now, cases={})
        for step in steps:
            self._log(tx, LogKind.EVENT_APPLIED, step.event, step.payload, now)

    # -- parts ----------------------------------------------------------------------------

    def _store(self, tx: Tx, steps: Sequence[Step], now: datetime) -> None:
        store.insert_events(tx.conn, [_stored(s) for s in steps], now)
        if self._changed is not None:
            tx.after_commit.append(self._changed)

    def _apply_states(
        self,
        tx: Tx,
        steps: Sequence[Step],
        now: datetime,
        cases: Mapping[str, Collection[ItemState]] | None = None,
    ) -> None:
        latest: dict[tuple[str, str, int], ItemState] = {}
        for step in steps:
            if step.event.case_id:
                for s in step.states:
                    latest[(step.event.case_id, *s.ref.key)] = s
        if not latest:
            return
        store.save_many_states(tx.conn, [(k[0], s) for k, s in latest.items()], now)
        touched = {k[0] for k in latest}
        items: Mapping[str, Collection[ItemState]]
        if cases is not None:
            held, items = sorted(touched & cases.keys()), cases
        else:
            # A case held elsewhere: its holder decides when it closes.
            held = sorted(case_store.held_ids(tx.conn, sorted(touched)))
            items = store.states(tx.conn, held) if held else {}
        if not held:
            return
        case_store.set_many_closed(tx.conn, {c: case_closed(items.get(c, [])) for c in held}, now)
        partners.reoffer(tx.conn, held)

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


def _stored(step: Step) -> StoredEvent:
    event, carrier = step.event, step.carrier
    return StoredEvent(
        id=event.id,
        case_id=event.case_id,
        member=event.member,
        sequence=event.sequence,
        at=event.at,
        kind=str(event.kind),
        payload=step.payload,
        report_id=_report_of(event),
        sender=carrier.sender if carrier else None,
        envelope_sequence=carrier.sequence if carrier else None,
        leaf_index=carrier.leaf_index if carrier else None,
        proof=carrier.proof if carrier else None,
    )


def _report_of(event: CaseEvent) -> str | None:
    if event.kind in (EventKind.WITHDRAWAL, EventKind.WITHDRAWN, EventKind.TAKEN_OVER):
        return event.items[0].report_id
    return None


def _step(event: CaseEvent) -> str:
    body = event.body
    if isinstance(body, Assessment):
        return f"assessed {body.classification}"
    if isinstance(body, Action):
        return f"{body.kind}" + (f" ({body.reason})" if body.reason else "")
    if isinstance(body, TakeOver):
        return f"taken over from {body.from_member} ({body.country})"
    return f"{event.kind} ({body.reason})"
