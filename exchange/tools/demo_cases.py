"""The demo's case lifecycle: one report worked at its holder to removal, seen at its origin.

After the day's reports are delivered, the German hotline's analyst takes the case the Dutch
hotline reported (``NL-1``, hosted in Germany) from de-eco's unassessed queue and works it
through de-eco's Cases service, as a case-management tool would: assessed baseline, reported
to the police, notice to the host, removed. Each step is a signed event the outbox carries to
nl-eokm (the origin) and the coordinator; the demo then reads nl-eokm's Cases service until
the report shows removed and prints what the origin sees — every step with its takedown
clock — and checks that the coordinator sees the case closed. Everything goes over gRPC
with ``cases:work`` tokens issued by each node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import grpc
from rich.console import Console
from rich.markup import escape

from auth.tokens import Scope
from exchange.client.case_text import (
    CLOCK_LABELS,
    CLOCK_STEPS,
    duration_text,
    event_text,
    items_text,
    takedown_clock,
)
from exchange.client.stubs import CasesClient
from exchange.domain import AgeGroup, Classification
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    Gender,
    Queue,
    ReportStatus,
    Stage,
)
from exchange.node import Node

ORIGIN, HOLDER = "nl-eokm", "de-eco"
STEPS = (
    Action(ActionKind.REPORTED_TO_LEA, partner="bka", reference="BKA-2026-0415"),
    Action(ActionKind.REPORTED_TO_HOST, recipient="abuse@hetzner.example"),
    Action(ActionKind.REMOVED),
)


@dataclass(frozen=True)
class Worked:
    """What the demo did to the case, and what the origin saw in the end (None: not in time)."""

    case_id: str
    queued: int
    seen: ReportStatus | None
    coordinator_closed: bool


def _client(node: Node) -> CasesClient:
    token = node.issue_token(f"analyst@{node.member}", Scope.CASES_WORK)
    return CasesClient(node.address, token=token)


def work_a_case(
    nodes: dict[str, Node], report_id: str, coordinator: str, console: Console
) -> Worked:
    """de-eco works the case of ``report_id`` to removal; nl-eokm and the coordinator follow."""
    console.print(
        f"[bold]3.[/] {HOLDER}'s analyst works the case of NL-1 to removal "
        f"(Cases service); {ORIGIN} follows its report"
    )
    with _client(nodes[ORIGIN]) as origin, _client(nodes[HOLDER]) as holder:
        case_id = origin.report_status(report_id).case_id
        waiting, _ = holder.queue(Queue.UNASSESSED, limit=1000)
        holder.assess(
            case_id, [], Assessment(Classification.BASELINE, AgeGroup.PREPUBESCENT, Gender.FEMALE)
        )
        for step in STEPS:
            holder.act(case_id, [], step)
        seen = _until_removed(origin, report_id, timeout=15.0)
    with _client(nodes[coordinator]) as watcher:
        closed = _until_closed(watcher, case_id, timeout=15.0)
    return Worked(case_id, len(waiting), seen, closed)


def _until_removed(client: CasesClient, report_id: str, *, timeout: float) -> ReportStatus | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.report_status(report_id)
        if status.items and all(s.stage is Stage.REMOVED for s in status.items):
            return status
        time.sleep(0.05)
    return None


def _until_closed(client: CasesClient, case_id: str, *, timeout: float) -> bool:
    """The coordinator, who holds no report of the case, knows it from the holder's events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not client.case(case_id).open:
                return True
        except grpc.RpcError as error:
            if cast(grpc.Call, error).code() is not grpc.StatusCode.NOT_FOUND:
                raise
        time.sleep(0.05)
    return False


def print_worked(worked: Worked, console: Console) -> None:
    """The lifecycle part of the summary: the origin's view of its report, step by step."""
    console.print(
        f"\n[bold]Case lifecycle[/]: case {worked.case_id} at {HOLDER} "
        f"({worked.queued} case(s) were waiting in its unassessed queue)"
    )
    status = worked.seen
    if status is None:
        console.print(f"   [red]{ORIGIN} did not see the removal in time[/]")
        return
    console.print(
        f"   {ORIGIN} sees its report {status.report_id}: delivered to {status.destination} "
        f"({status.delivery}), then:"
    )
    for e in status.timeline:
        console.print(f"     {e.member}  {items_text(e)}: {escape(event_text(e))}")
    for s in status.items:
        clock = takedown_clock(s)
        times = ", ".join(f"{CLOCK_LABELS[k]} {duration_text(clock[k])}" for k in CLOCK_STEPS)
        console.print(f"   item {s.ref.index}: {s.stage}; takedown clock: {times}")
    said = "closed, every item removed" if worked.coordinator_closed else "[red]not closed[/]"
    console.print(f"   the coordinator's view of case {worked.case_id}: {said}")
