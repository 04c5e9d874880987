"""Holds on a case's notices: every statement on ``takedown_holds``, and the watch's copy.

Rows are never deleted: a release stamps ``released_at`` / ``released_by``, so the table is
the audit of who held what, why and for how long (the routing log says the same, chained). The
watch's ``hold_until`` is the latest end of the case's active holds, rewritten after each
change, so the notice planner reads one column instead of this table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from exchange.store import schema
from exchange.store.sql import chunks
from exchange.takedown.model import Hold

HOLDS = schema.takedown_holds
WATCHES = schema.takedown_watches


def add(conn: Connection, hold: Hold) -> None:
    conn.execute(
        insert(HOLDS).values(
            case_id=hold.case_id, by=hold.by, until=hold.until, reason=hold.reason, at=hold.at
        )
    )
    refresh_watches(conn, [hold.case_id])


def release(conn: Connection, case_id: str, by: str, now: datetime) -> int:
    """End ``by``'s active holds on the case; how many there were."""
    h = HOLDS.c
    result = conn.execute(
        update(HOLDS)
        .where(h.case_id == case_id, h.by == by, h.released_at.is_(None), h.until > now)
        .values(released_at=now, released_by=by)
    )
    refresh_watches(conn, [case_id])
    return int(result.rowcount or 0)


def active_count(conn: Connection, case_id: str, by: str, now: datetime) -> int:
    h = HOLDS.c
    n = conn.execute(
        select(func.count()).where(
            h.case_id == case_id, h.by == by, h.released_at.is_(None), h.until > now
        )
    ).scalar_one()
    return int(n)


def count_of(conn: Connection, case_id: str, by: str) -> int:
    """Every hold ``by`` ever placed on the case, released or not."""
    h = HOLDS.c
    n = conn.execute(select(func.count()).where(h.case_id == case_id, h.by == by)).scalar_one()
    return int(n)


def of_case(conn: Connection, case_id: str) -> list[tuple[Hold, datetime | None]]:
    """Every hold on the case, oldest first, with when it was released (None: it was not)."""
    h = HOLDS.c
    rows = conn.execute(select(HOLDS).where(h.case_id == case_id).order_by(h.at, h.id))
    return [(Hold(r.case_id, r.by, r.until, r.reason, r.at), r.released_at) for r in rows]


def refresh_watches(conn: Connection, case_ids: Sequence[str]) -> None:
    """Each watch's ``hold_until``: the latest end of its case's unreleased holds (or NULL)."""
    h = HOLDS.c
    w = WATCHES.c
    latest = (
        select(func.max(h.until))
        .where(h.case_id == w.case_id, h.released_at.is_(None))
        .scalar_subquery()
    )
    for part in chunks(sorted(set(case_ids))):
        conn.execute(update(WATCHES).where(w.case_id.in_(part)).values(hold_until=latest))
