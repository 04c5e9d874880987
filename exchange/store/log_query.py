"""Listing the routing log with filters and paging (what coordinators read).

Paging is by entry index (``after_index``), which is stable under appends: a reader never sees
an entry twice or misses one between pages. Filters narrow the page; a page is at most
``MAX_PAGE`` entries.

Indexes and sizes arrive as ``uint64`` on the wire but are stored as signed 64-bit integers (SQLite
and PostgreSQL alike): ``index_in_range`` refuses anything above ``MAX_INDEX`` with a typed
``OutOfRange`` before it reaches the database driver, which would otherwise raise ``OverflowError``
(an INTERNAL answer to a caller's mistake).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from exchange.errors import OutOfRange
from exchange.routing_log import LogEntry
from exchange.store import schema

MAX_PAGE = 1000
MAX_INDEX = 2**63 - 1
"""The largest index or size a database column (signed 64-bit) holds."""


def index_in_range(name: str, value: int, *, low: int = 0) -> int:
    """``value`` if ``low <= value <= MAX_INDEX``; else ``OutOfRange`` naming ``name``."""
    if not low <= value <= MAX_INDEX:
        raise OutOfRange(f"{name}: {value} is outside {low}..{MAX_INDEX}")
    return value


@dataclass(frozen=True, slots=True)
class LogFilter:
    since: datetime | None = None
    until: datetime | None = None
    country: str | None = None
    member: str | None = None
    kind: str | None = None
    report_id: str | None = None
    after_index: int = -1
    page_size: int = 100


def list_entries(conn: Connection, f: LogFilter) -> tuple[list[LogEntry], int | None]:
    """One page of entries, and the ``after_index`` of the next page (None at the end)."""
    t = schema.routing_log
    size = max(1, min(f.page_size or 100, MAX_PAGE))
    after = index_in_range("after_index", f.after_index, low=-1)
    q = select(t).where(t.c.idx > after)
    if f.since is not None:
        q = q.where(t.c.at >= f.since)
    if f.until is not None:
        q = q.where(t.c.at < f.until)
    if f.country:
        q = q.where(t.c.country == f.country)
    if f.member:
        q = q.where(t.c.member == f.member)
    if f.kind:
        q = q.where(t.c.kind == f.kind)
    if f.report_id:
        q = q.where(t.c.report_id == f.report_id)
    rows = conn.execute(q.order_by(t.c.idx).limit(size + 1)).all()
    entries = [
        LogEntry(
            r.idx,
            r.at,
            r.kind,
            r.report_id,
            r.member,
            r.country,
            r.detail,
            r.previous_hash,
            r.entry_hash,
        )
        for r in rows[:size]
    ]
    return entries, (entries[-1].idx if len(rows) > size else None)
