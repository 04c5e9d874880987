"""Partners' case queues: every statement on ``partner_cases``.

One row per (partner, case) with a cursor (the queue order), a visibility deadline, a pull count
and the acknowledgement time. Assigning is insert-or-ignore, so a case assigned again (another
report merged into it) is never queued twice. Reads of the cases themselves go through
store/cases.py, store/reports.py and store/inbox.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, case, func, select, update

from exchange.store import schema
from exchange.store.sql import insert_ignore

PARTNER_CASES = schema.partner_cases
FEEDBACK = schema.partner_feedback


@dataclass(frozen=True, slots=True)
class Assignment:
    partner: str
    case_id: str


def assign(conn: Connection, assignments: Sequence[Assignment], now: datetime) -> None:
    """Queue cases for partners; an assignment already held is left as it is."""
    rows = [
        {
            "partner": a.partner,
            "case_id": a.case_id,
            "assigned_at": now,
            "visible_after": None,
            "pulls": 0,
            "acked_at": None,
        }
        for a in assignments
    ]
    insert_ignore(conn, PARTNER_CASES, rows)


def take_visible(
    conn: Connection, partner: str, *, after: int, limit: int, now: datetime, hide_until: datetime
) -> dict[str, int]:
    """Case id → cursor of the partner's next unacknowledged, visible cases after ``after``;
    each one taken becomes invisible until ``hide_until`` and counts a pull."""
    pc = PARTNER_CASES
    rows = conn.execute(
        select(pc.c.cursor, pc.c.case_id)
        .where(
            pc.c.partner == partner,
            pc.c.acked_at.is_(None),
            pc.c.cursor > after,
            (pc.c.visible_after.is_(None)) | (pc.c.visible_after <= now),
        )
        .order_by(pc.c.cursor)
        .limit(limit)
    ).all()
    if rows:
        conn.execute(
            update(pc)
            .where(pc.c.cursor.in_([r.cursor for r in rows]))
            .values(visible_after=hide_until, pulls=pc.c.pulls + 1)
        )
    return {r.case_id: r.cursor for r in rows}


def ack_state(
    conn: Connection, partner: str, case_ids: Sequence[str]
) -> dict[str, datetime | None]:
    """Case id → acknowledgement time (None: not yet) for the partner's cases among ``case_ids``."""
    pc = PARTNER_CASES
    return {
        r.case_id: r.acked_at
        for r in conn.execute(
            select(pc.c.case_id, pc.c.acked_at).where(
                pc.c.partner == partner, pc.c.case_id.in_(list(case_ids))
            )
        )
    }


def mark_acked(conn: Connection, partner: str, case_ids: Sequence[str], now: datetime) -> None:
    pc = PARTNER_CASES
    if case_ids:
        conn.execute(
            update(pc)
            .where(pc.c.partner == partner, pc.c.case_id.in_(list(case_ids)))
            .values(acked_at=now)
        )


def reoffer(conn: Connection, case_ids: Sequence[str]) -> int:
    """A case's lifecycle moved on: its partners get it again, with its timeline, on their next
    pull (an acknowledgement covers what the partner had seen)."""
    if not case_ids:
        return 0
    pc = PARTNER_CASES
    done = conn.execute(
        update(pc).where(pc.c.case_id.in_(list(case_ids))).values(acked_at=None, visible_after=None)
    )
    return done.rowcount


@dataclass(frozen=True, slots=True)
class Feedback:
    partner: str
    code: str
    note: str
    at: datetime


def add_feedback(
    conn: Connection, partner: str, case_id: str, code: str, note: str, now: datetime
) -> None:
    conn.execute(
        FEEDBACK.insert(),
        {"partner": partner, "case_id": case_id, "code": code, "note": note, "at": now},
    )


def feedback_count(conn: Connection, partner: str, case_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(FEEDBACK)
            .where(FEEDBACK.c.partner == partner, FEEDBACK.c.case_id == case_id)
        ).scalar_one()
    )


def feedback(conn: Connection, case_ids: Sequence[str]) -> dict[str, list[Feedback]]:
    """Case id → partners' feedback on it, oldest first."""
    out: dict[str, list[Feedback]] = {}
    rows = conn.execute(
        select(FEEDBACK).where(FEEDBACK.c.case_id.in_(list(case_ids))).order_by(FEEDBACK.c.id)
    )
    for r in rows:
        out.setdefault(r.case_id, []).append(Feedback(r.partner, r.code, r.note, r.at))
    return out


def backlog(conn: Connection) -> dict[tuple[str, str], int]:
    """(partner, ``pulled`` or ``not_pulled``) → cases assigned and not yet acknowledged (the
    metrics' gauge; the acked_at index keeps it to the unacknowledged rows)."""
    pc = PARTNER_CASES.c
    pulled = case((pc.pulls > 0, "pulled"), else_="not_pulled").label("state")
    rows = conn.execute(
        select(pc.partner, pulled, func.count())
        .where(pc.acked_at.is_(None))
        .group_by(pc.partner, pulled)
    )
    return {(str(partner), str(state)): int(n) for partner, state, n in rows}
