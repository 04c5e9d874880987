"""The hotline's own case work: assess, act and withdraw, through the single writer.

Assessing and acting happen only at the holder — the member the case was assigned to — on
items of a case held here; anything else is ``NotAssigned`` (PERMISSION_DENIED) or
``NotFound``. The rules (``rules.py``) run against the stored states inside the transaction,
so a refusal (FAILED_PRECONDITION, the rule named) leaves nothing changed, and two analysts
acting at once are serialised by the single writer.

Withdrawal starts at the origin: the report is marked withdrawn and a signed withdrawal goes
to the holder (or, for a case held here, the holder's side runs at once). The holder's side —
``withdraw_at_holder``, also called by ``inbound`` — closes the report's open items, closes
the case when nothing else keeps it open, tells every reporting member and the coordinator,
and retracts this node's hash sightings that only the withdrawn report supports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime

from auth.manifest import Manifest
from common.clock import Clock
from exchange.domain import LogKind
from exchange.errors import ExchangeError, InvalidEvent, NotAssigned, NotFound, TransitionRefused
from exchange.lifecycle import rules
from exchange.lifecycle.model import (
    MAX_ITEMS_PER_EVENT,
    Action,
    ActionKind,
    Assessment,
    Body,
    CaseEvent,
    EventKind,
    ItemRef,
    ItemState,
    Withdrawal,
    event_id_for,
)
from exchange.lifecycle.record import Recorder, Step
from exchange.lifecycle.sightings import retract_unsupported
from exchange.store import cases as case_store
from exchange.store import lifecycle as store
from exchange.store import outbox, reports
from exchange.store.writer import Coalescer, Tx, Writer
from exchange.transfer.outgoing import Outgoing, Part, moves_away
from exchange.wire.case_codec import event_from_bytes
from routing.decision import decide
from routing.errors import RoutingError
from routing.trace import Trace


@dataclass(frozen=True, slots=True)
class Command:
    """An analyst's assessment or action on a case held here (``refs``: the items; none: every
    open item)."""

    case_id: str
    refs: tuple[tuple[str, int], ...]
    kind: EventKind
    body: Assessment | Action
    trace: Trace | None = None  # a move to another member: the fresh trace its transfer carries

    @classmethod
    def assess(
        cls, case_id: str, refs: Sequence[tuple[str, int]], assessment: Assessment
    ) -> Command:
        return cls(case_id, tuple(refs), EventKind.ASSESSMENT, assessment)

    @classmethod
    def act(
        cls,
        case_id: str,
        refs: Sequence[tuple[str, int]],
        action: Action,
        trace: Trace | None = None,
    ) -> Command:
        return cls(case_id, tuple(refs), EventKind.ACTION, action, trace)


class CaseWork:
    """Commands on cases held here and on reports sent from here.

    Assessments and actions arriving together (a case-management tool's concurrent calls) are
    run as one writer job (a ``Coalescer``, up to 500 commands a job): one read per table for all
    their cases, the rules
    applied one command after another in memory — so two commands on one case see each other —
    and one write per table for all their events. A refused command is answered with its error
    and leaves nothing behind; the others are recorded.

    A ``moved`` action naming another member queues its transfers (``transfers``) in the same
    transaction; the fresh trace they carry is the caller's (the takedown scheduler's re-trace)
    or, failing that, one ``retrace`` makes of the case's URL before the writer.
    """

    def __init__(
        self,
        *,
        self_member: str,
        manifest: Callable[[], Manifest],
        writer: Writer,
        clock: Clock,
        recorder: Recorder,
        transfers: Outgoing | None = None,
        retrace: Callable[[str], Trace | None] | None = None,
    ) -> None:
        self._self = self_member
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self._recorder = recorder
        self._transfers = transfers
        self._retrace = retrace
        self._commands: Coalescer[Command, CaseEvent | ExchangeError] = Coalescer(self._steps)

    # -- commands -------------------------------------------------------------------------

    def assess(
        self, case_id: str, refs: Sequence[tuple[str, int]], assessment: Assessment
    ) -> CaseEvent:
        return self._one(Command.assess(case_id, refs, assessment))

    def act(
        self,
        case_id: str,
        refs: Sequence[tuple[str, int]],
        action: Action,
        *,
        trace: Trace | None = None,
    ) -> CaseEvent:
        """Act on items held here; ``trace``: for a move, the fresh trace that found it."""
        return self._one(Command.act(case_id, refs, action, trace))

    def run(self, commands: Sequence[Command]) -> list[CaseEvent | ExchangeError]:
        """Many commands in one call (a tool's bulk assessment or action), run in this order in
        one writer job (several past 500, each seeing the ones before); each answered with its
        event or the error that refused it."""
        out, ready = self._prepared(commands)
        futures = iter(self._writer.submit_items(self._commands, ready))
        return [r if r is not None else _answer(next(futures)) for r in out]

    def run_in(self, tx: Tx, commands: Sequence[Command]) -> list[CaseEvent | ExchangeError]:
        """Commands inside a transaction the caller holds — the takedown automation records a
        check (or a notice sent) and the action it caused together; each answered as in
        ``run``. Nothing is traced here (DNS must not hold the writer): a move's transfer
        carries the trace its command brings (``Command.trace``), or none."""
        out, ready = self._prepared(commands, retrace=False)
        steps = iter(self._steps(tx, ready) if ready else [])
        return [r if r is not None else next(steps) for r in out]

    def _prepared(
        self, commands: Sequence[Command], *, retrace: bool = True
    ) -> tuple[list[CaseEvent | ExchangeError | None], list[Command]]:
        """Each command resolved (a move's member) or its refusal; None marks the ready ones."""
        out: list[CaseEvent | ExchangeError | None] = []
        ready: list[Command] = []
        for command in commands:
            try:
                ready.append(self._resolved(command, retrace=retrace))
                out.append(None)
            except ExchangeError as error:
                out.append(error)
        return out, ready

    def _one(self, command: Command) -> CaseEvent:
        result = self._writer.submit_item(self._commands, self._resolved(command)).result()
        if isinstance(result, ExchangeError):
            raise result
        return result

    def _resolved(self, command: Command, *, retrace: bool = True) -> Command:
        body = command.body
        if isinstance(body, Action) and body.kind is ActionKind.MOVED:
            command = replace(command, body=self._resolve_move(body))
            if (
                retrace
                and command.trace is None
                and self._retrace is not None
                and self._transfers is not None
                and moves_away(command.body, self._self)
            ):
                command = replace(command, trace=self._fresh_trace(command.case_id))
        return command

    def _fresh_trace(self, case_id: str) -> Trace | None:
        assert self._retrace is not None
        try:
            return self._retrace(case_id)
        except (ExchangeError, RoutingError):
            return None  # the transfer goes without a trace; the new holder traces anyway

    def withdraw(self, report_id: str, withdrawal: Withdrawal) -> CaseEvent | None:
        """Withdraw a report this node sent; None when it was withdrawn before (idempotent)."""
        return self._writer.execute(lambda tx: self._withdraw(tx, report_id, withdrawal))

    # -- at the holder --------------------------------------------------------------------

    def _steps(self, tx: Tx, commands: Sequence[Command]) -> list[CaseEvent | ExchangeError]:
        """Every command in order, against the states as the ones before it left them."""
        now = self._clock()
        held = sorted(case_store.held_ids(tx.conn, [c.case_id for c in commands]))
        current = {c: {s.ref.key: s for s in states} for c, states in _states(tx, held).items()}
        sequences = store.next_sequences(tx.conn, held, self._self)
        recipients = self._recipients(tx, held)
        out: list[CaseEvent | ExchangeError] = []
        steps: list[Step] = []
        parts: list[Part] = []
        for command in commands:
            try:
                states = current.get(command.case_id)
                if states is None:
                    raise self._not_held(tx, command.case_id)
                event = self._made(command, states, sequences[command.case_id], now)
                new = rules.apply(states, event)
                parts += self._move_parts(tx, command, event, steps)
            except ExchangeError as error:
                out.append(error)
                continue
            states.update(new)
            sequences[command.case_id] += 1
            steps.append(Step(event, tuple(new.values()), recipients[command.case_id]))
            out.append(event)
        self._recorder.own_many(tx, steps, now, {c: s.values() for c, s in current.items()})
        if self._transfers is not None:
            self._transfers.queue(tx, parts, now)
        return out

    def _move_parts(
        self, tx: Tx, command: Command, event: CaseEvent, steps: Sequence[Step]
    ) -> list[Part]:
        """A move to another member: its transfers (raises when one cannot go)."""
        if self._transfers is None or not moves_away(event.body, self._self):
            return []
        stored = store.own_events(tx.conn, [event.case_id], self._self).get(event.case_id, [])
        earlier = [event_from_bytes(payload) for _, payload in stored]
        earlier += [s.event for s in steps if s.event.case_id == event.case_id]
        return self._transfers.parts(tx, event, earlier, command.trace)

    def _made(
        self, command: Command, states: dict[tuple[str, int], ItemState], seq: int, now: datetime
    ) -> CaseEvent:
        targets = _targets(command.case_id, states, command.refs)
        return CaseEvent(
            id=event_id_for(self._self, command.case_id, seq),
            case_id=command.case_id,
            member=self._self,
            sequence=seq,
            at=now,
            items=tuple(targets),
            kind=command.kind,
            body=command.body,
        )

    def _not_held(self, tx: Tx, case_id: str) -> ExchangeError:
        # Known from its events, or (before any) from the receipt of a report we sent.
        holder = store.holder_of(tx.conn, case_id) or outbox.case_destination(tx.conn, case_id)
        if holder is not None:
            return NotAssigned(
                f"case {case_id} is held by {holder}: only the assigned member assesses "
                "or acts on it"
            )
        return NotFound(f"no case {case_id} here")

    def _held_states(self, tx: Tx, case_id: str) -> dict[tuple[str, int], ItemState]:
        if case_store.held(tx.conn, case_id, lock=True) is None:
            raise self._not_held(tx, case_id)
        states = store.states(tx.conn, [case_id]).get(case_id, [])
        return {s.ref.key: s for s in states}

    def _event(
        self,
        tx: Tx,
        case_id: str,
        targets: Sequence[ItemRef],
        kind: EventKind,
        body: Body,
        now: datetime,
        scope: str | None = None,
    ) -> CaseEvent:
        scope = scope or case_id
        # A withdrawal's scope is its report: one per report, so its sequence is 1.
        seq = store.next_sequence(tx.conn, case_id, self._self) if scope == case_id else 1
        return CaseEvent(
            id=event_id_for(self._self, scope, seq),
            case_id=case_id,
            member=self._self,
            sequence=seq,
            at=now,
            items=tuple(targets),
            kind=kind,
            body=body,
        )

    def _recipients(self, tx: Tx, case_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Per case: every member that reported it, and the coordinator."""
        linked = case_store.members(tx.conn, case_ids) if case_ids else {}
        coordinator = self._manifest().coordinator
        return {
            c: tuple(sorted({m for _, m in linked.get(c, [])} | {coordinator})) for c in case_ids
        }

    def _resolve_move(self, action: Action) -> Action:
        """A move names the member now responsible: the one the routing rules give."""
        decision = decide(action.moved_to_country, self._manifest(), self._self)
        if action.moved_to_member and action.moved_to_member != decision.member:
            raise TransitionRefused(
                f"moved to {action.moved_to_country}: the routing rules assign it to "
                f"{decision.member}, not {action.moved_to_member}"
            )
        return Action(
            kind=action.kind,
            moved_to_country=action.moved_to_country,
            moved_to_member=decision.member,
            reference=action.reference,
            analyst_ref=action.analyst_ref,
        )

    def withdraw_at_holder(
        self, tx: Tx, report_id: str, withdrawal: Withdrawal, now: datetime
    ) -> CaseEvent | None:
        """The holder's side of a withdrawal (the origin has been checked); None if there is
        nothing left to close (already withdrawn)."""
        facts = reports.facts(tx.conn, [report_id]).get(report_id)
        if facts is None or facts.case_id is None:
            raise NotFound(f"no report {report_id} in a case here")
        case_id = facts.case_id
        current = self._held_states(tx, case_id)
        targets = [s.ref for s in current.values() if s.ref.report_id == report_id]
        if not targets or all(current[r.key].closed for r in targets):
            # Nothing left to close (already removed, say): its sightings still go.
            reports.mark_withdrawn(tx.conn, report_id, str(withdrawal.reason), now)
            self._retract_sightings(tx, case_id, report_id, now)
            return None
        event = self._event(tx, case_id, targets, EventKind.WITHDRAWN, withdrawal, now)
        new = rules.apply(current, event)
        reports.mark_withdrawn(tx.conn, report_id, str(withdrawal.reason), now)
        self._recorder.own(tx, event, new.values(), self._recipients(tx, [case_id])[case_id], now)
        self._retract_sightings(tx, case_id, report_id, now)
        return event

    def _retract_sightings(self, tx: Tx, case_id: str, report_id: str, now: datetime) -> None:
        gone = retract_unsupported(tx, self._self, [report_id], now, leaving=report_id)
        if gone:
            tx.log(
                tx.chain.append(
                    now,
                    LogKind.ANNOUNCED,
                    report_id=report_id,
                    member=self._self,
                    detail={"retracted": len(gone), "case": case_id},
                )
            )

    # -- at the origin --------------------------------------------------------------------

    def _withdraw(self, tx: Tx, report_id: str, withdrawal: Withdrawal) -> CaseEvent | None:
        now = self._clock()
        facts = reports.facts(tx.conn, [report_id]).get(report_id)
        if facts is None:
            raise NotFound(f"no report {report_id} here")
        if facts.origin_member != self._self:
            raise NotAssigned(
                f"report {report_id} was sent by {facts.origin_member}: only its "
                "origin withdraws it"
            )
        if facts.withdrawn_at is not None:
            return None
        if facts.decision_member == self._self:
            return self.withdraw_at_holder(tx, report_id, withdrawal, now)
        reports.mark_withdrawn(tx.conn, report_id, str(withdrawal.reason), now)
        refs = [ItemRef(report_id, i, self._self, c) for i, c in enumerate(facts.items)]
        holder, case_id = _holder(tx, report_id, facts.decision_member)
        event = self._event(
            tx, case_id, refs, EventKind.WITHDRAWAL, withdrawal, now, scope=report_id
        )
        self._recorder.own(tx, event, (), {holder}, now)
        return event


def _states(tx: Tx, case_ids: Sequence[str]) -> dict[str, list[ItemState]]:
    """Each case's item states (a held case with none yet still gets its entry)."""
    found = store.states(tx.conn, case_ids) if case_ids else {}
    return {c: found.get(c, []) for c in case_ids}


def _holder(tx: Tx, report_id: str, destination: str) -> tuple[str, str]:
    """Who holds a report we sent, and its case there ("" before the receipt named it): the
    member that took its items over last, or else the member it went to."""
    taken = store.take_over_payloads(tx.conn, report_id)
    if taken:
        last = event_from_bytes(taken[-1][1])
        return last.member, last.case_id
    return destination, outbox.remote_case(tx.conn, report_id) or ""


def _answer(future: Future[CaseEvent | ExchangeError]) -> CaseEvent | ExchangeError:
    """A command's answer: the writer hands a refused item's error back as the future's."""
    try:
        return future.result()
    except ExchangeError as error:
        return error


def _targets(
    case_id: str,
    current: dict[tuple[str, int], ItemState],
    refs: Sequence[tuple[str, int]],
) -> list[ItemRef]:
    """The named items (each must be in the case), or every open item when none is named."""
    if not refs:
        chosen = [s.ref for s in current.values() if not s.closed]
        if not chosen:
            raise TransitionRefused(f"case {case_id}: every item is closed")
        if len(chosen) > MAX_ITEMS_PER_EVENT:
            # One event is one signed payload every receiver must accept: name the items.
            raise InvalidEvent(
                f"case {case_id} has {len(chosen)} open items: name at most "
                f"{MAX_ITEMS_PER_EVENT} per step"
            )
        return chosen
    out = []
    for report_id, index in dict.fromkeys(refs):
        state = current.get((report_id, index))
        if state is None:
            raise NotFound(f"case {case_id} has no item {report_id}#{index}")
        out.append(state.ref)
    return out
