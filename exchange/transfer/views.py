"""What people read of moves: where a case came from, where its items went, and what the new
holder did with a report's items — read-only, beside ``lifecycle/views``.

* At the new holder, a case that came by a move shows the old holder and its case, and the old
  holder's steps on the moved items as *history* — decoded from the transfers as received, each
  event with the items of every report it moved (a transfer carries one report's), never
  folded into this node's states.
* At the old holder, a case shows each move out of it: to whom, and the new holder's case once
  its receipt named it.
* At an origin (or the coordinator), a report's status lists its moves as the new holder's
  take-overs told them — the new holder's case, its items and its steps — and a move the old
  holder recorded that no take-over answered yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from exchange.domain import Outcome
from exchange.errors import ExchangeError
from exchange.lifecycle.model import (
    CaseEvent,
    EventKind,
    ItemState,
    Move,
    Stage,
    TakeOver,
)
from exchange.store import lifecycle as store
from exchange.store import transfers
from exchange.store.cases import HeldCase
from exchange.wire.case_codec import event_from_bytes
from exchange.wire.transfer_codec import transfer_from_bytes


def moved_from(conn: Connection, held: HeldCase) -> tuple[Move | None, tuple[CaseEvent, ...]]:
    """A case held here that came by a move: the move, and the old holder's history."""
    if held.moved_from_member is None or held.moved_from_case is None:
        return None, ()
    rows = [t for t in transfers.into_case(conn, held.id) if t.from_case == held.moved_from_case]
    at = rows[0].moved_at if rows else None
    country = rows[0].country if rows else (held.hosting_country or "")
    move = Move(held.moved_from_member, held.moved_from_case, country, "", held.id, at)
    events: dict[str, CaseEvent] = {}
    for t in rows:
        if t.payload is None:  # retention dropped it with the case's URL
            continue
        try:
            carried = transfer_from_bytes(t.payload)
        except ExchangeError:
            continue  # stored as verified; a row that no longer decodes shows no history
        for e in (*carried.history, carried.moved):
            known = events.get(e.id)
            events[e.id] = e if known is None else _merged(known, e)
    history = sorted(events.values(), key=lambda e: (e.at, e.sequence))
    return move, tuple(history)


def _merged(a: CaseEvent, b: CaseEvent) -> CaseEvent:
    """One event of the old holder as several transfers carried it (each with one report's
    items): with all of them."""
    items = {r.key: r for r in (*a.items, *b.items)}
    return CaseEvent(
        a.id, a.case_id, a.member, a.sequence, a.at, tuple(items.values()), a.kind, a.body
    )


def moved_to(conn: Connection, held: HeldCase) -> tuple[Move, ...]:
    """The moves out of a case held here: one per move and new holder's case."""
    out: dict[tuple[str, str, str], Move] = {}
    for t in transfers.out_of_case(conn, held.id):
        key = (t.moved_event, t.to_member, t.to_case or "")
        out.setdefault(
            key,
            Move(
                t.from_member,
                t.from_case,
                t.country,
                t.to_member,
                t.to_case or "",
                t.moved_at,
                held.hosting_country or "",
                refusal=(t.reason or "") if t.outcome == Outcome.REJECTED.value else "",
            ),
        )
    return tuple(out.values())


def report_moves(
    conn: Connection,
    report_id: str,
    items: Sequence[ItemState],
    *,
    from_case: str,
    from_country: str,
) -> tuple[Move, ...]:
    """A report's moves as this node knows them: each take-over with the new holder's items and
    steps; then the moves of ``items`` (as the old holder told them) not taken over yet."""
    out: list[Move] = []
    taken: set[tuple[str, int]] = set()
    for _, payload in store.take_over_payloads(conn, report_id):
        event = event_from_bytes(payload)
        body = event.body
        assert isinstance(body, TakeOver)
        states = [
            s
            for c, s in store.states_of_report(conn, report_id)
            if c == event.case_id and s.holder == event.member
        ]
        steps = [event_from_bytes(p) for _, p in store.case_payloads(conn, [event.case_id])]
        timeline = [e for e in steps if any(r.report_id == report_id for r in e.items)]
        taken.update(r.key for r in event.items)
        out.append(
            Move(
                body.from_member,
                body.from_case,
                body.country,
                event.member,
                event.case_id,
                event.at,
                from_country,
                tuple(states),
                tuple(timeline),
            )
        )
    out += _pending(items, taken, from_case, from_country)
    return tuple(out)


def _pending(
    items: Sequence[ItemState], taken: set[tuple[str, int]], from_case: str, from_country: str
) -> list[Move]:
    """Moves the old holder recorded (its items' states say so) that no take-over answered."""
    firsts: dict[tuple[str, str], ItemState] = {}
    for s in items:
        if s.stage is Stage.MOVED and s.moved_to_member and s.ref.key not in taken:
            firsts.setdefault((s.moved_to_member, s.moved_to_country), s)
    return [
        Move(
            s.holder,
            from_case,
            s.moved_to_country,
            s.moved_to_member,
            "",
            s.closed_at,
            from_country,
        )
        for s in firsts.values()
    ]


def take_over_of(timeline: Sequence[CaseEvent]) -> Move | None:
    """For a case held elsewhere: the move its holder's take-over answered, if it has one."""
    for e in timeline:
        body = e.body
        if e.kind is EventKind.TAKEN_OVER and isinstance(body, TakeOver):
            return Move(body.from_member, body.from_case, body.country, e.member, e.case_id, e.at)
    return None
