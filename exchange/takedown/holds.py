"""Holds on notices: law enforcement first.

A partner assigned a case may ask that no notice go to the hoster for a while (the police want
the content online until evidence is preserved); an analyst may do the same from the CLI. A
hold is bounded (at most ``MAX_HOLD`` from now, renewable; at most ``MAX_ACTIVE`` active holds
per case and holder), needs a reason, and is audited twice: its row is kept after release, and
each hold and release is a routing-log entry. The notice planner waits for the latest end of a
case's active holds (``model.notice_due``); re-checks go on meanwhile — a hold delays the
notice, never the evidence of whether the content is still there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from common.clock import Clock
from exchange.domain import LogKind, is_case_id
from exchange.errors import InvalidEvent, NotFound, QuotaExceeded
from exchange.store import cases as case_store
from exchange.store import holds as store
from exchange.store.writer import Tx, Writer
from exchange.takedown.model import Hold

MAX_HOLD = timedelta(days=90)
MAX_ACTIVE = 10
MAX_PER_CASE = 100  # holds one holder may ever place on one case (rows and log entries stay)
MAX_REASON = 200

Allowed = Callable[[Tx, str, str], bool]  # (tx, who, case) → may this holder hold this case?


class Holds:
    def __init__(self, *, writer: Writer, engine: Engine, clock: Clock, self_member: str) -> None:
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self._self = self_member

    def hold(
        self, case_id: str, by: str, duration: timedelta, reason: str, allowed: Allowed
    ) -> Hold:
        """Hold the case's notices for ``duration`` (validated); the hold as recorded."""
        _check(case_id, duration, reason)
        return self._writer.execute(
            lambda tx: self._hold(tx, case_id, by, duration, reason.strip(), allowed)
        )

    def release(self, case_id: str, by: str, allowed: Allowed) -> int:
        if not is_case_id(case_id):
            raise InvalidEvent(f"case_id: not a case id: {case_id[:60]!r}")
        return self._writer.execute(lambda tx: self._release(tx, case_id, by, allowed))

    def _hold(
        self, tx: Tx, case_id: str, by: str, duration: timedelta, reason: str, allowed: Allowed
    ) -> Hold:
        now = self._clock()
        if case_store.held(tx.conn, case_id) is None or not allowed(tx, by, case_id):
            raise NotFound(f"no case {case_id} for {by} here")
        if store.count_of(tx.conn, case_id, by) >= MAX_PER_CASE:
            raise QuotaExceeded(
                f"{by} has held case {case_id} {MAX_PER_CASE} times: the most one holder may"
            )
        if store.active_count(tx.conn, case_id, by, now) >= MAX_ACTIVE:
            raise QuotaExceeded(
                f"{by} holds case {case_id} {MAX_ACTIVE} times already: release one first"
            )
        hold = Hold(case_id=case_id, by=by, until=now + duration, reason=reason, at=now)
        store.add(tx.conn, hold)
        self._log(tx, LogKind.NOTICES_HELD, now, by, case_id, until=hold.until.isoformat())
        return hold

    def _release(self, tx: Tx, case_id: str, by: str, allowed: Allowed) -> int:
        now = self._clock()
        if case_store.held(tx.conn, case_id) is None or not allowed(tx, by, case_id):
            raise NotFound(f"no case {case_id} for {by} here")
        released = store.release(tx.conn, case_id, by, now)
        if released:
            self._log(tx, LogKind.HOLD_RELEASED, now, by, case_id, released=released)
        return released

    def _log(
        self, tx: Tx, kind: LogKind, now: datetime, by: str, case_id: str, **extra: object
    ) -> None:
        tx.log(
            tx.chain.append(
                now, kind, member=self._self, detail={"case": case_id, "by": by, **extra}
            )
        )

    def of_case(self, case_id: str) -> list[tuple[Hold, datetime | None]]:
        """Every hold on the case, oldest first, with its release time (None: not released)."""
        with self._engine.connect() as conn:
            return store.of_case(conn, case_id)


def _check(case_id: str, duration: timedelta, reason: str) -> None:
    if not is_case_id(case_id):
        raise InvalidEvent(f"case_id: not a case id: {case_id[:60]!r}")
    if not timedelta(seconds=1) <= duration <= MAX_HOLD:
        raise InvalidEvent(
            f"hold: {duration.total_seconds():.0f} s is outside 1 s … {MAX_HOLD.days} days"
        )
    text = reason.strip()
    if not text or len(text) > MAX_REASON or not text.isprintable():
        raise InvalidEvent(f"reason: required, printable, at most {MAX_REASON} characters")
