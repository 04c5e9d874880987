"""The lifecycle aggregate: every statement on ``case_events`` and ``item_states``.

Events are stored with their signed wire bytes (``payload``) — a received one also with the
envelope that carried it, so it stays verifiable on its own — and read back as bytes the
lifecycle decodes; ``cursor`` is this node's order of arrival, the WatchCases feed.
Item states are one row per item, the fold of its events: the holder inserts them when a
report joins a case (``open_items``), every node rewrites them as events apply
(``save_states``), and the work queues are set-based queries over them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select
from sqlalchemy.sql import util as sql_util

from exchange.domain import AgeGroup, Classification
from exchange.lifecycle.model import (
    CLOSED_STAGES,
    ActionKind,
    Assessment,
    CaseSummary,
    EventKind,
    Gender,
    ItemRef,
    ItemState,
    Queue,
    ReasonCode,
    Stage,
)
from exchange.store import reports, schema
from exchange.store.prepared import Prepared
from exchange.store.sql import chunks, insert_rows, upsert
from exchange.times import to_micros

EVENTS = schema.case_events
STATES = schema.item_states
WATCHES = schema.takedown_watches
CASES = schema.cases

_CLOSED = sorted(str(s) for s in CLOSED_STAGES)
# A take-over has its own scope (the move and the report), outside the case's sequence of steps.
_TAKEN_OVER = str(EventKind.TAKEN_OVER)
_ILLEGAL = [str(Classification.BASELINE), str(Classification.NATIONAL)]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event's row: its bytes, and for a received one the envelope that carried it."""

    id: str
    case_id: str
    member: str
    sequence: int
    at: datetime
    kind: str
    payload: bytes
    report_id: str | None = None
    sender: str | None = None
    envelope_sequence: int | None = None
    leaf_index: int | None = None
    proof: bytes | None = None


# -- events ---------------------------------------------------------------------------------


def held_event_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for part in chunks(sorted(set(ids))):
        out.update(conn.execute(select(EVENTS.c.id).where(EVENTS.c.id.in_(part))).scalars().all())
    return out


def event_payloads(conn: Connection, ids: Sequence[str]) -> dict[str, bytes]:
    """The bytes of the events held here among ``ids``, by id."""
    out: dict[str, bytes] = {}
    for part in chunks(sorted(set(ids))):
        rows = conn.execute(select(EVENTS.c.id, EVENTS.c.payload).where(EVENTS.c.id.in_(part)))
        out.update((r.id, bytes(r.payload)) for r in rows)
    return out


def insert_events(conn: Connection, rows: Sequence[StoredEvent], now: datetime) -> None:
    if rows:
        conn.execute(
            EVENTS.insert(),
            [
                {
                    "id": r.id,
                    "case_id": r.case_id,
                    "member": r.member,
                    "sequence": r.sequence,
                    "at": r.at,
                    "kind": r.kind,
                    "report_id": r.report_id,
                    "payload": r.payload,
                    "sender": r.sender,
                    "envelope_sequence": r.envelope_sequence,
                    "leaf_index": r.leaf_index,
                    "proof": r.proof,
                    "stored_at": now,
                }
                for r in rows
            ],
        )


def next_sequences(conn: Connection, case_ids: Sequence[str], member: str) -> dict[str, int]:
    """Case id → the next sequence of ``member``'s events on it (1 for a case with none)."""
    out = dict.fromkeys(case_ids, 1)
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(EVENTS.c.case_id, func.max(EVENTS.c.sequence))
            .where(
                EVENTS.c.case_id.in_(part),
                EVENTS.c.member == member,
                EVENTS.c.kind != _TAKEN_OVER,
            )
            .group_by(EVENTS.c.case_id)
        ).all()
        for case_id, last in rows:
            out[case_id] = (last or 0) + 1
    return out


def next_sequence(conn: Connection, case_id: str, member: str) -> int:
    """The next sequence of ``member``'s events on ``case_id``."""
    last = conn.execute(
        select(func.max(EVENTS.c.sequence)).where(
            EVENTS.c.case_id == case_id, EVENTS.c.member == member, EVENTS.c.kind != _TAKEN_OVER
        )
    ).scalar_one_or_none()
    return (last or 0) + 1


