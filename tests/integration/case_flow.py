"""Shared steps of the lifecycle integration tests: a report delivered into a case, the events
of a case as each node stored them, and "nothing changed" snapshots.

A snapshot is what a refused step must leave exactly as it was on a node: every ``item_states``
row (the fold, compared column by column), and the number of ``case_events``, ``outbox``,
``routing_log``, ``reports`` and ``hash_index`` rows. Snapshots are taken only once the
federation is quiet (``quiet``: every node's outbox drained and every batch receipted), so
what moves between two of them is what the step under test did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchange.domain import Submission
from exchange.errors import NotFound
from exchange.lifecycle.model import CaseEvent, ItemState, ReportStatus, Stage
from tests.integration.support import Cluster, wait_until

COUNTED = ("case_events", "outbox", "routing_log", "reports", "hash_index", "cases")


def deliver(cluster: Cluster, origin: str, submission: Submission) -> tuple[str, str]:
    """Submit at ``origin``; wait for the holder's receipt. (report id, the holder's case id)."""
    (answer,) = cluster.submit(origin, [submission])
    report_id = answer.report_id
    views = cluster.node(origin).case_views
    case_id = wait_until(
        lambda: views.report_status(report_id).case_id,
        10,
        what=f"the receipt of {report_id} at {origin}",
    )
    return report_id, case_id


def status(cluster: Cluster, member: str, report_id: str) -> ReportStatus:
    return cluster.node(member).case_views.report_status(report_id)


def stored_events(cluster: Cluster, member: str, case_id: str) -> list[tuple[str, str, int]]:
    """(event id, maker, sequence) of the case's events at ``member``, in its order of arrival."""
    rows = cluster.rows(
        member,
        "SELECT id, member, sequence FROM case_events WHERE case_id = :c ORDER BY cursor",
        c=case_id,
    )
    return [(r.id, r.member, r.sequence) for r in rows]


def expected(events: Sequence[CaseEvent]) -> list[tuple[str, str, int]]:
    return [(e.id, e.member, e.sequence) for e in events]


def wait_for_events(
    cluster: Cluster, member: str, case_id: str, events: Sequence[CaseEvent], timeout: float = 10
) -> None:
    """Wait until ``member`` holds exactly ``events`` for the case, in their order."""
    want = expected(events)
    wait_until(
        lambda: stored_events(cluster, member, case_id) == want,
        timeout,
        what=f"{len(want)} events of {case_id} at {member}, in order",
        show=lambda: stored_events(cluster, member, case_id),
    )


def announced(cluster: Cluster, member: str) -> bool:
    """Every other running node has receipted ``member``'s announcements (hash sightings)."""
    last = cluster.scalar(member, "SELECT coalesce(max(seq), 0) FROM announcements")
    cursors = {
        r.member: r.announce_cursor
        for r in cluster.rows(member, "SELECT member, announce_cursor FROM peers")
    }
    return all(cursors.get(peer, 0) >= last for peer in cluster.nodes if peer != member)


def quiet(cluster: Cluster, timeout: float = 10) -> None:
    """Every running node has delivered everything it queued: rows, receipts, announcements."""
    members = list(cluster.nodes)
    wait_until(
        lambda: all(cluster.drained(m) and announced(cluster, m) for m in members),
        timeout,
        what="every outbox drained",
        show=lambda: {m: cluster.delivery_state(m) for m in members},
    )


def snapshot(cluster: Cluster, member: str) -> dict[str, Any]:
    """What a refused step must leave unchanged on ``member``."""
    out: dict[str, Any] = {t: cluster.count(member, t) for t in COUNTED}
    out["item_states"] = [
        tuple(r)
        for r in cluster.rows(member, "SELECT * FROM item_states ORDER BY case_id, report_id, idx")
    ]
    out["withdrawn"] = cluster.count(member, "reports", "withdrawn_at IS NOT NULL")
    out["closed"] = cluster.count(member, "cases", "status = 'closed'")
    return out


def stages(states: Sequence[ItemState]) -> dict[tuple[str, int], Stage]:
    return {s.ref.key: s.stage for s in states}


def case_stages(cluster: Cluster, member: str, case_id: str) -> dict[tuple[str, int], Stage]:
    """The stages of the case's items as ``member`` knows them (nothing before its first event)."""
    try:
        return stages(cluster.node(member).case_views.case(case_id).items)
    except NotFound:
        return {}


def fold_view(s: ItemState) -> tuple[Any, ...]:
    """What every node must agree on about an item: stage, assessment, dispute and times."""
    return (
        s.ref.key,
        s.ref.origin_member,
        s.ref.origin_classification,
        s.holder,
        s.stage,
        s.assessment,
        s.disputed,
        s.actions,
        s.last_action,
        s.clock_started,
        s.assessed_at,
        s.lea_at,
        s.lea_partner,
        s.host_notice_at,
        s.host_recipient,
        s.closed_at,
        s.close_reason,
        s.moved_to_country,
        s.moved_to_member,
    )


def hash_rows(cluster: Cluster, member: str, hexes: Sequence[str]) -> dict[str, int]:
    """Per hash, how many sightings ``member``'s index holds."""
    return {h: cluster.count(member, "hash_index", "hex = :h", h=h) for h in hexes}
