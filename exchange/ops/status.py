"""A node's state at a glance, read from its database: what ``ihx status`` shows.

Only SELECTs, grouped per table, so it is safe against a running node (SQLite WAL readers do not
block the writer) and cheap enough to poll. The answer is a frozen dataclass with plain values;
rendering (rich or JSON) is the CLI's business. ``to_document`` gives the JSON form so every
consumer names the fields the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from exchange.store import schema
from exchange.store.migrate import current_revision, head_revision


@dataclass(frozen=True, slots=True)
class Pending:
    """Reports waiting in the outbox for one destination."""

    destination: str
    reports: int
    in_batches: int  # sealed into a batch that awaits its receipt
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class PeerState:
    member: str
    unreceipted_batches: int
    next_sequence: int | None
    last_heard_at: datetime | None
    last_error: str | None
    delivered_reports: int
    failing_since: datetime | None = None
    failures: int = 0  # failed attempts in a row since the last receipt


@dataclass(frozen=True, slots=True)
class NodeStatus:
    member: str
    schema_revision: str | None
    schema_head: str
    reports_by_role: dict[str, int]
    cases_open: int
    cases_total: int
    outbox: tuple[Pending, ...]
    peers: tuple[PeerState, ...]
    envelopes_received: int
    hash_index_size: int
    routing_log_size: int

    @property
    def outbox_total(self) -> int:
        return sum(p.reports for p in self.outbox)


def collect_status(engine: Engine, member: str) -> NodeStatus:
    """Read the status of the node database behind ``engine``."""
    revision = current_revision(engine)
    head = head_revision()
    reports, cases, outbox = schema.reports, schema.cases, schema.outbox
    batches, peers, deliveries = schema.batches, schema.peers, schema.deliveries
    with engine.connect() as conn:
        by_role = {
            str(role): int(n)
            for role, n in conn.execute(
                select(reports.c.role, func.count()).group_by(reports.c.role)
            )
        }
        case_counts = {
            str(status): int(n)
            for status, n in conn.execute(
                select(cases.c.status, func.count()).group_by(cases.c.status)
            )
        }
        pending = tuple(
            Pending(row.destination, int(row.n), int(row.batched or 0), row.oldest)
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
        unreceipted = {
            str(destination): int(n)
            for destination, n in conn.execute(
                select(batches.c.destination, func.count())
                .where(batches.c.receipted_at.is_(None))
                .group_by(batches.c.destination)
            )
        }
        delivered = {
            str(destination): int(n)
            for destination, n in conn.execute(
                select(deliveries.c.destination, func.count()).group_by(deliveries.c.destination)
            )
        }
        known_peers = {row.member: row for row in conn.execute(select(peers))}
        envelopes = conn.execute(select(func.count()).select_from(schema.inbox)).scalar_one()
        hashes = conn.execute(select(func.count()).select_from(schema.hash_index)).scalar_one()
        log_size = conn.execute(select(func.count()).select_from(schema.routing_log)).scalar_one()
    names = sorted(set(known_peers) | set(unreceipted) | set(delivered))
    peer_states = tuple(
        PeerState(
            member=name,
            unreceipted_batches=int(unreceipted.get(name, 0)),
            next_sequence=int(known_peers[name].next_sequence) if name in known_peers else None,
            last_heard_at=known_peers[name].last_heard_at if name in known_peers else None,
            last_error=known_peers[name].last_error if name in known_peers else None,
            delivered_reports=int(delivered.get(name, 0)),
            failing_since=known_peers[name].failing_since if name in known_peers else None,
            failures=int(known_peers[name].failures) if name in known_peers else 0,
        )
        for name in names
    )
    return NodeStatus(
        member=member,
        schema_revision=revision,
        schema_head=head,
        reports_by_role=by_role,
        cases_open=case_counts.get("open", 0),
        cases_total=sum(case_counts.values()),
        outbox=pending,
        peers=peer_states,
        envelopes_received=int(envelopes),
        hash_index_size=int(hashes),
        routing_log_size=int(log_size),
    )


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_document(status: NodeStatus) -> dict[str, Any]:
    """The JSON form of a status (times as RFC 3339 UTC strings)."""
    return {
        "member": status.member,
        "schema": {"revision": status.schema_revision, "head": status.schema_head},
        "reports": dict(sorted(status.reports_by_role.items())),
        "cases": {"open": status.cases_open, "total": status.cases_total},
        "outbox": [
            {
                "destination": p.destination,
                "reports": p.reports,
                "in_batches": p.in_batches,
                "oldest": _time(p.oldest),
            }
            for p in status.outbox
        ],
        "peers": [
            {
                "member": p.member,
                "unreceipted_batches": p.unreceipted_batches,
                "delivered_reports": p.delivered_reports,
                "next_sequence": p.next_sequence,
                "last_heard_at": _time(p.last_heard_at),
                "last_error": p.last_error,
                "failing_since": _time(p.failing_since),
                "failures": p.failures,
            }
            for p in status.peers
        ],
        "envelopes_received": status.envelopes_received,
        "hash_index_size": status.hash_index_size,
        "routing_log_size": status.routing_log_size,
    }