# Compiled once, the case ids bound per call (every received batch asks, for all its cases).
_OWN_EVENTS = Prepared(
    select(EVENTS.c.case_id, EVENTS.c.id, EVENTS.c.payload)
    .where(
        EVENTS.c.case_id.in_(bindparam("cases", expanding=True)),
        EVENTS.c.member == bindparam("member"),
        EVENTS.c.kind != _TAKEN_OVER,
    )
    .order_by(EVENTS.c.cursor)
)


def own_events(
    conn: Connection, case_ids: Sequence[str], member: str
) -> dict[str, list[tuple[str, bytes]]]:
    """Case id → (id, bytes) of the events ``member`` made on it, in the order it made them;
    cases without any are left out (one query for all of them). Take-overs are left out: each
    went to the members of its report when it was made (a late joiner has nothing to take)."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for part in chunks(sorted(set(case_ids))):
        for r in _OWN_EVENTS.rows(conn, cases=part, member=member):
            out.setdefault(r.case_id, []).append((r.id, r.payload))
    return out


def case_payloads(conn: Connection, case_ids: Sequence[str]) -> list[tuple[int, bytes]]:
    """(cursor, bytes) of every event of the cases, in this node's order of arrival."""
    out: list[tuple[int, bytes]] = []
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(EVENTS.c.cursor, EVENTS.c.payload).where(EVENTS.c.case_id.in_(part))
        )
        out.extend((r.cursor, r.payload) for r in rows)
    return sorted(out)


def withdrawal_payloads(conn: Connection, report_id: str) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        select(EVENTS.c.cursor, EVENTS.c.payload)
        .where(EVENTS.c.report_id == report_id, EVENTS.c.kind != _TAKEN_OVER)
        .order_by(EVENTS.c.cursor)
    )
    return [(r.cursor, r.payload) for r in rows]


def take_over_payloads(conn: Connection, report_id: str) -> list[tuple[int, bytes]]:
    """(cursor, bytes) of the take-overs of a report's items, in this node's order of arrival."""
    rows = conn.execute(
        select(EVENTS.c.cursor, EVENTS.c.payload)
        .where(EVENTS.c.report_id == report_id, EVENTS.c.kind == _TAKEN_OVER)
        .order_by(EVENTS.c.cursor)
    )
    return [(r.cursor, r.payload) for r in rows]


def payloads_after(conn: Connection, cursor: int, limit: int) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        select(EVENTS.c.cursor, EVENTS.c.payload)
        .where(EVENTS.c.cursor > cursor)
        .order_by(EVENTS.c.cursor)
        .limit(limit)
    )
    return [(r.cursor, r.payload) for r in rows]


# -- item states ----------------------------------------------------------------------------


def _identity(case_id: str, s: ItemState, orphaned: bool) -> dict[str, Any]:
    """The columns every state row has from its first: which item, whose, since when."""
    return {
        "case_id": case_id,
        "report_id": s.ref.report_id,
        "idx": s.ref.index,
        "holder": s.holder,
        "origin_member": s.ref.origin_member,
        "origin_classification": str(s.ref.origin_classification),
        "orphaned": orphaned,
        "clock_started": s.clock_started or s.ref.clock_started,
    }


def _row(case_id: str, s: ItemState, now: datetime, orphaned: bool) -> dict[str, Any]:
    a = s.assessment
    return _identity(case_id, s, orphaned) | {
        "stage": str(s.stage),
        "classification": str(a.classification) if a else None,
        "age_group": str(a.age_group) if a else None,
        "gender": str(a.gender) if a else None,
        "virtual": a.virtual if a else None,
        "user_generated": a.user_generated if a else None,
        "child_modelling": a.child_modelling if a else None,
        "analyst_ref": a.analyst_ref if a else None,
        "disputed": s.disputed,
        "actions": s.actions,
        "last_action": str(s.last_action) if s.last_action else None,
        "assessed_at": s.assessed_at,
        "lea_at": s.lea_at,
        "lea_partner": s.lea_partner or None,
        "host_notice_at": s.host_notice_at,
        "host_recipient": s.host_recipient or None,
        "closed_at": s.closed_at,
        "close_reason": str(s.close_reason) if s.close_reason else None,
        "moved_to_country": s.moved_to_country or None,
        "moved_to_member": s.moved_to_member or None,
        "updated_at": now,
    }


