"""What people read of the takedown automation: the watches at a glance, and one case's watch.

Read-only, through the engine (never the writer): ``ihx takedown status`` / ``show`` and the
metrics read these while the node runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from common.clock import Clock
from exchange.errors import NotFound
from exchange.store import holds as hold_store
from exchange.store import takedown as store
from exchange.store.takedown import WatchView
from exchange.takedown.model import Check, Hold

SHOWN_CHECKS = 20


@dataclass(frozen=True, slots=True)
class CaseTakedown:
    """One case's watch: its state, its last checks (newest first) and every hold on it."""

    watch: WatchView
    checks: tuple[Check, ...]
    holds: tuple[tuple[Hold, datetime | None], ...]


@dataclass(frozen=True, slots=True)
class TakedownStatus:
    watches: dict[str, int]  # per state
    due: int  # watches due now (not done)
    no_contact: int
    on_hold: int


class TakedownViews:
    def __init__(self, *, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def status(self) -> TakedownStatus:
        with self._engine.connect() as conn:
            counts = dict(store.counts(conn))
            due, no_contact, held = store.flagged(conn, self._clock())
        return TakedownStatus(counts, due, no_contact, held)

    def case(self, case_id: str) -> CaseTakedown:
        with self._engine.connect() as conn:
            watch = store.watches(conn, [case_id]).get(case_id)
            if watch is None:
                raise NotFound(f"case {case_id} is not watched here (not held, or never illegal)")
            checks = store.recent_checks(conn, [case_id], SHOWN_CHECKS).get(case_id, [])
            holds = hold_store.of_case(conn, case_id)
        return CaseTakedown(watch, tuple(checks), tuple(holds))
