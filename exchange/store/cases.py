"""Cases and the reports linked to them: every statement on ``cases`` and ``case_reports``.

A case is keyed by the URL it is about (``url_key``) while open; each report linked to it is a
``case_reports`` row carrying the outcome it was answered with, so a repeated report id gets its
earlier answer. The partner read model (``partner_facts``, ``headers``, ``members``) reads here
too, so no other module knows these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, literal_column, select, update

from exchange.domain import Outcome, Report
from exchange.store import schema
from exchange.store.prepared import Prepared
from exchange.store.sql import chunks, insert_rows

CASES = schema.cases
CASE_REPORTS = schema.case_reports
ITEMS = schema.items
REPORTS = schema.reports

OPEN = "open"
CLOSED = "closed"
# The partial index of open cases by URL (schema: ``uq_cases_open_url_key``) serves a query
# only when the query spells its condition as a constant, and SQLite, without statistics,
# takes ``status = 'open'`` for a selective term and walks every open case by the status index
# instead, once per batch. ``likelihood`` tells it most cases pass (SQLite only).
_IS_OPEN = CASES.c.status == literal_column(f"'{OPEN}'")
_MOSTLY_OPEN = func.likelihood(_IS_OPEN, literal_column("0.9"))


# Compiled once, the keys bound per call (store/prepared.py): every intake and received batch.
_BY_URL = select(CASES.c.url_key, CASES.c.id).where(
    CASES.c.url_key.in_(bindparam("keys", expanding=True))
)
_OPEN_BY_URL = Prepared(_BY_URL.where(_IS_OPEN))
_OPEN_BY_URL_SQLITE = Prepared(_BY_URL.where(_MOSTLY_OPEN))
_TAKEN = Prepared(select(CASES.c.id).where(CASES.c.id.in_(bindparam("ids", expanding=True))))


def open_by_url(conn: Connection, url_keys: Iterable[bytes]) -> dict[bytes, str]:
    """url_key → id of the open case for it, for the keys that have one."""
    keys = sorted(set(url_keys))
    out: dict[bytes, str] = {}
    stmt = _OPEN_BY_URL_SQLITE if conn.dialect.name == "sqlite" else _OPEN_BY_URL
    for part in chunks(keys):
        out.update({r.url_key: r.id for r in stmt.rows(conn, keys=part)})
    return out


def earlier_outcomes(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Outcome, str]]:
    """Report id → (outcome, case id) it was answered with, for reports already linked."""
    out: dict[str, tuple[Outcome, str]] = {}
    for part in chunks(sorted(ids)):
        rows = conn.execute(
            select(CASE_REPORTS.c.report_id, CASE_REPORTS.c.outcome, CASE_REPORTS.c.case_id).where(
                CASE_REPORTS.c.report_id.in_(part)
            )
        )
        out.update({r.report_id: (Outcome(r.outcome), r.case_id) for r in rows})
    return out


def open_cases(conn: Connection, opened: Sequence[tuple[str, Report]], now: datetime) -> None:
    """Insert new open cases, each (case id, the report that opened it)."""
    if not opened:
        return
    insert_rows(
        conn,
        CASES,
        [
            {
                "id": case_id,
                "url_key": r.url_key,
                "url": r.url,
                "hosting_country": r.hosting_country,
                "status": OPEN,
                "opened_at": now,
                "updated_at": now,
                "first_report_id": r.id,
            }
            for case_id, r in opened
        ],
    )


def touch(conn: Connection, case_ids: Iterable[str], now: datetime) -> None:
    """Mark cases updated (a report merged into them)."""
    ids = sorted(set(case_ids))
    if ids:
        conn.execute(update(CASES).where(CASES.c.id.in_(ids)).values(updated_at=now))


@dataclass(frozen=True, slots=True)
class CaseLink:
    """A report linked to a case, with the outcome it was answered with."""

    case_id: str
    report_id: str
    reporting_member: str
    outcome: Outcome
    new_items: int
    at: datetime


def link(conn: Connection, links: Sequence[CaseLink]) -> None:
    if links:
        insert_rows(
            conn,
            CASE_REPORTS,
            [
                {
                    "case_id": k.case_id,
                    "report_id": k.report_id,
                    "reporting_member": k.reporting_member,
                    "outcome": k.outcome.value,
                    "new_items": k.new_items,
                    "at": k.at,
                }
                for k in links
            ],
        )


def is_linked(conn: Connection, case_id: str, report_id: str) -> bool:
    row = conn.execute(
        select(CASE_REPORTS.c.report_id).where(
            CASE_REPORTS.c.case_id == case_id, CASE_REPORTS.c.report_id == report_id
        )
    ).first()
    return row is not None


# -- moves ------------------------------------------------------------------------------------


def url_key_of(conn: Connection, case_id: str) -> bytes | None:
    return conn.execute(select(CASES.c.url_key).where(CASES.c.id == case_id)).scalar_one_or_none()


def set_moved_from(conn: Connection, case_id: str, member: str, from_case: str) -> None:
    """Link a case to the one it came from by a move (the first move into it is kept)."""
    conn.execute(
        update(CASES)
        .where(CASES.c.id == case_id, CASES.c.moved_from_member.is_(None))
        .values(moved_from_member=member, moved_from_case=from_case)
    )


# -- what partners read ---------------------------------------------------------------------


def partner_facts(
    conn: Connection, case_ids: Sequence[str]
) -> dict[str, tuple[str | None, set[str]]]:
    """Case id → (hosting country, the classifications of all its items): what rules match."""
    facts: dict[str, tuple[str | None, set[str]]] = {}
    for part in chunks(case_ids):
        rows = conn.execute(
            select(CASES.c.id, CASES.c.hosting_country, ITEMS.c.classification)
            .join(CASE_REPORTS, CASE_REPORTS.c.case_id == CASES.c.id)
            .join(REPORTS, REPORTS.c.id == CASE_REPORTS.c.report_id)
            .join(ITEMS, ITEMS.c.report_seq == REPORTS.c.seq)
            .where(CASES.c.id.in_(part))
        )
        for r in rows:
            facts.setdefault(r.id, (r.hosting_country, set()))[1].add(r.classification)
    return facts


@dataclass(frozen=True, slots=True)
class CaseHeader:
    id: str
    url: str
    hosting_country: str | None
    opened_at: datetime


def headers(conn: Connection, case_ids: Sequence[str]) -> dict[str, CaseHeader]:
    rows = conn.execute(
        select(CASES.c.id, CASES.c.url, CASES.c.hosting_country, CASES.c.opened_at).where(
            CASES.c.id.in_(list(case_ids))
        )
    )
    return {r.id: CaseHeader(r.id, r.url, r.hosting_country, r.opened_at) for r in rows}


def first_linked(conn: Connection, case_ids: Sequence[str]) -> dict[str, dict[str, datetime]]:
    """Case id → each reporting member's first link to it (when it joined the case)."""
    out: dict[str, dict[str, datetime]] = {}
    for part in chunks(sorted(set(case_ids))):
        for row in conn.execute(
            select(
                CASE_REPORTS.c.case_id,
                CASE_REPORTS.c.reporting_member,
                func.min(CASE_REPORTS.c.at).label("first"),
            )
            .where(CASE_REPORTS.c.case_id.in_(part))
            .group_by(CASE_REPORTS.c.case_id, CASE_REPORTS.c.reporting_member)
        ):
            out.setdefault(row.case_id, {})[row.reporting_member] = row.first
    return out