# Stored text → enum member, by dictionary: calling the enum was a third of reading a state.
_CLASSIFICATION = {str(c): c for c in Classification}
_AGE_GROUP = {str(a): a for a in AgeGroup}
_GENDER = {str(g): g for g in Gender}
_STAGE = {str(s): s for s in Stage}
_ACTION = {str(a): a for a in ActionKind}
_REASON = {str(r): r for r in ReasonCode}


def _state(r: Any) -> ItemState:
    """A row of ``select(STATES)`` as the state it stores.

    Unpacked by position, in the table's column order (a column added to the table fails this
    loudly): reading thirty attributes of a row by name cost more than the query.
    """
    (
        _case_id, report_id, idx, holder, origin_member, origin_classification, _orphaned,
        stage, classification, age_group, gender, virtual, user_generated, child_modelling,
        analyst_ref, disputed, actions, last_action, clock_started, assessed_at, lea_at,
        lea_partner, host_notice_at, host_recipient, closed_at, close_reason, moved_to_country,
        moved_to_member, _updated_at, _report_seq,
    ) = r  # fmt: skip
    assessment = None
    if classification is not None:
        assessment = Assessment(
            _CLASSIFICATION[classification],
            _AGE_GROUP[age_group],
            _GENDER[gender],
            bool(virtual),
            bool(user_generated),
            bool(child_modelling),
            analyst_ref or "",
        )
    ref = ItemRef(
        report_id, idx, origin_member, _CLASSIFICATION[origin_classification], clock_started
    )
    return ItemState(
        ref=ref,
        holder=holder,
        clock_started=clock_started,
        stage=_STAGE[stage],
        assessment=assessment,
        disputed=disputed,
        actions=actions,
        last_action=_ACTION[last_action] if last_action else None,
        assessed_at=assessed_at,
        lea_at=lea_at,
        lea_partner=lea_partner or "",
        host_notice_at=host_notice_at,
        host_recipient=host_recipient or "",
        closed_at=closed_at,
        close_reason=_REASON[close_reason] if close_reason else None,
        moved_to_country=moved_to_country or "",
        moved_to_member=moved_to_member or "",
    )


# What a state holds before anything happened to its item: its fields past ``clock_started``.
_UNTOUCHED = (Stage.UNASSESSED, None, False, 0, None, None, None, "", None, "", None, None, "", "")


def _untouched(s: ItemState) -> bool:
    return (
        s.stage, s.assessment, s.disputed, s.actions, s.last_action, s.assessed_at, s.lea_at,
        s.lea_partner, s.host_notice_at, s.host_recipient, s.closed_at, s.close_reason,
        s.moved_to_country, s.moved_to_member,
    ) == _UNTOUCHED  # fmt: skip


def _first_row(case_id: str, s: ItemState, now: datetime, orphaned: bool) -> dict[str, Any]:
    """``_row`` of an untouched state, without the columns it leaves NULL (fewer to bind)."""
    return _identity(case_id, s, orphaned) | {
        "stage": str(Stage.UNASSESSED),
        "disputed": False,
        "actions": 0,
        "updated_at": now,
    }


