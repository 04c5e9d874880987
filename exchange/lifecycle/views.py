"""What people read of the lifecycle: a case with its timeline, a report's status at its
origin, the work queues and the change feed — read-only, outside the writer. Where a case or a
report moved between holders, ``transfer/views`` adds the move (and the old holder's history).

A case held here shows its URL, hosting country, reporting members and its law-enforcement
partners' feedback; a case held elsewhere (this node reported it, or coordinates) shows what
the holder's events told: its items' stages, times and the timeline, never a URL this node
does not hold. Timelines are the stored signed events decoded again, in the order this node
received them, which for one holder is the order it made them (one ordered stream per peer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine

from common.clock import Clock
from exchange.domain import ItemPdq, is_case_id
from exchange.errors import InvalidEvent, NotFound
from exchange.lifecycle.model import (
    CaseDetail,
    CaseEvent,
    CaseSummary,
    ItemRef,
    ItemState,
    PartnerFeedback,
    Queue,
    ReportStatus,
    TimedEvent,
)
from exchange.lifecycle.rules import case_closed
from exchange.store import cases as case_store
from exchange.store import lifecycle as store
from exchange.store import outbox, partners, reports
from exchange.times import from_micros
from exchange.transfer import views as moves
from exchange.wire.case_codec import event_from_bytes

MAX_QUEUE_PAGE = 1000
MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z, the last representable
DEFAULT_QUEUE_PAGE = 100
DEFAULT_DAYS = {Queue.OVERDUE: 30, Queue.RECENTLY_CLOSED: 7}


class NearOfCase(Protocol):
    """A case's PDQ items matched when read: exchange/pdq/case_near.py, injected by node.py and
    the web app, so this room does not reach into another. Per PDQ item of ``items`` (report
    id, index), its known and near-known content; or none and a note why not now."""

    def of_case(
        self, case_id: str, items: Sequence[tuple[str, int]]
    ) -> tuple[tuple[ItemPdq, ...], str]: ...


class CaseViews:
    def __init__(
        self, *, self_member: str, engine: Engine, clock: Clock, near: NearOfCase | None = None
    ) -> None:
        self._self = self_member
        self._engine = engine
        self._clock = clock
        self._near = near  # the case's PDQ items matched when read (pdq/case_near.py)

    def case(self, case_id: str) -> CaseDetail:
        with self._engine.connect() as conn:
            detail = case_detail(conn, self._self, case_id)
        if self._near is None or detail.anonymised:
            return detail
        keys = [(s.ref.report_id, s.ref.index) for s in detail.items]
        pdq, note = self._near.of_case(detail.id, keys)
        return replace(detail, pdq=pdq, pdq_note=note)

    def report_status(self, report_id: str) -> ReportStatus:
        with self._engine.connect() as conn:
            return report_status(conn, self._self, report_id)

    def queue(
        self, queue: Queue, *, older_than_days: int = 0, after: str = "", limit: int = 0
    ) -> tuple[list[CaseSummary], str]:
        """A page of the queue (oldest takedown clock first) and the cursor of the next page."""
        days = older_than_days or DEFAULT_DAYS.get(queue, 30)
        if not 1 <= days <= 36_500:
            raise InvalidEvent("older_than_days: from 1 to 36,500")
        size = limit or DEFAULT_QUEUE_PAGE
        if not 1 <= size <= MAX_QUEUE_PAGE:
            raise InvalidEvent(f"limit: from 1 to {MAX_QUEUE_PAGE}")
        now = self._clock()
        with self._engine.connect() as conn:
            rows = store.queue(
                conn,
                queue,
                holder=self._self,
                now=now,
                since=now - timedelta(days=days),
                after=parse_queue_cursor(after),
                limit=size,
            )
        return rows, rows[-1].cursor if len(rows) == size else ""

    def queue_counts(self, days: int = 30) -> dict[Queue, int]:
        now = self._clock()
        with self._engine.connect() as conn:
            return store.queue_counts(conn, self._self, now, now - timedelta(days=days))

    def changes(self, after: int, limit: int) -> list[TimedEvent]:
        """Events this node made or applied after feed cursor ``after``, in feed order."""
        with self._engine.connect() as conn:
            rows = store.payloads_after(conn, after, limit)
        return [TimedEvent(cursor, event_from_bytes(p)) for cursor, p in rows]


def parse_queue_cursor(text: str) -> tuple[datetime, str] | None:
    """A queue cursor as this node hands it out ("micros/case id"); empty: the beginning."""
    if not text:
        return None
    micros, _, case_id = text.partition("/")
    # ASCII digits (str.isdigit also takes "²", which int() refuses) and a case id in its exact
    # form: any other text (a NUL, which PostgreSQL refuses) never reaches a query.
    if not (micros.isascii() and micros.isdigit()) or len(micros) > 18 or not is_case_id(case_id):
        raise InvalidEvent("after_cursor: not a queue cursor from this node")
    return from_micros(int(micros)), case_id


def _timeline(conn: Connection, case_ids: Sequence[str]) -> list[CaseEvent]:
    return [event_from_bytes(p) for _, p in store.case_payloads(conn, case_ids)]


def case_detail(conn: Connection, self_member: str, case_id: str) -> CaseDetail:
    """A case as this node knows it (``NotFound`` when it knows nothing of it)."""
    held = case_store.held(conn, case_id)
    items = tuple(store.states(conn, [case_id]).get(case_id, []))
    if held is None and not items:
        raise NotFound(f"no case {case_id} here")
    timeline = tuple(_timeline(conn, [case_id]))
    if held is None:
        return CaseDetail(
            id=case_id,
            holder=items[0].holder,
            url="",
            hosting_country=None,
            opened_at=min((s.clock_started for s in items if s.clock_started), default=None),
            closed_at=_closed_at(items),
            reporting_members=tuple(dict.fromkeys(s.ref.origin_member for s in items)),
            items=items,
            timeline=timeline,
            moved_from=moves.take_over_of(timeline),
        )
    linked = case_store.members(conn, [case_id]).get(case_id, [])
    first = reports.facts(conn, [held.first_report_id]).get(held.first_report_id)
    feedback = partners.feedback(conn, [case_id]).get(case_id, [])
    moved_from, history = moves.moved_from(conn, held)
    return CaseDetail(
        id=case_id,
        holder=self_member,
        url="" if held.anonymised_at else held.url,
        hosting_country=held.hosting_country,
        opened_at=held.opened_at,
        closed_at=held.closed_at,
        reporting_members=tuple(dict.fromkeys(m for _, m in linked)),
        items=items,
        timeline=timeline,
        decision_reason=first.decision_reason if first else "",
        anonymised=held.anonymised_at is not None,
        feedback=tuple(PartnerFeedback(f.partner, f.code, f.note, f.at) for f in feedback),
        moved_from=moved_from,
        history=history,
        moved_to=moves.moved_to(conn, held),
    )


def _closed_at(items: Sequence[ItemState]) -> datetime | None:
    if not case_closed(items):
        return None
    return max((s.closed_at for s in items if s.closed_at), default=None)


def report_status(conn: Connection, self_member: str, report_id: str) -> ReportStatus:
    """A report as its origin (or holder) sees it: delivery, items, timeline."""
    facts = reports.facts(conn, [report_id]).get(report_id)
    if facts is None:
        raise NotFound(f"no report {report_id} here")
    rejection = ""
    if facts.decision_member == self_member:
        delivery, case_id = "local", facts.case_id or ""
        receipted_at = None
    else:
        d = outbox.delivery_of(conn, report_id)
        if d is None:
            delivery, case_id, receipted_at = (
                outbox.queued_state(conn, report_id) or "queued",
                "",
                None,
            )
        else:
            delivery, case_id, receipted_at = d.outcome, d.remote_case_id or "", d.receipted_at
            rejection = d.reason or ""
    # Only what the member the report went to said, about the case its receipt named: another
    # member's events cannot speak for this report.
    held = {
        s.ref.index: s
        for c, s in store.states_of_report(conn, report_id)
        if s.holder == facts.decision_member and (not case_id or c == case_id)
    }
    items = tuple(
        held.get(i)
        or ItemState(
            ItemRef(report_id, i, facts.origin_member, c, receipted_at),
            facts.decision_member,
            receipted_at,
        )
        for i, c in enumerate(facts.items)
    )
    # In this node's order of arrival (one holder's order), never by the times events state.
    rows = dict(store.case_payloads(conn, [case_id])) if case_id else {}
    rows.update(store.withdrawal_payloads(conn, report_id))
    events = [event_from_bytes(p) for _, p in sorted(rows.items())]
    timeline = tuple(e for e in events if any(r.report_id == report_id for r in e.items))
    return ReportStatus(
        report_id=report_id,
        destination=facts.decision_member,
        case_id=case_id,
        receipted_at=receipted_at or (items[0].clock_started if items else None),
        delivery=delivery,
        withdrawn=facts.withdrawn_at is not None,
        items=items,
        timeline=timeline,
        rejection=rejection,
        moves=moves.report_moves(
            conn,
            report_id,
            items,
            from_case=case_id,
            from_country=facts.hosting_country or "",
        ),
    )
