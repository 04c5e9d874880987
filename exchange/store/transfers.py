"""Case transfers: every statement on ``case_transfers``, and the read of what a transfer carries.

A row per ``moved`` event and report, on both sides of a move: the old holder records what it
sent (``SENT``) and, from the new holder's signed receipt, the outcome and the new case; the new
holder records what it took in (``RECEIVED``) with the payload as received and the envelope that
carried it, so the report inside stays verifiable and the old holder's history can be shown.

``carried_reports`` is a read across aggregates (reports and the inbox), like ``evidence.py``:
the origin's own evidence of each report, exactly as stored, for the old holder to pass on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from exchange.store import schema
from exchange.store.sql import chunks

TRANSFERS = schema.case_transfers
REPORTS = schema.reports
INBOX = schema.inbox

SENT = "sent"
RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class CarriedReport:
    """A report as the old holder passes it on: its bytes and, when it arrived in an origin's
    envelope, that envelope's signed header and the report's place in it."""

    report_id: str
    origin_member: str
    decision_member: str
    wire: bytes
    header: bytes | None = None
    signature: bytes | None = None
    leaf_index: int | None = None
    proof: bytes | None = None


def carried_reports(conn: Connection, report_ids: Sequence[str]) -> dict[str, CarriedReport]:
    """The stored reports among ``report_ids`` with the origin envelope each arrived in."""
    r, i = REPORTS.c, INBOX.c
    out: dict[str, CarriedReport] = {}
    for part in chunks(sorted(set(report_ids))):
        rows = conn.execute(
            select(
                r.id,
                r.origin_member,
                r.decision_member,
                r.wire,
                r.leaf_index,
                r.proof,
                i.header,
                i.signature,
            )
            .select_from(REPORTS)
            .outerjoin(INBOX, (i.sender == r.sender) & (i.sequence == r.envelope_sequence))
            .where(r.id.in_(part))
        )
        for row in rows:
            out[row.id] = CarriedReport(
                row.id,
                row.origin_member,
                row.decision_member,
                row.wire,
                row.header,
                row.signature,
                row.leaf_index,
                row.proof,
            )
    return out


@dataclass(frozen=True, slots=True)
class Transfer:
    """One row: a report's moved items, sent from here or received here."""

    moved_event: str
    report_id: str
    role: str
    from_member: str
    from_case: str
    to_member: str
    to_case: str | None
    country: str
    moved_at: datetime
    items: int
    stored_at: datetime
    outcome: str | None = None
    reason: str | None = None
    payload: bytes | None = None
    sender: str | None = None
    envelope_sequence: int | None = None
    leaf_index: int | None = None
    proof: bytes | None = None
    geo_country: str | None = None
    geo_agrees: bool | None = None
    receipted_at: datetime | None = None


_COLUMNS = tuple(Transfer.__dataclass_fields__)


def _transfer(row: object) -> Transfer:
    return Transfer(**{name: getattr(row, name) for name in _COLUMNS})


def record(conn: Connection, rows: Sequence[Transfer]) -> None:
    if rows:
        conn.execute(
            TRANSFERS.insert(),
            [{name: getattr(t, name) for name in _COLUMNS} for t in rows],
        )


def received(conn: Connection, moved_event: str, report_id: str) -> Transfer | None:
    """The transfer of ``report_id`` for ``moved_event`` taken in here before, if any."""
    row = conn.execute(
        select(TRANSFERS).where(
            TRANSFERS.c.moved_event == moved_event,
            TRANSFERS.c.report_id == report_id,
            TRANSFERS.c.role == RECEIVED,
        )
    ).first()
    return None if row is None else _transfer(row)


def case_of_move(conn: Connection, moved_event: str) -> str | None:
    """The case here that an earlier part of the same move went into."""
    return conn.execute(
        select(TRANSFERS.c.to_case)
        .where(TRANSFERS.c.moved_event == moved_event, TRANSFERS.c.role == RECEIVED)
        .limit(1)
    ).scalar_one_or_none()


def mark_receipted(
    conn: Connection,
    *,
    report_id: str,
    to_member: str,
    outcome: str,
    to_case: str | None,
    reason: str | None,
    at: datetime,
) -> None:
    """The new holder's answer to a transfer sent from here (the oldest still unanswered of
    that report to that member: a report moves to one member at a time)."""
    pending = conn.execute(
        select(TRANSFERS.c.moved_event)
        .where(
            TRANSFERS.c.report_id == report_id,
            TRANSFERS.c.to_member == to_member,
            TRANSFERS.c.role == SENT,
            TRANSFERS.c.receipted_at.is_(None),
        )
        .order_by(TRANSFERS.c.stored_at)
        .limit(1)
    ).scalar_one_or_none()
    if pending is None:
        return
    conn.execute(
        update(TRANSFERS)
        .where(TRANSFERS.c.moved_event == pending, TRANSFERS.c.report_id == report_id)
        .values(outcome=outcome, to_case=to_case, reason=reason, receipted_at=at)
    )


def into_case(conn: Connection, case_id: str) -> list[Transfer]:
    """The transfers received here that went into ``case_id``, in the order taken in."""
    rows = conn.execute(
        select(TRANSFERS)
        .where(TRANSFERS.c.to_case == case_id, TRANSFERS.c.role == RECEIVED)
        .order_by(TRANSFERS.c.stored_at, TRANSFERS.c.moved_event, TRANSFERS.c.report_id)
    )
    return [_transfer(r) for r in rows]


def out_of_case(conn: Connection, case_id: str) -> list[Transfer]:
    """The transfers sent from here for items of ``case_id``, in the order sent."""
    rows = conn.execute(
        select(TRANSFERS)
        .where(TRANSFERS.c.from_case == case_id, TRANSFERS.c.role == SENT)
        .order_by(TRANSFERS.c.stored_at, TRANSFERS.c.moved_event, TRANSFERS.c.report_id)
    )
    return [_transfer(r) for r in rows]


def latest_received(conn: Connection, report_id: str) -> Transfer | None:
    """The last transfer that brought ``report_id`` here (what ``verify-report`` checks)."""
    row = conn.execute(
        select(TRANSFERS)
        .where(TRANSFERS.c.report_id == report_id, TRANSFERS.c.role == RECEIVED)
        .order_by(TRANSFERS.c.stored_at.desc())
        .limit(1)
    ).first()
    return None if row is None else _transfer(row)


def redact(conn: Connection, case_ids: Sequence[str]) -> None:
    """Retention: the payloads taken into these cases (a URL and a trace inside) are dropped."""
    for part in chunks(sorted(set(case_ids))):
        conn.execute(
            update(TRANSFERS)
            .where(TRANSFERS.c.to_case.in_(part), TRANSFERS.c.role == RECEIVED)
            .values(payload=None)
        )