def _placed(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their report's place (``report_seq``), None for a report not stored here:
    one look-up for all (the writer's places are mostly remembered: store/reports.py)."""
    place = reports.places(conn, {r["report_id"] for r in rows})
    for r in rows:
        r["report_seq"] = place.get(r["report_id"])
    return rows


def open_items(
    conn: Connection, rows: Sequence[tuple[str, ItemState, bool]], now: datetime
) -> None:
    """The holder's first state of new items: (case id, state, orphaned)."""
    untouched = [(c, s, o) for c, s, o in rows if _untouched(s)]
    # Received and taken-in items start untouched: their rows bind 13 columns, not 31.
    insert_rows(conn, STATES, _placed(conn, [_first_row(c, s, now, o) for c, s, o in untouched]))
    if len(untouched) < len(rows):
        touched = [_row(c, s, now, o) for c, s, o in rows if not _untouched(s)]
        insert_rows(conn, STATES, _placed(conn, touched))


def states(conn: Connection, case_ids: Sequence[str]) -> dict[str, list[ItemState]]:
    """Case id → its items' states, in (report, index) order."""
    out: dict[str, list[ItemState]] = {}
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(STATES)
            .where(STATES.c.case_id.in_(part))
            .order_by(STATES.c.case_id, STATES.c.report_id, STATES.c.idx)
        ).all()
        for r in rows:
            out.setdefault(r[0], []).append(_state(r))
    return out


def states_of_report(conn: Connection, report_id: str) -> list[tuple[str, ItemState]]:
    """The states of a report's items, with each one's case: by the report's place if it is
    stored here, and by its id among the rows written without one (0017)."""
    s = STATES.c
    unplaced = and_(s.report_seq.is_(None), s.report_id == report_id)
    place = reports.places(conn, [report_id]).get(report_id)
    found = unplaced if place is None else or_(s.report_seq == place, unplaced)
    rows = conn.execute(select(STATES).where(found).order_by(s.idx, s.case_id))
    return [(r.case_id, _state(r)) for r in rows]


def holder_of(conn: Connection, case_id: str) -> str | None:
    return conn.execute(
        select(STATES.c.holder).where(STATES.c.case_id == case_id).limit(1)
    ).scalar_one_or_none()


def save_states(conn: Connection, case_id: str, new: Iterable[ItemState], now: datetime) -> None:
    """Write the states of a case's items: rows held are replaced, new ones inserted."""
    save_many_states(conn, [(case_id, s) for s in new], now)


def save_many_states(
    conn: Connection, rows: Sequence[tuple[str, ItemState]], now: datetime
) -> None:
    """Write (case id, state) rows in one statement: a row held is overwritten but for its
    ``orphaned`` mark (set once, when the holder opened the item); a new one is inserted."""
    upsert(
        conn,
        STATES,
        _placed(conn, [_row(case_id, s, now, False) for case_id, s in rows]),
        key=("case_id", "report_id", "idx"),
        keep=("orphaned",),
    )


# -- queues ---------------------------------------------------------------------------------


def _queue_filter(queue: Queue, now: datetime, since: datetime) -> Any:
    s = STATES.c
    open_ = s.stage.not_in(_CLOSED)
    if queue is Queue.UNASSESSED:
        return s.stage == str(Stage.UNASSESSED)
    if queue is Queue.UNACTIONED:
        return and_(s.stage == str(Stage.ASSESSED), s.classification.in_(_ILLEGAL))
    if queue is Queue.OVERDUE:
        return and_(open_, s.clock_started < since)
    if queue is Queue.ORPHANED:
        return and_(open_, s.orphaned.is_(True))
    if queue is Queue.DISPUTED:
        return s.disputed.is_(True)
    if queue is Queue.NO_CONTACT:
        return and_(open_, s.case_id.in_(_watched(WATCHES.c.no_contact.is_(True))))
    if queue is Queue.CONFIRM_REMOVAL:
        return and_(open_, s.case_id.in_(_watched(WATCHES.c.state == "suggested")))
    return s.closed_at >= since  # recently closed: then only cases with no open item


def _watched(condition: Any) -> Any:
    """Cases the takedown automation flags (its table is read here only to list the queue)."""
    return select(WATCHES.c.case_id).where(WATCHES.c.state != "done", condition)


QUEUE_WALK_MIN = 200  # (clock, case) pairs read per step of the walk, at least
QUEUE_FEW = 2000  # a queue of at most this many cases is grouped whole (one cheap read)


def queue(
    conn: Connection,
    queue: Queue,
    *,
    holder: str,
    now: datetime,
    since: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[CaseSummary]:
    """Cases held by ``holder`` with an item in ``queue``, oldest clock first, keyset-paged.

    A case's clock is the earliest ``clock_started`` of its items held here. Rather than group
    every matching item before the limit, the holder's (clock, case) pairs are walked in that
    order (an index range, ``ix_item_states_queue_order``) a step at a time, and only the cases
    met in a step are aggregated: a case is taken where the walk meets its own earliest clock —
    so cases come out in their clock order — if it has an item in the queue. Cases whose items
    all lack a clock sort first on SQLite and last on PostgreSQL, as an ORDER BY on the
    aggregate does, and are never on a page after the first.

    A queue of at most ``QUEUE_FEW`` cases (most queues, most days) is found by its filter and
    grouped whole instead: the walk would meet mostly cases outside it.
    """
    s = STATES.c
    few = (
        conn.execute(
            select(s.case_id)
            .where(s.holder == holder, _queue_filter(queue, now, since))
            .distinct()
            .limit(QUEUE_FEW + 1)
        )
        .scalars()
        .all()
    )
    if len(few) <= QUEUE_FEW:
        return _summaries(conn, holder, _grouped(conn, queue, holder, list(few), after, limit))
    taken: list[Any] = []
    seen: set[str] = set()
    step = max(QUEUE_WALK_MIN, 4 * limit)
    phases = [False, True] if conn.dialect.name == "postgresql" else [True, False]
    for nulls in phases:
        if nulls and after is not None:
            continue  # a keyset comparison with no clock is never true
        in_queue = _has_item_in(queue, holder, now, since)
        for pairs in _walk(conn, holder, after, step, in_queue, nulls=nulls):
            taken += _take(conn, queue, holder, now, since, pairs, seen, limit - len(taken))
            if len(taken) >= limit:
                return _summaries(conn, holder, taken)
    return _summaries(conn, holder, taken)


def _grouped(
    conn: Connection,
    queue: Queue,
    holder: str,
    ids: list[str],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """The page among the cases ``ids`` (the whole queue), grouped in one read."""
    if not ids:
        return []
    s = STATES.c
    open_count = func.sum(case((s.stage.in_(_CLOSED), 0), else_=1))
    clock = func.min(s.clock_started)
    stmt = (
        select(
            s.case_id,
            func.count().label("items"),
            open_count.label("open_items"),
            func.max(case((s.disputed.is_(True), 1), else_=0)).label("disputed"),
            clock.label("clock"),
        )
        .where(s.case_id.in_(ids), _by_key(s.holder) == holder)
        .group_by(s.case_id)
    )
    if queue is Queue.RECENTLY_CLOSED:
        stmt = stmt.having(open_count == 0)
    if after is not None:
        # Spelled out rather than a row-value comparison: there the time was bound untyped (not
        # as the column's micros), so on SQLite every page after the first came back empty.
        at, case_id = after
        stmt = stmt.having(or_(clock > at, and_(clock == at, s.case_id > case_id)))
    return list(conn.execute(stmt.order_by(clock, s.case_id).limit(limit)).all())


def _by_key(holder: Any) -> Any:
    """The holder column kept out of index choice (`|| ''`): where the cases are named, SQLite
    must look them up by their key, not scan the holder's every item by its index."""
    return holder + ""


def _has_item_in(queue: Queue, holder: str, now: datetime, since: datetime) -> Any:
    """The walked case has an item held here in ``queue`` (an index lookup by case id)."""
    s = STATES.c
    mine = STATES.alias("mine")
    filtered = _queue_filter(queue, now, since)
    # _queue_filter speaks of STATES; the same condition on the aliased table:
    on_alias = mine.c
    return (
        select(1)
        .select_from(mine)
        .where(
            on_alias.case_id == s.case_id,
            _by_key(on_alias.holder) == holder,
            sql_util.ClauseAdapter(mine).traverse(filtered),
        )
        .exists()
    )


def _walk(
    conn: Connection,
    holder: str,
    after: tuple[datetime, str] | None,
    step: int,
    in_queue: Any,
    *,
    nulls: bool,
) -> Iterator[list[tuple[datetime | None, str]]]:
    """The holder's distinct (clock, case) pairs of cases in the queue after ``after`` in
    order, ``step`` at a time; with ``nulls`` those of items without a clock, by case id."""
    s = STATES.c
    cursor = after
    while True:
        stmt = select(s.clock_started, s.case_id).where(s.holder == holder, in_queue).distinct()
        if nulls:
            stmt = stmt.where(s.clock_started.is_(None))
            if cursor is not None:
                stmt = stmt.where(s.case_id > cursor[1])
            stmt = stmt.order_by(s.case_id)
        else:
            stmt = stmt.where(s.clock_started.is_not(None))
            if cursor is not None:
                at, case_id = cursor
                stmt = stmt.where(
                    or_(s.clock_started > at, and_(s.clock_started == at, s.case_id > case_id))
                )
            stmt = stmt.order_by(s.clock_started, s.case_id)
        pairs = [(r.clock_started, r.case_id) for r in conn.execute(stmt.limit(step))]
        if pairs:
            yield pairs
        if len(pairs) < step:
            return
        last_at, last_case = pairs[-1]
        cursor = (last_at if last_at is not None else datetime.min, last_case)


def _take(
    conn: Connection,
    queue: Queue,
    holder: str,
    now: datetime,
    since: datetime,
    pairs: list[tuple[datetime | None, str]],
    seen: set[str],
    wanted: int,
) -> list[Any]:
    """Of the cases met at ``pairs``, those whose earliest clock this is and that belong in the
    queue, in walk order, at most ``wanted``; their aggregate rows."""
    s = STATES.c
    ids = list(dict.fromkeys(c for _, c in pairs if c not in seen))
    if not ids:
        return []
    open_count = func.sum(case((s.stage.in_(_CLOSED), 0), else_=1))
    rows = {
        r.case_id: r
        for r in conn.execute(
            select(
                s.case_id,
                func.count().label("items"),
                open_count.label("open_items"),
                func.max(case((s.disputed.is_(True), 1), else_=0)).label("disputed"),
                func.min(s.clock_started).label("clock"),
                func.max(case((_queue_filter(queue, now, since), 1), else_=0)).label("matched"),
            )
            .where(s.case_id.in_(ids), _by_key(s.holder) == holder)
            .group_by(s.case_id)
        )
    }
    out = []
    for at, case_id in pairs:
        r = rows.get(case_id)
        if case_id in seen or r is None or r.clock != at:
            continue  # met again later in the walk, or not at its own earliest clock
        seen.add(case_id)
        if not r.matched or (queue is Queue.RECENTLY_CLOSED and int(r.open_items or 0) != 0):
            continue
        out.append(r)
        if len(out) >= wanted:
            break
    return out


def _summaries(conn: Connection, holder: str, rows: list[Any]) -> list[CaseSummary]:
    headers = {
        r.id: r
        for r in conn.execute(
            select(CASES.c.id, CASES.c.hosting_country, CASES.c.opened_at).where(
                CASES.c.id.in_([r.case_id for r in rows])
            )
        )
    }
    out = []
    for r in rows:
        h = headers.get(r.case_id)
        out.append(
            CaseSummary(
                id=r.case_id,
                holder=holder,
                hosting_country=h.hosting_country if h else None,
                opened_at=h.opened_at if h else None,
                items=r.items,
                open_items=int(r.open_items or 0),
                disputed=bool(r.disputed),
                cursor=f"{to_micros(r.clock) if r.clock else 0}/{r.case_id}",
            )
        )
    return out


def queue_counts(conn: Connection, holder: str, now: datetime, since: datetime) -> dict[Queue, int]:
    """Cases per queue (the metrics' gauges and the queue overview), in one pass over the
    holder's item states: each case's flags first (is any item in the queue; how many are
    open), then the cases summed — "recently closed" counts only cases with no open item left,
    as the queue lists them."""
    s = STATES.c
    flags = [
        func.max(case((_queue_filter(q, now, since), 1), else_=0)).label(q.value) for q in Queue
    ]
    open_items = func.sum(case((s.stage.in_(_CLOSED), 0), else_=1)).label("open_items")
    per_case = select(*flags, open_items).where(s.holder == holder).group_by(s.case_id).subquery()
    c = per_case.c
    closed_all = and_(c[Queue.RECENTLY_CLOSED.value] == 1, c.open_items == 0)
    sums = [
        func.coalesce(
            func.sum(case((closed_all, 1), else_=0))
            if q is Queue.RECENTLY_CLOSED
            else func.sum(c[q.value]),
            0,
        )
        for q in Queue
    ]
    row = conn.execute(select(*sums)).one()
    return {q: int(n) for q, n in zip(Queue, row, strict=True)}