def members(conn: Connection, case_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Case id → its (report id, reporting member) in the order they were linked."""
    out: dict[str, list[tuple[str, str]]] = {}
    for row in conn.execute(
        select(CASE_REPORTS.c.case_id, CASE_REPORTS.c.report_id, CASE_REPORTS.c.reporting_member)
        .where(CASE_REPORTS.c.case_id.in_(list(case_ids)))
        .order_by(CASE_REPORTS.c.at, CASE_REPORTS.c.report_id)
    ):
        out.setdefault(row.case_id, []).append((row.report_id, row.reporting_member))
    return out


# -- the lifecycle ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldCase:
    """A case held here as the lifecycle reads it."""

    id: str
    url: str
    hosting_country: str | None
    status: str
    opened_at: datetime
    closed_at: datetime | None
    anonymised_at: datetime | None
    first_report_id: str
    moved_from_member: str | None = None  # a case that came here by a move: from whom …
    moved_from_case: str | None = None  # … and which case of theirs


def held(conn: Connection, case_id: str, *, lock: bool = False) -> HeldCase | None:
    """The case, if held here; ``lock`` holds its row until COMMIT (PostgreSQL replicas of one
    node each take the next event sequence of a case in turn; SQLite's writer lock already
    serialises them)."""
    c = CASES.c
    stmt = select(
        c.id,
        c.url,
        c.hosting_country,
        c.status,
        c.opened_at,
        c.closed_at,
        c.anonymised_at,
        c.first_report_id,
        c.moved_from_member,
        c.moved_from_case,
    ).where(c.id == case_id)
    r = conn.execute(stmt.with_for_update() if lock else stmt).one_or_none()
    if r is None:
        return None
    return HeldCase(
        r.id,
        r.url,
        r.hosting_country,
        r.status,
        r.opened_at,
        r.closed_at,
        r.anonymised_at,
        r.first_report_id,
        r.moved_from_member,
        r.moved_from_case,
    )


def held_ids(conn: Connection, case_ids: Sequence[str]) -> set[str]:
    """Those of ``case_ids`` that are cases held here, their rows locked until COMMIT (replicas
    on PostgreSQL take a case's next event sequence in turn; SQLite's writer lock already
    serialises them)."""
    out: set[str] = set()
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(select(CASES.c.id).where(CASES.c.id.in_(part)).with_for_update())
        out.update(rows.scalars().all())
    return out


def taken_ids(conn: Connection, case_ids: Iterable[str]) -> set[str]:
    """Those of ``case_ids`` some case here already has (open, closed or anonymised)."""
    out: set[str] = set()
    for part in chunks(sorted(set(case_ids))):
        out.update(r.id for r in _TAKEN.rows(conn, ids=part))
    return out


def set_many_closed(conn: Connection, closed: Mapping[str, bool], now: datetime) -> None:
    """``set_closed`` for many cases in one statement."""
    if not closed:
        return
    conn.execute(
        update(CASES)
        .where(CASES.c.id == bindparam("case"))
        .values(
            status=bindparam("b_status"),
            closed_at=bindparam("b_closed"),
            updated_at=bindparam("b_now"),
        ),
        [
            {
                "case": c,
                "b_status": CLOSED if shut else OPEN,
                "b_closed": now if shut else None,
                "b_now": now,
            }
            for c, shut in closed.items()
        ],
    )


def set_closed(conn: Connection, case_id: str, closed: bool, now: datetime) -> None:
    """Close a case (all its items closed) or keep it open; its URL key is free once closed."""
    conn.execute(
        update(CASES)
        .where(CASES.c.id == case_id)
        .values(
            status=CLOSED if closed else OPEN,
            closed_at=now if closed else None,
            updated_at=now,
        )
    )
