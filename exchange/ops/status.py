"""A node's state at a glance, read from its database: what ``ihx status`` shows.

The figures come from the read model ``store/overview.py`` (only SELECTs, grouped per table, so
safe against a running node and cheap enough to poll). The answer is a frozen dataclass with
plain values; rendering (rich or JSON) is the CLI's business. ``to_document`` gives the JSON form
so every consumer names the fields the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from exchange.store.migrate import current_revision, head_revision
from exchange.store.overview import Backlog, StatusFigures, status_figures

# Reports waiting in the outbox for one destination: the store's figure as it is.
Pending = Backlog


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
    figures = status_figures(engine)
    return NodeStatus(
        member=member,
        schema_revision=revision,
        schema_head=head,
        reports_by_role=figures.reports_by_role,
        cases_open=figures.cases_by_status.get("open", 0),
        cases_total=sum(figures.cases_by_status.values()),
        outbox=tuple(figures.backlog),
        peers=_peer_states(figures),
        envelopes_received=figures.envelopes_received,
        hash_index_size=figures.hash_index_size,
        routing_log_size=figures.routing_log_size,
    )


def _peer_states(figures: StatusFigures) -> tuple[PeerState, ...]:
    """One state per peer the node knows of, has batches for or has delivered to."""
    unreceipted, delivered = figures.unreceipted_batches, figures.delivered_reports
    names = sorted(set(figures.peers) | set(unreceipted) | set(delivered))
    states = []
    for name in names:
        known = figures.peers.get(name)
        states.append(
            PeerState(
                member=name,
                unreceipted_batches=unreceipted.get(name, 0),
                next_sequence=known.next_sequence if known else None,
                last_heard_at=known.last_heard_at if known else None,
                last_error=known.last_error if known else None,
                delivered_reports=delivered.get(name, 0),
                failing_since=known.failing_since if known else None,
                failures=known.failures if known else 0,
            )
        )
    return tuple(states)


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
