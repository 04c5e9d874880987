"""Members' lifecycle events arriving in envelopes: checked, then applied exactly once.

A signature proves who made an event, not that the maker may make it. Before the writer,
each payload must decode to a sane event (``case_codec``), be made by the envelope's signer,
carry the id its (member, scope, sequence) imply, and state a time in the signer's window.
In the writer, the event is applied only from the member entitled to it:

* a withdrawal only from the origin of a report in a case held here (the holder's side then
  runs: ``CaseWork.withdraw_at_holder``);
* any other event only from the member that holds the case — as this node knows it: the
  destination our report was delivered to (we are an origin), or the member that first told
  us of the case (we are the coordinator, who holds no report of it). Anyone else:
  ``not-assigned``, in the receipt.

An event id already held is acknowledged again and changes nothing (exactly once). The events
are checked in order against the states in memory — each sees what the ones before it did —
and those allowed are written together (one statement per table for the envelope), so one
refused by the rules (``transition-refused``: the holder sent a step its own rules forbid)
leaves nothing behind and the envelope's other events applied. A withdrawal runs on its own,
in its own savepoint, after what came before it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from auth.manifest import Manifest
from exchange.domain import Outcome, PayloadResult
from exchange.errors import ExchangeError, NotAssigned, NotFound, error_code, error_message
from exchange.lifecycle import rules
from exchange.lifecycle.model import (
    CaseEvent,
    EventKind,
    ItemState,
    Withdrawal,
    event_id_for,
)
from exchange.lifecycle.record import Carrier, Recorder, Step
from exchange.lifecycle.work import CaseWork
from exchange.store import lifecycle as store
from exchange.store import outbox, reports
from exchange.store.writer import Tx
from exchange.time_window import TimeWindow
from exchange.wire.case_codec import event_from_bytes


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An event that passed the checks outside the writer, with where it sat in its envelope."""

    index: int
    event: CaseEvent
    payload: bytes
    carrier: Carrier


class Inbound:
    def __init__(
        self,
        *,
        self_member: str,
        manifest: Callable[[], Manifest],
        work: CaseWork,
        recorder: Recorder,
    ) -> None:
        self._self = self_member
        self._manifest = manifest
        self._work = work
        self._recorder = recorder

    def check(
        self,
        index: int,
        payload: bytes,
        *,
        sender: str,
        sequence: int,
        proof: bytes,
        window: TimeWindow,
    ) -> CheckedEvent | PayloadResult:
        try:
            event = event_from_bytes(payload)
        except ExchangeError as error:
            return _reject(index, "", error.code, error.message)
        if event.member != sender:
            return _reject(index, event.id, "origin-mismatch", "event made by another member")
        scope = event.items[0].report_id if event.kind is EventKind.WITHDRAWAL else event.case_id
        if event_id_for(event.member, scope, event.sequence) != event.id:
            return _reject(index, event.id, "event-id-mismatch", "id does not match contents")
        if event.kind is EventKind.WITHDRAWAL and (
            event.sequence != 1 or len({r.report_id for r in event.items}) != 1
        ):
            return _reject(index, event.id, "invalid-event", "one withdrawal per report")
        problem = window.problem(event.at, "at")
        if problem is not None:
            return _reject(index, event.id, "event-time-range", problem)
        return CheckedEvent(index, event, payload, Carrier(sender, sequence, index, proof))

    def apply(self, tx: Tx, checked: Sequence[CheckedEvent], now: datetime) -> list[PayloadResult]:
        """Apply an envelope's events in order; one result per event.

        The events of a run without withdrawals are checked in memory one after another (the
        states as the ones before left them, read once for all their cases) and written
        together; a withdrawal runs on its own, in its own savepoint, after what came before.
        """
        held = store.held_event_ids(tx.conn, [c.event.id for c in checked])
        out: list[PayloadResult] = []
        run = _Run(tx, self._self, self._manifest().coordinator, checked)
        for c in checked:
            if c.event.id in held:
                out.append(PayloadResult(c.index, c.event.id, Outcome.ACCEPTED))
                continue
            if c.event.kind is EventKind.WITHDRAWAL:
                # What came before is written first: the withdrawal reads the stored states.
                self._recorder.received_many(tx, run.take(), now)
            try:
                if c.event.kind is EventKind.WITHDRAWAL:
                    tx.attempt(lambda c=c: self._withdrawal(tx, c, now))  # type: ignore[misc]
                else:
                    run.add(c)
            except ExchangeError as error:
                out.append(_reject(c.index, c.event.id, error_code(error), error_message(error)))
                continue
            held.add(c.event.id)
            out.append(PayloadResult(c.index, c.event.id, Outcome.ACCEPTED))
        self._recorder.received_many(tx, run.take(), now)
        return out

    def _withdrawal(self, tx: Tx, c: CheckedEvent, now: datetime) -> None:
        report_id = c.event.items[0].report_id
        facts = reports.facts(tx.conn, [report_id]).get(report_id)
        if facts is None or facts.decision_member != self._self or facts.case_id is None:
            raise NotFound(f"no report {report_id} in a case held here")
        if facts.origin_member != c.event.member:
            raise NotAssigned(f"report {report_id} was sent by {facts.origin_member}")
        self._recorder.received(tx, c.event, c.payload, (), c.carrier, now)
        body = c.event.body
        assert isinstance(body, Withdrawal)
        self._work.withdraw_at_holder(tx, report_id, body, now)


