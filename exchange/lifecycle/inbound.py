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
* a take-over (the first step of the member a move named) only from that member, for items
  the old holder's own ``moved`` event told us it moved there — checked for every item of ours
  (coordinating: every item); ``NotYet`` while that ``moved`` event is still on its way, for
  ``MOVE_WAIT`` after the take-over — then the take-over alone is refused (``move-unknown``). The
  event it names must be that move as held here (by the old holder, on its case, to the
  take-over's maker, naming each item), and a take-over's id (implied by maker, move and
  report) is taken once: another with that id is refused. The case it names is then held by
  its maker for this node, like a case our receipt named;
* an item said to be ours must be an item of a report we sent to that member (or that moved to
  it: an item of the case here since its take-over), with the classification we gave it;
* a holder's events of a case apply in its order: sequence n only after n - 1.

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
from datetime import datetime, timedelta

from auth.manifest import Manifest
from exchange.domain import Outcome, PayloadResult, rejected
from exchange.errors import (
    ExchangeError,
    InvalidEvent,
    MoveUnknown,
    NotAssigned,
    NotFound,
    NotYet,
    TransitionRefused,
    error_code,
    error_message,
)
from exchange.lifecycle import rules
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    CaseEvent,
    EventKind,
    ItemRef,
    ItemState,
    Stage,
    TakeOver,
    Withdrawal,
    event_id_for,
    is_event_id,
    take_over_scope,
)
from exchange.lifecycle.record import Carrier, Recorder, Step
from exchange.lifecycle.work import CaseWork
from exchange.store import cases as case_store
from exchange.store import lifecycle as store
from exchange.store import outbox, reports
from exchange.store.writer import Tx
from exchange.time_window import TimeWindow
from exchange.wire.case_codec import event_from_bytes

# How long after a take-over (its ``at``) this node waits for the old holder's ``moved`` event
# before refusing the take-over alone (``move-unknown``): until then the envelope is refused as
# ``NotYet`` and comes again; after, a move that never comes cannot jam the sender's stream.
MOVE_WAIT = timedelta(minutes=10)


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
        if event_id_for(event.member, _scope(event), event.sequence) != event.id:
            return _reject(index, event.id, "event-id-mismatch", "id does not match contents")
        if event.kind in (EventKind.WITHDRAWAL, EventKind.TAKEN_OVER) and (
            event.sequence != 1 or len({r.report_id for r in event.items}) != 1
        ):
            return _reject(index, event.id, "invalid-event", f"one {event.kind} per report")
        problem = _time_problem(event, window)
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
        taken = _held_take_overs(tx, checked, held)
        out: list[PayloadResult] = []
        run = _Run(tx, self._self, self._manifest().coordinator, checked, now)
        for c in checked:
            if c.event.id in taken and taken[c.event.id] != c.payload:
                out.append(_reject(c.index, c.event.id, "not-assigned", _taken_twice(c.event)))
                continue
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
            except NotYet:
                raise  # the whole envelope comes again later, nothing of it stored
            except ExchangeError as error:
                out.append(_reject(c.index, c.event.id, error_code(error), error_message(error)))
                continue
            held.add(c.event.id)
            if c.event.kind is EventKind.TAKEN_OVER:
                taken[c.event.id] = c.payload
            out.append(PayloadResult(c.index, c.event.id, Outcome.ACCEPTED))
        self._recorder.received_many(tx, run.take(), now)
        return out

    def _withdrawal(self, tx: Tx, c: CheckedEvent, now: datetime) -> None:
        report_id = c.event.items[0].report_id
        facts = reports.facts(tx.conn, [report_id]).get(report_id)
        # Decided to this node, or moved here: either way in a case this node holds.
        if (
            facts is None
            or facts.case_id is None
            or not case_store.held_ids(tx.conn, [facts.case_id])
        ):
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


