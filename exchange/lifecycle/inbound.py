"""Members' lifecycle events arriving in envelopes: checked, then applied exactly once.

A signature proves who made an event, not that the maker may make it. Before the writer,
each payload must decode to a sane event (``case_codec``), be made by the envelope's signer,
carry the id its (member, scope, sequence) imply, and state a time in the signer's window.
In the writer, the event is applied only from the member entitled to it:

* a withdrawal only from the origin of a report in a case held here (the holder's side then
  runs: ``CaseWork.withdraw_at_holder``);
* any other event only from the member that holds the case — as this node knows it: the
  destination whose receipt put our report in the case, or (before that receipt is stored) the
  destination of a report of ours the event names (we are an origin); or the member that first
  told us of the case (we are the coordinator, who holds no report of it). Anyone else:
  ``not-assigned``, in the receipt. A first event of a case we cannot place yet, from a member
  our reports are still on their way to (a merged case's earlier steps, sent when our report
  joined it, may overtake the receipt), refuses the whole envelope as ``NotYet``: nothing is
  stored and the sender delivers it again after a back-off, in order;
* an item said to be ours must be an item of a report we sent to that member, with the
  classification we gave it;
* a holder's events of a case apply in its order: sequence n only after n - 1.

An event id already held is acknowledged again and changes nothing (exactly once); each applied
event runs in its own savepoint, so one refused by the rules (``transition-refused``: the holder
sent a step its own rules forbid) leaves the envelope's other events applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from auth.manifest import Manifest
from exchange.domain import Outcome, PayloadResult
from exchange.errors import (
    ExchangeError,
    InvalidEvent,
    NotAssigned,
    NotFound,
    NotYet,
    TransitionRefused,
    error_code,
    error_message,
)
from exchange.lifecycle import rules
from exchange.lifecycle.model import (
    CaseEvent,
    EventKind,
    ItemState,
    Withdrawal,
    event_id_for,
)
from exchange.lifecycle.record import Carrier, Recorder
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
        held = store.held_event_ids(tx.conn, [c.event.id for c in checked])
        out = []
        for c in checked:
            if c.event.id in held:
                out.append(PayloadResult(c.index, c.event.id, Outcome.ACCEPTED))
                continue
            try:
                tx.attempt(lambda c=c: self._apply_one(tx, c, now))  # type: ignore[misc]
            except NotYet:
                raise  # the whole envelope comes again later
            except ExchangeError as error:
                out.append(_reject(c.index, c.event.id, error_code(error), error_message(error)))
                continue
            held.add(c.event.id)
            out.append(PayloadResult(c.index, c.event.id, Outcome.ACCEPTED))
        return out

    def _apply_one(self, tx: Tx, c: CheckedEvent, now: datetime) -> None:
        event = c.event
        if event.kind is EventKind.WITHDRAWAL:
            self._withdrawal(tx, c, now)
            return
        current = self._entitled_states(tx, event)
        new = rules.apply(current, event)
        self._recorder.received(tx, event, c.payload, new.values(), c.carrier, now)

    def _withdrawal(self, tx: Tx, c: CheckedEvent, now: datetime) -> None:
        report_id = c.event.items[0].report_id
        facts = reports.facts(tx.conn, [report_id]).get(report_id)
        if facts is None or facts.decision_member != self._self or facts.case_id is None:
            raise NotFound(f"no report {report_id} in a case held here")
        if facts.origin_member != c.event.member:
            raise NotAssigned(f"report {report_id} was sent by {facts.origin_member}")
        if c.event.case_id not in ("", facts.case_id):
            raise InvalidEvent(
                f"report {report_id} is in case {facts.case_id}, not {c.event.case_id}"
            )
        self._recorder.received(tx, c.event, c.payload, (), c.carrier, now)
        body = c.event.body
        assert isinstance(body, Withdrawal)
        self._work.withdraw_at_holder(tx, report_id, body, now)

    def _entitled_states(self, tx: Tx, event: CaseEvent) -> dict[tuple[str, int], ItemState]:
        """The current states of the event's items, if its maker holds the case for us and the
        event is the next of the case."""
        held = store.states(tx.conn, [event.case_id]).get(event.case_id, [])
        if held:
            holder = held[0].holder
            if holder != event.member:
                raise NotAssigned(f"case {event.case_id} is held by {holder}, not {event.member}")
        else:
            self._first_of_case(tx, event)
        self._check_own_items(tx, event)
        expected = store.next_sequence(tx.conn, event.case_id, event.member)
        if event.sequence != expected:
            raise TransitionRefused(
                f"event {event.sequence} of {event.member} on case {event.case_id}: its event "
                f"{expected} comes first (a case's events apply in order)"
            )
        states = {s.ref.key: s for s in held}
        for ref in event.items:
            states.setdefault(ref.key, ItemState(ref, event.member, ref.clock_started))
        return states

    def _first_of_case(self, tx: Tx, event: CaseEvent) -> None:
        """A first event of a case: from the member our report went to, or (we coordinate)
        from any member, who then holds the case for us."""
        if self._manifest().coordinator == self._self:
            return
        conn = tx.conn
        holder = outbox.case_destination(conn, event.case_id)
        if holder is not None:
            if holder != event.member:
                raise NotAssigned(f"case {event.case_id} is held by {holder}, not {event.member}")
            return
        ours = reports.facts(
            conn, [r.report_id for r in event.items if r.origin_member == self._self]
        )
        if any(
            f.decision_member == event.member
            and outbox.remote_case(conn, f.id) in (None, event.case_id)
            for f in ours.values()
        ):
            return  # our report's receipt is on its way; the event overtook it
        if outbox.awaiting_receipt(conn, event.member):
            raise NotYet(
                f"case {event.case_id} of {event.member}: not known here before the receipts "
                "of the reports on their way to it"
            )
        raise NotAssigned(f"{event.member} holds no case {event.case_id} that this node reported")

    def _check_own_items(self, tx: Tx, event: CaseEvent) -> None:
        """Items of reports this node holds are checked against its own record, whatever the
        event claims of their origin: they must be items of reports we sent to the event's
        maker, with the classification we gave them (a holder cannot put words in our mouth,
        nor claim our report for its case); a "withdrawn" of ours answers our own request."""
        sent = reports.facts(tx.conn, [r.report_id for r in event.items])
        for i, ref in enumerate(event.items):
            f = sent.get(ref.report_id)
            if f is None and ref.origin_member != self._self:
                continue  # another reporter's item of a merged case
            if (
                f is None
                or f.origin_member != self._self
                or ref.origin_member != self._self
                or f.decision_member != event.member
                or ref.index >= len(f.items)
                or f.items[ref.index] is not ref.origin_classification
            ):
                raise InvalidEvent(
                    f"items[{i}]: {ref.report_id}#{ref.index} is no item of a report this node "
                    f"sent to {event.member} (or not with that classification)"
                )
            if event.kind is EventKind.WITHDRAWN and f.withdrawn_at is None:
                raise NotAssigned(f"report {ref.report_id} was not withdrawn by this node")


def _reject(index: int, event_id: str, code: str, message: str) -> PayloadResult:
    reason = "".join(ch if ch.isprintable() else "?" for ch in f"{code}: {message}"[:300])
    echoed = event_id if len(event_id) == 34 and event_id.startswith("e-") else ""
    return PayloadResult(index, echoed, Outcome.REJECTED, reason=reason)
