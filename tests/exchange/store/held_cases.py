"""Cases held here with items in given states, on a real database (store tests' builder).

``put_case`` opens a case (its header in ``cases``) and writes its items' states as the
lifecycle would have left them; ``item`` / ``assessed_as`` / ``closed_item`` make the states,
their takedown clocks given in days before ``NOW``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from exchange.domain import Classification
from exchange.lifecycle.model import ItemState, Stage
from exchange.store import cases as case_store
from exchange.store import lifecycle as store
from tests.exchange.factories import T0, make_report
from tests.exchange.lifecycle.factories import HOLDER, assessment, case_id, make_state, report_id

NOW = T0 + timedelta(days=60)
SINCE = NOW - timedelta(days=30)


def put_case(
    engine: Engine,
    seed: str,
    states: Sequence[ItemState],
    *,
    orphaned: bool = False,
    holder: str = HOLDER,
    header: bool = True,
) -> str:
    """A case held by ``holder`` (a cases row unless ``header`` is False) with these items."""
    cid = case_id(seed)
    with engine.begin() as conn:
        if header:
            report = make_report(url=f"https://hosting-de.example/{seed}.jpg", hashes=[seed])
            case_store.open_cases(conn, [(cid, report)], states[0].clock_started or T0)
        store.open_items(
            conn,
            [
                (
                    cid,
                    replace(s, holder=holder, ref=replace(s.ref, report_id=report_id(seed))),
                    orphaned,
                )
                for s in states
            ],
            NOW,
        )
    return cid


def clock(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def item(index: int = 0, *, days_ago: float = 1, **changes: object) -> ItemState:
    start = clock(days_ago)
    state = make_state(index, **changes)
    return replace(state, clock_started=start, ref=replace(state.ref, clock_started=start))


def assessed_as(c: Classification, index: int = 0, **changes: object) -> ItemState:
    return item(index, stage=Stage.ASSESSED, assessment=assessment(c), **changes)


def closed_item(index: int = 0, *, closed_days_ago: float, **changes: object) -> ItemState:
    return item(index, stage=Stage.REMOVED, closed_at=clock(closed_days_ago), **changes)
