"""Retention: which closed cases and reports are due for anonymising, and overwriting them.

Why a module of its own: anonymising touches several aggregates at once — the case, its
reports, their item hashes — and finding what is due reads the item states, so, like the read
models ``evidence.py`` and ``overview.py``, it gets one place instead of a function in each.

What is due (``cutoff``: now minus the retention period):

* a case held here, closed (every item closed) before the cutoff and not yet anonymised — with
  every report linked to it;
* a report this node sent to another member, not yet anonymised, whose items' states (as the
  holder's events told) are all closed, the last before the cutoff.

Overwriting: the URL becomes "", its key 32 zero bytes (a key is a hash of the URL, which a
dictionary of URLs would reverse), a report's notes "" and its wire bytes the redacted report
(``codec.anonymised_report``); item hashes are deleted. Rows keep their ids, times, countries,
classifications and decisions, and get ``anonymised_at``. The node's own hash sightings are
hash_index.py's (``own_sightings_of`` / ``retract``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, delete, exists, or_, select, update

from exchange.domain import ReportRole
from exchange.lifecycle.model import CLOSED_STAGES
from exchange.store import outbox, schema
from exchange.store.sql import chunks

CASES = schema.cases
CASE_REPORTS = schema.case_reports
REPORTS = schema.reports
ITEM_HASHES = schema.item_hashes
STATES = schema.item_states

ZERO_KEY = bytes(32)
_CLOSED = sorted(str(s) for s in CLOSED_STAGES)


def cases_due(conn: Connection, cutoff: datetime, limit: int) -> list[str]:
    """Held cases closed before ``cutoff`` and not anonymised, the longest closed first."""
    c = CASES.c
    rows = conn.execute(
        select(c.id)
        .where(c.status == "closed", c.closed_at < cutoff, c.anonymised_at.is_(None))
        .order_by(c.closed_at, c.id)
        .limit(limit)
    )
    return list(rows.scalars())


def reports_of(conn: Connection, case_ids: Sequence[str]) -> list[str]:
    """Every report linked to the cases (any role), not yet anonymised."""
    out: list[str] = []
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(CASE_REPORTS.c.report_id)
            .join(REPORTS, REPORTS.c.id == CASE_REPORTS.c.report_id)
            .where(CASE_REPORTS.c.case_id.in_(part), REPORTS.c.anonymised_at.is_(None))
            .order_by(CASE_REPORTS.c.report_id)
        )
        out.extend(rows.scalars())
    return out


def sent_reports_due(conn: Connection, self_member: str, cutoff: datetime, limit: int) -> list[str]:
    """Reports sent from here whose items all closed at their holder before ``cutoff``, no
    longer in the outbox."""
    r, s = REPORTS.c, STATES.c
    # An item state names a report stored here by its place (0017), through the index of
    # report_seq; only a state written before its report arrived is indexed by the report's id.
    mine = or_(s.report_seq == r.seq, and_(s.report_seq.is_(None), s.report_id == r.id))
    still_open_or_recent = or_(
        s.stage.not_in(_CLOSED), s.closed_at.is_(None), s.closed_at >= cutoff
    )
    rows = conn.execute(
        select(r.id)
        .where(
            r.role == ReportRole.ORIGIN.value,
            r.decision_member != self_member,
            r.anonymised_at.is_(None),
            exists().where(mine),
            ~exists().where(and_(mine, still_open_or_recent)),
        )
        .order_by(r.id)
        .limit(limit)
    )
    due = list(rows.scalars())
    # A report still queued (its receipt not back) is sent from its row's bytes: left until
    # it has left. One read of the outbox per round, not one per report (no index by report).
    queued = outbox.queued_among(conn, due)
    return [report_id for report_id in due if report_id not in queued]


def wires(conn: Connection, report_ids: Sequence[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for part in chunks(sorted(set(report_ids))):
        rows = conn.execute(select(REPORTS.c.id, REPORTS.c.wire).where(REPORTS.c.id.in_(part)))
        out.update({row.id: row.wire for row in rows})
    return out


def anonymise_cases(conn: Connection, case_ids: Sequence[str], now: datetime) -> None:
    for part in chunks(sorted(set(case_ids))):
        conn.execute(
            update(CASES)
            .where(CASES.c.id.in_(part))
            .values(url="", url_key=ZERO_KEY, anonymised_at=now)
        )


def anonymise_reports(conn: Connection, redacted: Mapping[str, bytes], now: datetime) -> None:
    """Overwrite each report (id → its redacted wire bytes) and delete its item hashes."""
    for report_id, wire in sorted(redacted.items()):
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == report_id)
            .values(url="", url_key=ZERO_KEY, notes="", wire=wire, anonymised_at=now)
        )
    for part in chunks(sorted(redacted)):
        places = select(REPORTS.c.seq).where(REPORTS.c.id.in_(part))
        conn.execute(delete(ITEM_HASHES).where(ITEM_HASHES.c.report_seq.in_(places)))