class _Run:
    """Events checked against the states in memory, to be written together (``take``).

    The states of the envelope's cases are read once for all of them; what a first event of a
    case needs (our receipts, our reports) is read when one comes.
    """

    def __init__(
        self,
        tx: Tx,
        self_member: str,
        coordinator: str,
        checked: Sequence[CheckedEvent],
        now: datetime,
    ) -> None:
        self._tx = tx
        self._now = now
        self._self = self_member
        self._coordinates = coordinator == self_member
        self._pending: list[Step] = []
        self._states: dict[str, dict[tuple[str, int], ItemState]] = {}
        self._next: dict[tuple[str, str], int] = {}
        self._facts: dict[str, reports.ReportFacts] | None = None
        self._checked = checked

    def add(self, c: CheckedEvent) -> None:
        """Check ``c`` against the states so far; raises (nothing kept) if it may not apply."""
        event = c.event
        taken = event.kind is EventKind.TAKEN_OVER
        states = self._taken_over_states(event) if taken else self._entitled_states(event)
        _check_times(event, states)
        self._check_own_items(event)
        expected = None if taken else self._expected(event)
        new = rules.apply(states, event)
        self._states[event.case_id] = {**states, **new}
        if expected is not None:
            self._next[(event.case_id, event.member)] = expected + 1
        self._pending.append(Step(event, tuple(new.values()), payload=c.payload, carrier=c.carrier))

    def take(self) -> list[Step]:
        """The steps so far, to be written now; what is read next is read from the store again
        (a withdrawal may change states under us)."""
        steps, self._pending = self._pending, []
        self._states.clear()
        self._next.clear()
        self._facts = None
        return steps

    def _case(self, case_id: str) -> dict[tuple[str, int], ItemState]:
        if case_id not in self._states:
            wanted = ({c.event.case_id for c in self._checked} | {case_id}) - set(self._states)
            found = store.states(self._tx.conn, sorted(wanted))
            for c in wanted:
                self._states[c] = {s.ref.key: s for s in found.get(c, [])}
        return self._states[case_id]

    def _expected(self, event: CaseEvent) -> int:
        """A holder's events of a case apply in its order: sequence n only after n - 1."""
        key = (event.case_id, event.member)
        if key not in self._next:
            # One read for every case of the envelope this member speaks of.
            cases = sorted(
                {c.event.case_id for c in self._checked if c.event.member == event.member}
            )
            found = store.next_sequences(self._tx.conn, cases, event.member)
            for case_id, seq in found.items():
                self._next.setdefault((case_id, event.member), seq)
        expected = self._next[key]
        if event.sequence != expected:
            raise TransitionRefused(
                f"event {event.sequence} of {event.member} on case {event.case_id}: its event "
                f"{expected} comes first (a case's events apply in order)"
            )
        return expected

    def _entitled_states(self, event: CaseEvent) -> dict[tuple[str, int], ItemState]:
        """The current states of the case, if the event's maker holds the case for us."""
        held = self._case(event.case_id)
        if held:
            holder = next(iter(held.values())).holder
            if holder != event.member:
                raise NotAssigned(f"case {event.case_id} is held by {holder}, not {event.member}")
        else:
            self._first_of_case(event)
        states = dict(held)
        for ref in event.items:
            states.setdefault(ref.key, ItemState(ref, event.member, ref.clock_started))
        return states

    def _taken_over_states(self, event: CaseEvent) -> dict[tuple[str, int], ItemState]:
        """A take-over: only from the member the move named, for items it moved — checked
        against what the old holder's own ``moved`` event told this node of every item of ours
        (the coordinator: of every item). A case known here must be held by the event's maker."""
        body = event.body
        assert isinstance(body, TakeOver)
        if body.from_member == event.member:
            raise InvalidEvent("a member takes over items only from another member")
        held = self._case(event.case_id)
        if held and (holder := next(iter(held.values())).holder) != event.member:
            raise NotAssigned(f"case {event.case_id} is held by {holder}, not {event.member}")
        ours = [r for r in event.items if self._coordinates or self._reported(r.report_id)]
        if not ours and not held:
            raise NotAssigned(
                f"{event.member} holds no case {event.case_id} that this node reported"
            )
        moved_from = self._case(body.from_case)
        for ref in ours:
            self._check_moved(event, body, ref, moved_from.get(ref.key))
        states = dict(held)
        for ref in event.items:
            states.setdefault(ref.key, ItemState(ref, event.member, ref.clock_started))
        return states

    def _check_moved(
        self, event: CaseEvent, body: TakeOver, ref: ItemRef, before: ItemState | None
    ) -> None:
        """One item of ours (or, coordinating, any) taken over: moved to the event's maker by
        the old holder; NotYet while that ``moved`` event is still on its way here."""
        name = f"item {ref.report_id}#{ref.index}"
        if before is None or before.stage is not Stage.MOVED:
            if before is not None and before.holder != body.from_member:
                raise NotAssigned(f"{name} is held by {before.holder}, not {body.from_member}")
            if before is not None or self._coordinates or self._sent_to(ref, body.from_member):
                if self._now - event.at < MOVE_WAIT:
                    raise NotYet(
                        f"{name}: the move by {body.from_member} has not reached this node"
                    )
                raise MoveUnknown(
                    f"{name}: no move by {body.from_member} to {event.member} reached this node "
                    f"within {MOVE_WAIT} of the take-over at {event.at.isoformat()}"
                )
            raise NotAssigned(f"{name} was not sent from here to {body.from_member}")
        if before.holder != body.from_member or before.moved_to_member != event.member:
            raise NotAssigned(
                f"{name} was moved by {before.holder} to {before.moved_to_member or 'no one'}, "
                f"not by {body.from_member} to {event.member}"
            )
        if before.moved_to_country != body.country:
            raise InvalidEvent(f"{name} moved to {before.moved_to_country}, not {body.country}")
        moved = self._named_move(event, body)
        if ref.key not in {r.key for r in moved.items}:
            raise InvalidEvent(f"{name} is not an item {body.moved_event} moved")

    def _named_move(self, event: CaseEvent, body: TakeOver) -> CaseEvent:
        """The old holder's ``moved`` event a take-over names, as held here: an action of kind
        MOVED by ``from_member`` on ``from_case``, to the take-over's maker in its country — not
        merely some event this node holds (another step would let the maker take the items over
        again, into a second case)."""
        payload = store.event_payloads(self._tx.conn, [body.moved_event]).get(body.moved_event)
        moved = event_from_bytes(payload) if payload is not None else None
        action = moved.body if moved is not None else None
        if (
            moved is None
            or not isinstance(action, Action)
            or moved.kind is not EventKind.ACTION
            or action.kind is not ActionKind.MOVED
            or moved.member != body.from_member
            or moved.case_id != body.from_case
            or action.moved_to_member != event.member
            or action.moved_to_country != body.country
        ):
            raise InvalidEvent(
                f"{body.moved_event} is no move held here by {body.from_member} of case "
                f"{body.from_case} to {event.member} in {body.country}"
            )
        return moved

    def _reported(self, report_id: str) -> bool:
        f = self._facts_of([report_id]).get(report_id)
        return f is not None and f.origin_member == self._self

    def _sent_to(self, ref: ItemRef, member: str) -> bool:
        f = self._facts_of([ref.report_id]).get(ref.report_id)
        return f is not None and f.origin_member == self._self and f.decision_member == member

    def _facts_of(self, ids: Sequence[str]) -> dict[str, reports.ReportFacts]:
        if self._facts is None:  # once for every report the envelope's events name
            named = {r.report_id for c in self._checked for r in c.event.items}
            self._facts = reports.facts(self._tx.conn, sorted(named | set(ids)))
        return self._facts

    def _first_of_case(self, event: CaseEvent) -> None:
        """A first event of a case: from the member our report went to, or (we coordinate)
        from any member, who then holds the case for us."""
        if self._coordinates:
            return
        conn = self._tx.conn
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

    def _check_own_items(self, event: CaseEvent) -> None:
        """Items of reports this node holds are checked against its own record, whatever the
        event claims of their origin: they must be items of reports we sent to the event's
        maker (or that moved to it: taken over, so in its case here), with the classification
        we gave them (a holder cannot put words in our mouth, nor claim our report for its
        case); a "withdrawn" of ours answers our own request."""
        sent = self._facts_of([])
        known = self._case(event.case_id)
        for i, ref in enumerate(event.items):
            f = sent.get(ref.report_id)
            if f is None and ref.origin_member != self._self:
                continue  # another reporter's item of a merged case
            # The member our report went to; or the one it moved to, once taken over (a
            # take-over is checked against the move; after it, the item is in the case here).
            holder = f is not None and (
                f.decision_member == event.member
                or event.kind is EventKind.TAKEN_OVER
                or ref.key in known
            )
            if (
                f is None
                or f.origin_member != self._self
                or ref.origin_member != self._self
                or not holder
                or ref.index >= len(f.items)
                or f.items[ref.index] is not ref.origin_classification
            ):
                raise InvalidEvent(
                    f"items[{i}]: {ref.report_id}#{ref.index} is no item of a report this node "
                    f"sent to {event.member} (or not with that classification)"
                )
            if event.kind is EventKind.WITHDRAWN and f.withdrawn_at is None:
                raise NotAssigned(f"report {ref.report_id} was not withdrawn by this node")


