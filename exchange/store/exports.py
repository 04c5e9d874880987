"""The reads behind the CSV exports of cases: keyset pages, so any number of rows streams.

A page is at most ``MAX_PAGE`` cases in id order after the last id of the previous page (stable
under inserts: no case is read twice or skipped); the per-case figures a page needs (its items'
count, stages and classifications, its reports) are read for that page's ids only, so memory
stays one page whatever the table holds. The URL is read only when the caller asks for it
(``with_url``): a role that may not see URLs never has them in memory. The routing log's export
reads ``routing_log.list_entries``, already keyset-paged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from exchange.errors import MalformedRequest
from exchange.store import schema
from exchange.store.sql import chunks

MAX_PAGE = 1000
STATUSES = ("open", "closed")

CASES = schema.cases
STATES = schema.item_states
CASE_REPORTS = schema.case_reports


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Which cases: by status (open/closed), hosting country, opened in [since, until)."""

    status: str | None = None
    hosting_country: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise MalformedRequest(
                f"status {self.status[:20]!r}: choose from {', '.join(STATUSES)}"
            )
        country = self.hosting_country
        if country is not None and not (
            len(country) == 2 and country.isascii() and country.isupper()
        ):
            raise MalformedRequest(f"country {country[:20]!r}: a two-letter code such as NL")


@dataclass(frozen=True, slots=True)
class CaseRow:
    id: str
    url: str | None  # None unless asked for
    hosting_country: str | None
    status: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    anonymised_at: datetime | None
    first_report_id: str
    moved_from_member: str | None
    moved_from_case: str | None


def case_page(
    conn: Connection,
    f: CaseFilter,
    *,
    after: str | None,
    size: int = MAX_PAGE,
    with_url: bool = False,
) -> list[CaseRow]:
    """Up to ``size`` cases with an id above ``after`` (all from the start when None)."""
    c = CASES.c
    columns = [
        c.id,
        c.hosting_country,
        c.status,
        c.opened_at,
        c.updated_at,
        c.closed_at,
        c.anonymised_at,
        c.first_report_id,
        c.moved_from_member,
        c.moved_from_case,
    ]
    q = select(*columns, *([c.url] if with_url else []))
    if after is not None:
        q = q.where(c.id > after)
    if f.status:
        q = q.where(c.status == f.status)
    if f.hosting_country:
        q = q.where(c.hosting_country == f.hosting_country)
    if f.since is not None:
        q = q.where(c.opened_at >= f.since)
    if f.until is not None:
        q = q.where(c.opened_at < f.until)
    rows = conn.execute(q.order_by(c.id).limit(max(1, min(size, MAX_PAGE)))).all()
    return [_case(r, with_url) for r in rows]


def _case(r: Any, with_url: bool) -> CaseRow:
    return CaseRow(
        r.id,
        r.url if with_url else None,
        r.hosting_country,
        r.status,
        r.opened_at,
        r.updated_at,
        r.closed_at,
        r.anonymised_at,
        r.first_report_id,
        r.moved_from_member,
        r.moved_from_case,
    )


@dataclass(frozen=True, slots=True)
class CaseItems:
    """A case's items as folded here: how many, their stages and classifications (sorted)."""

    items: int = 0
    stages: tuple[str, ...] = ()
    classifications: tuple[str, ...] = ()
    orphaned: bool = False


def case_items(conn: Connection, case_ids: Sequence[str]) -> dict[str, CaseItems]:
    """Per case id of one page: its items' count, distinct stages and classifications."""
    if not case_ids:
        return {}
    s = STATES.c
    acc: dict[str, tuple[int, set[str], set[str], bool]] = {}
    for r in _each(
        conn,
        case_ids,
        lambda part: select(s.case_id, s.stage, s.classification, s.orphaned).where(
            s.case_id.in_(part)
        ),
    ):
        n, stages, classes, orphaned = acc.get(r.case_id, (0, set(), set(), False))
        stages.add(r.stage)
        if r.classification:
            classes.add(r.classification)
        acc[r.case_id] = (n + 1, stages, classes, orphaned or bool(r.orphaned))
    return {
        cid: CaseItems(n, tuple(sorted(st)), tuple(sorted(cl)), orph)
        for cid, (n, st, cl, orph) in acc.items()
    }


def case_reports(conn: Connection, case_ids: Sequence[str]) -> dict[str, tuple[int, list[str]]]:
    """Per case id of one page: its reports' count and the members that reported it."""
    if not case_ids:
        return {}
    r = CASE_REPORTS.c
    out: dict[str, tuple[int, list[str]]] = {}
    for row in _each(
        conn,
        case_ids,
        lambda part: (
            select(r.case_id, r.reporting_member, func.count().label("n"))
            .where(r.case_id.in_(part))
            .group_by(r.case_id, r.reporting_member)
            .order_by(r.case_id, r.reporting_member)
        ),
    ):
        n, members = out.get(row.case_id, (0, []))
        members.append(row.reporting_member)
        out[row.case_id] = (n + row.n, members)
    return out


def _each(
    conn: Connection, ids: Sequence[str], query: Callable[[list[str]], Select[Any]]
) -> Iterator[Any]:
    """The rows of ``query`` over ``ids`` in chunks (a driver's bound-parameter limit)."""
    for part in chunks(list(ids)):
        yield from conn.execute(query(list(part)))
