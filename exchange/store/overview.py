"""Read model of a node at a glance: counts and backlog figures across every aggregate.

Why a module of its own: ``ihx status``, the Prometheus scrape and ``ihx demo`` all want the same
kind of figure — how many rows per role, per destination, how old the oldest pending report is —
and each figure spans tables that belong to different aggregates (reports, cases, outbox/batches,
peers, inbox, hash index, routing log). Those aggregates' own modules own their writes; this one
owns only these read-only, grouped SELECTs, so the callers in ops/ and tools/ run no SQL.

Design: plain functions over an ``Engine``; each opens one short read connection (SQLite WAL
readers never block the writer, so all are safe against a running node) and returns frozen
dataclasses or plain dicts — never a SQLAlchemy row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Table, func, select

from exchange.store import schema
from exchange.times import from_micros


@dataclass(frozen=True, slots=True)
class Backlog:
    """The outbox for one destination: reports waiting, how many are sealed, the oldest."""

    destination: str
    reports: int
    in_batches: int  # sealed into a batch that awaits its receipt
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """What the ``peers`` table holds about one peer."""

    member: str
    next_sequence: int
    last_heard_at: datetime | None
    last_error: str | None
    failing_since: datetime | None
    failures: int


@dataclass(frozen=True, slots=True)
class StatusFigures:
    """Every figure ``ihx status`` shows, read in one connection."""

    reports_by_role: dict[str, int]
    cases_by_status: dict[str, int]
    backlog: tuple[Backlog, ...]
    unreceipted_batches: dict[str, int]
    delivered_reports: dict[str, int]
    peers: dict[str, PeerRecord]
    envelopes_received: int
    hash_index_size: int
    routing_log_size: int


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """What ``ihx demo`` prints per node once the federation is quiet."""

    received: int
    origin: int
    cases: int
    hash_index_size: int
    routing_log_size: int
    delivered: tuple[tuple[str, int], ...]
    merged: tuple[tuple[str, str], ...]  # (case id, reporting member)


def status_figures(engine: Engine) -> StatusFigures:
    with engine.connect() as conn:
        return StatusFigures(
            reports_by_role=_grouped(conn, schema.reports, "role"),
            cases_by_status=_grouped(conn, schema.cases, "status"),
            backlog=_backlog(conn),
            unreceipted_batches=_unreceipted(conn),
            delivered_reports=_grouped(conn, schema.deliveries, "destination"),
            peers=_peers(conn),
            envelopes_received=_size(conn, schema.inbox),
            hash_index_size=_size(conn, schema.hash_index),
            routing_log_size=_size(conn, schema.routing_log),
        )


def outbox_depth(engine: Engine) -> list[tuple[str, int, datetime | None]]:
    """(destination, reports waiting, created_at of the oldest) per destination."""
    o = schema.outbox
    with engine.connect() as conn:
        rows = conn.execute(
            select(o.c.destination, func.count(), func.min(o.c.created_at)).group_by(
                o.c.destination
            )
        ).all()
    # Without a label, min() may come back as the stored integer (microseconds) on some drivers.
    return [
        (str(d), int(n), from_micros(first) if isinstance(first, int) else first)
        for d, n, first in rows
    ]


def pending_work(engine: Engine) -> int:
    """Outbox rows, batches awaiting a receipt, and peers behind on announcements: 0 when quiet."""
    with engine.connect() as conn:
        outbox = _size(conn, schema.outbox)
        unreceipted = sum(_unreceipted(conn).values())
        newest = conn.execute(select(func.max(schema.announcements.c.seq))).scalar_one() or 0
        behind = conn.execute(
            select(func.count())
            .select_from(schema.peers)
            .where(schema.peers.c.announce_cursor < newest)
        ).scalar_one()
    return outbox + unreceipted + int(behind)


def last_receipts(engine: Engine) -> dict[str, datetime]:
    """Per peer, when its latest signed receipt came back (the web view's overview)."""
    b = schema.batches
    with engine.connect() as conn:
        rows = conn.execute(
            select(b.c.destination, func.max(b.c.receipted_at).label("last"))
            .where(b.c.receipted_at.is_not(None))
            .group_by(b.c.destination)
        ).all()
    return {
        str(d): from_micros(last) if isinstance(last, int) else last
        for d, last in rows
        if last is not None
    }


def node_summary(engine: Engine) -> NodeSummary:
    cr = schema.case_reports
    with engine.connect() as conn:
        roles = _grouped(conn, schema.reports, "role")
        merged = conn.execute(
            select(cr.c.case_id, cr.c.reporting_member).where(cr.c.outcome == "merged")
        ).all()
        delivered = conn.execute(
            select(schema.deliveries.c.destination, func.count()).group_by(
                schema.deliveries.c.destination
            )
        ).all()
        return NodeSummary(
            received=roles.get("received", 0),
            origin=roles.get("origin", 0),
            cases=_size(conn, schema.cases),
            hash_index_size=_size(conn, schema.hash_index),
            routing_log_size=_size(conn, schema.routing_log),
            delivered=tuple((str(d), int(n)) for d, n in delivered),
            merged=tuple((str(c), str(m)) for c, m in merged),
        )


# -- the grouped reads ---------------------------------------------------------------------------


def _size(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _grouped(conn: Connection, table: Table, column: str) -> dict[str, int]:
    key = table.c[column]
    return {str(k): int(n) for k, n in conn.execute(select(key, func.count()).group_by(key))}


def _backlog(conn: Connection) -> tuple[Backlog, ...]:
    outbox = schema.outbox
    return tuple(
        Backlog(row.destination, int(row.n), int(row.batched or 0), row.oldest)
        for row in conn.execute(
            select(
                outbox.c.destination,
                func.count().label("n"),
                func.count(outbox.c.batch_sequence).label("batched"),
                # min() keeps the column type, so the result is a datetime again.
                func.min(outbox.c.created_at).label("oldest"),
            )
            .group_by(outbox.c.destination)
            .order_by(outbox.c.destination)
        )
    )


def _unreceipted(conn: Connection) -> dict[str, int]:
    batches = schema.batches
    return {
        str(destination): int(n)
        for destination, n in conn.execute(
            select(batches.c.destination, func.count())
            .where(batches.c.receipted_at.is_(None))
            .group_by(batches.c.destination)
        )
    }


def failing_peers(engine: Engine) -> dict[str, datetime | None]:
    """Each known peer → since when delivery to it fails (None: it does not)."""
    p = schema.peers.c
    with engine.connect() as conn:
        return {str(m): since for m, since in conn.execute(select(p.member, p.failing_since))}


def _peers(conn: Connection) -> dict[str, PeerRecord]:
    return {
        row.member: PeerRecord(
            member=row.member,
            next_sequence=int(row.next_sequence),
            last_heard_at=row.last_heard_at,
            last_error=row.last_error,
            failing_since=row.failing_since,
            failures=int(row.failures),
        )
        for row in conn.execute(select(schema.peers))
    }