def _held_take_overs(tx: Tx, checked: Sequence[CheckedEvent], held: set[str]) -> dict[str, bytes]:
    """The bytes of the take-overs held here among the envelope's: a take-over's id is implied
    by its maker, move and report, so another one with that id (into another case, other
    items) takes over again what was taken over once — refused, not acknowledged."""
    ids = [c.event.id for c in checked if c.event.kind is EventKind.TAKEN_OVER]
    return store.event_payloads(tx.conn, [i for i in ids if i in held])


def _taken_twice(event: CaseEvent) -> str:
    body = event.body
    assert isinstance(body, TakeOver)
    return (
        f"report {event.items[0].report_id}: its items were taken over from "
        f"{body.moved_event} already (another take-over with this id is held here)"
    )


def _scope(event: CaseEvent) -> str:
    """What an event's sequence counts in: its case; a withdrawal's report; a take-over's move
    and report."""
    if event.kind is EventKind.WITHDRAWAL:
        return event.items[0].report_id
    body = event.body
    if isinstance(body, TakeOver):
        return take_over_scope(body.moved_event, event.items[0].report_id)
    return event.case_id


def _time_problem(event: CaseEvent, window: TimeWindow) -> str | None:
    """Every time the event states (its own, its items' clocks) in the signer's window."""
    stated = [("at", event.at)] + [
        (f"items[{i}].clock_started", r.clock_started)
        for i, r in enumerate(event.items)
        if r.clock_started is not None
    ]
    return next((p for where, at in stated if (p := window.problem(at, where)) is not None), None)


def _check_times(event: CaseEvent, states: dict[tuple[str, int], ItemState]) -> None:
    """A step comes after the item's clock started and after its last step: a holder cannot
    backdate an outcome (negative takedown times, an early end of the retention period)."""
    for ref in event.items:
        s = states[ref.key]
        times = (s.clock_started, s.assessed_at, s.lea_at, s.host_notice_at, s.closed_at)
        latest = max((t for t in times if t is not None), default=None)
        if latest is not None and event.at < latest:
            raise TransitionRefused(
                f"item {ref.report_id}#{ref.index}: a step at {event.at.isoformat()} before its "
                f"last at {latest.isoformat()}"
            )


def _reject(index: int, event_id: str, code: str, message: str) -> PayloadResult:
    return rejected(index, event_id if is_event_id(event_id) else "", code, message)