class _Run:
    """Events checked against the states in memory, to be written together (``take``).

    What is read is read once for the whole envelope: the states of its cases and, for a case
    this node has no state of yet, what our receipts say of the reports it names.
    """

    def __init__(
        self, tx: Tx, self_member: str, coordinator: str, checked: Sequence[CheckedEvent]
    ) -> None:
        self._tx = tx
        self._self = self_member
        self._coordinates = coordinator == self_member
        self._pending: list[Step] = []
        self._states: dict[str, dict[tuple[str, int], ItemState]] = {}
        self._learned: dict[str, tuple[str, str | None]] | None = None
        self._checked = checked

    def add(self, c: CheckedEvent) -> None:
        """Check ``c`` against the states so far; raises (nothing kept) if it may not apply."""
        event = c.event
        states = self._entitled_states(event)
        new = rules.apply(states, event)
        self._states[event.case_id] = {**states, **new}
        self._pending.append(Step(event, tuple(new.values()), payload=c.payload, carrier=c.carrier))

    def take(self) -> list[Step]:
        """The steps so far, to be written now; what is read next is read from the store again
        (a withdrawal may change states under us)."""
        steps, self._pending = self._pending, []
        self._states.clear()
        return steps

    def _case(self, case_id: str) -> dict[tuple[str, int], ItemState]:
        if case_id not in self._states:
            wanted = {c.event.case_id for c in self._checked} - set(self._states)
            found = store.states(self._tx.conn, sorted(wanted))
            for c in wanted:
                self._states[c] = {s.ref.key: s for s in found.get(c, [])}
        return self._states[case_id]

    def _entitled_states(self, event: CaseEvent) -> dict[tuple[str, int], ItemState]:
        """The current states of the case, if the event's maker holds the case for us."""
        held = self._case(event.case_id)
        if held:
            holder = next(iter(held.values())).holder
            if holder != event.member:
                raise NotAssigned(f"case {event.case_id} is held by {holder}, not {event.member}")
        elif not self._may_learn_of(event):
            raise NotAssigned(
                f"{event.member} holds no case {event.case_id} that this node reported"
            )
        states = dict(held)
        for ref in event.items:
            states.setdefault(ref.key, ItemState(ref, event.member, ref.clock_started))
        return states

    def _may_learn_of(self, event: CaseEvent) -> bool:
        """A first event of a case: from the member our report went to, or (we coordinate)
        from any member, who then holds the case for us."""
        if self._coordinates:
            return True
        if self._learned is None:
            ours = {
                r.report_id
                for c in self._checked
                for r in c.event.items
                if r.origin_member == self._self
            }
            self._learned = outbox.remote_cases(self._tx.conn, sorted(ours))
        ours = {r.report_id for r in event.items if r.origin_member == self._self}
        return any(self._learned.get(rid) == (event.member, event.case_id) for rid in ours)


def _reject(index: int, event_id: str, code: str, message: str) -> PayloadResult:
    reason = "".join(ch if ch.isprintable() else "?" for ch in f"{code}: {message}"[:300])
    echoed = event_id if len(event_id) == 34 and event_id.startswith("e-") else ""
    return PayloadResult(index, echoed, Outcome.REJECTED, reason=reason)
