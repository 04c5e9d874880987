"""``store.lifecycle.queue`` pages first and aggregates only the page's cases: its pages are
those of the set-based query it replaced (kept here as the reference), across many walk steps,
cases whose earliest clock is on an item outside the queue, shared clocks and items without a
clock — on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from exchange.domain import Classification
from exchange.lifecycle.model import ItemState, Queue
from exchange.store import lifecycle as store
from exchange.times import from_micros
from tests.exchange.lifecycle.factories import HOLDER
from tests.exchange.store.held_cases import (
    NOW,
    SINCE,
    assessed_as,
    closed_item,
    item,
    put_case,
)

S = store.STATES.c


def reference(
    conn: Connection, queue: Queue, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[str, int, int, bool, Any]]:
    """The query ``queue`` ran before: group every matching case, then the keyset limit."""
    matching = select(S.case_id).where(S.holder == HOLDER, store._queue_filter(queue, NOW, SINCE))
    open_count = func.sum(case((S.stage.in_(store._CLOSED), 0), else_=1))
    clock = func.min(S.clock_started)
    stmt = (
        select(
            S.case_id,
            func.count().label("items"),
            open_count.label("open_items"),
            func.max(case((S.disputed.is_(True), 1), else_=0)).label("disputed"),
            clock.label("clock"),
        )
        .where(S.case_id.in_(matching), S.holder == HOLDER)
        .group_by(S.case_id)
    )
    if queue is Queue.RECENTLY_CLOSED:
        stmt = stmt.having(open_count == 0)
    if after is not None:
        at, case_id = after
        stmt = stmt.having(or_(clock > at, and_(clock == at, S.case_id > case_id)))
    rows = conn.execute(stmt.order_by(clock, S.case_id).limit(limit)).all()
    return [(r.case_id, r.items, int(r.open_items or 0), bool(r.disputed), r.clock) for r in rows]


def no_clock(state: ItemState) -> ItemState:
    return replace(state, clock_started=None, ref=replace(state.ref, clock_started=None))


def build(engine: Engine) -> None:
    for n in range(24):
        days = [3, 7, 7, 12, 1, 40][n % 6]
        put_case(engine, f"walk-{n}", [item(days_ago=days)])
        # earliest clock on an item outside the unassessed queue
        put_case(
            engine,
            f"early-{n}",
            [assessed_as(Classification.BASELINE, 0, days_ago=days + 5), item(1, days_ago=2)],
        )
        if n % 4 == 0:
            put_case(engine, f"closed-{n}", [closed_item(closed_days_ago=2, days_ago=days)])
            put_case(engine, f"nil-{n}", [no_clock(item())])
            put_case(engine, f"mixed-{n}", [no_clock(item()), item(1, days_ago=days)])
        put_case(engine, f"other-{n}", [item(days_ago=days)], holder="nl-eokm")


@pytest.mark.parametrize("few", [0, 5, store.QUEUE_FEW])  # walked / mixed / grouped whole
@pytest.mark.parametrize("limit", [1, 3, 50])
def test_pages_equal_the_set_based_query(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, limit: int, few: int
) -> None:
    monkeypatch.setattr(store, "QUEUE_WALK_MIN", 2)  # many small steps
    monkeypatch.setattr(store, "QUEUE_FEW", few)
    build(engine)
    with engine.connect() as conn:
        for queue in Queue:
            after: tuple[datetime, str] | None = None
            pages = 0
            while True:
                want = reference(conn, queue, after, limit)
                got = store.queue(
                    conn, queue, holder=HOLDER, now=NOW, since=SINCE, after=after, limit=limit
                )
                summary = [(g.id, g.items, g.open_items, g.disputed) for g in got]
                assert summary == [w[:4] for w in want], (queue, after)
                if len(got) < limit:
                    break
                micros, _, last = got[-1].cursor.partition("/")
                after = (from_micros(int(micros)), last)
                pages += 1
            if queue is Queue.UNASSESSED:
                assert pages >= 48 // limit  # the walk and early cases, at least
