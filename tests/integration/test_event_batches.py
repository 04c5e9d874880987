"""Case events in bulk: the holder's commands that arrive together are one writer job, and an
envelope's events are applied in one run — with the same outcome as one at a time.

de-eco holds cases nl-eokm reported. Its analysts' concurrent assess/act calls are coalesced:
each command sees the states the ones before it left (two steps on one case in one job), a
refused command is answered with its rule and leaves nothing behind, the others are recorded
and reach nl-eokm and the coordinator in order; a bulk call (``CaseWork.run``) answers each of
its commands with its event or its error. At nl-eokm, an envelope mixing an event its
rules refuse, an event from a member that does not hold the case and a valid event applies the
valid one only — and applying the same events again changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from exchange.domain import Classification, Outcome
from exchange.errors import ExchangeError, NotFound, TransitionRefused
from exchange.lifecycle.inbound import CheckedEvent
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    ItemRef,
    event_id_for,
)
from exchange.lifecycle.record import Carrier
from exchange.lifecycle.work import Command
from exchange.wire.case_codec import event_to_bytes
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, wait_until

BASELINE = Assessment(Classification.BASELINE)
LEA = Action(ActionKind.REPORTED_TO_LEA, partner="bka")
REMOVED = Action(ActionKind.REMOVED)


@pytest.fixture
def two_cases(cluster: Cluster) -> tuple[str, str]:
    """Two cases at de-eco, one report of nl-eokm's each; their ids as the receipts gave them."""
    responses = cluster.submit(
        NL,
        [
            make_submission(url_in("DE", "/batch/a.jpg"), hashes=["batch-a"]),
            make_submission(url_in("DE", "/batch/b.jpg"), hashes=["batch-b"]),
        ],
    )
    ids = [r.report_id for r in responses]

    def case_ids() -> list[str]:
        rows = {
            r.report_id: r.remote_case_id
            for r in cluster.rows(
                NL,
                "SELECT r.id AS report_id, d.remote_case_id"
                " FROM deliveries d JOIN reports r ON r.seq = d.report_seq",
            )
        }
        found = [rows.get(i) for i in ids]
        return [c for c in found if c] if all(found) else []

    a, b = wait_until(case_ids, what="both reports receipted with their case")
    return a, b


def run_together(cluster: Cluster, calls: list[Callable[[], CaseEvent]]) -> list[object]:
    """Make the calls while de-eco's writer is held, in this order, then let it go: they meet
    in one coalesced job. Each call's event, or the error it raised."""
    node = cluster.node(DE)
    work = node.case_work
    started, gate = threading.Event(), threading.Event()

    def hold(_tx: object) -> None:
        started.set()
        gate.wait(10)

    node.writer.submit(hold)
    assert started.wait(10)
    results: list[object] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except ExchangeError as error:
            results[i] = error

    def queued(n: int) -> Callable[[], bool]:
        return lambda: len(work._commands._items) == n

    threads = []
    for i in range(len(calls)):
        threads.append(threading.Thread(target=call, args=(i,)))
        threads[-1].start()
        # The order in the job is the order of arrival: wait for each before the next.
        wait_until(queued(i + 1), 10, what="command queued")
    gate.set()  # the writer takes all of them at once: one job
    for t in threads:
        t.join(10)
    return results


def sequences(cluster: Cluster, member: str, case_id: str) -> list[int]:
    rows = cluster.rows(
        member,
        "SELECT sequence FROM case_events WHERE case_id = :c AND member = :m ORDER BY cursor",
        c=case_id,
        m=DE,
    )
    return [r.sequence for r in rows]


def stage(cluster: Cluster, member: str, case_id: str) -> tuple[str, str | None, int]:
    r = cluster.rows(
        member,
        "SELECT stage, classification, actions FROM item_states WHERE case_id = :c",
        c=case_id,
    )[0]
    return (r.stage, r.classification, r.actions)


def test_commands_arriving_together_are_one_job_in_order(
    cluster: Cluster, two_cases: tuple[str, str]
) -> None:
    a, b = two_cases
    work = cluster.node(DE).case_work
    results = run_together(
        cluster,
        [
            lambda: work.assess(a, [], BASELINE),
            lambda: work.act(a, [], LEA),  # sees the assessment just before it
            lambda: work.act(b, [], REMOVED),  # b is not assessed: refused
            lambda: work.assess(b, [], BASELINE),
            lambda: work.assess(a, [], BASELINE),  # after the action: refused
        ],
    )
    made = [r for r in results if isinstance(r, CaseEvent)]
    assert len({e.at for e in made}) == 1  # one job: one clock reading for all
    assert [(e.case_id, e.sequence, e.kind) for e in made] == [
        (a, 1, EventKind.ASSESSMENT),
        (a, 2, EventKind.ACTION),
        (b, 1, EventKind.ASSESSMENT),
    ]
    assert isinstance(results[2], TransitionRefused)
    assert "assessed illegal" in str(results[2])
    assert isinstance(results[4], TransitionRefused)
    assert "no re-assessment after an action" in str(results[4])
    # Nothing of the refused ones: no event, no sequence taken, no log entry.
    assert sequences(cluster, DE, a) == [1, 2]
    assert sequences(cluster, DE, b) == [1]
    assert cluster.count(DE, "routing_log", "kind IN ('assessed', 'acted')") == 3
    assert stage(cluster, DE, a) == ("actioned", "baseline", 1)
    assert stage(cluster, DE, b) == ("assessed", "baseline", 0)

    def arrived(member: str) -> Callable[[], bool]:
        return lambda: (
            sequences(cluster, member, a) == [1, 2] and sequences(cluster, member, b) == [1]
        )

    for member in (NL, COORDINATOR):
        wait_until(arrived(member), what=f"the three events at {member}")
        assert stage(cluster, member, a) == stage(cluster, DE, a)
        assert stage(cluster, member, b) == stage(cluster, DE, b)
        assert cluster.count(member, "routing_log", "kind = 'event-applied'") == 3
    wait_until(lambda: cluster.drained(DE), what="de-eco's events receipted")


def _event(
    member: str, case_id: str, seq: int, body: Assessment | Action, ref: ItemRef
) -> CaseEvent:
    kind = EventKind.ASSESSMENT if isinstance(body, Assessment) else EventKind.ACTION
    return CaseEvent(
        id=event_id_for(member, case_id, seq),
        case_id=case_id,
        member=member,
        sequence=seq,
        at=datetime.now(UTC),
        items=(ref,),
        kind=kind,
        body=body,
    )


def test_an_envelope_applies_its_valid_events_only_and_once(
    cluster: Cluster, two_cases: tuple[str, str]
) -> None:
    a, _ = two_cases
    work = cluster.node(DE).case_work
    work.assess(a, [], BASELINE)
    work.act(a, [], LEA)
    wait_until(lambda: sequences(cluster, NL, a) == [1, 2], what="a's events at nl-eokm")
    ref = cluster.node(NL).case_views.case(a).items[0].ref
    events = [
        _event(DE, a, 3, BASELINE, ref),  # re-assessing baseline: nl-eokm's rules refuse it
        _event(US, a, 1, REMOVED, ref),  # us-ncmec does not hold the case
        _event(DE, a, 3, REMOVED, ref),  # de-eco's third step, in its order
    ]
    checked = [
        CheckedEvent(i, e, event_to_bytes(e), Carrier(e.member, 900 + i, i, b""))
        for i, e in enumerate(events)
    ]
    node = cluster.node(NL)

    def apply() -> list[tuple[Outcome, str]]:
        results = node.writer.execute(lambda tx: node.inbound.apply(tx, checked, datetime.now(UTC)))
        return [(r.outcome, r.reason.split(":")[0]) for r in results]

    assert apply() == [
        (Outcome.REJECTED, "transition-refused"),
        (Outcome.REJECTED, "not-assigned"),
        (Outcome.ACCEPTED, ""),
    ]
    assert sequences(cluster, NL, a) == [1, 2, 3]
    assert stage(cluster, NL, a) == ("removed", "baseline", 2)
    before = cluster.count(NL, "routing_log")
    # Again (a resent envelope): the applied one is acknowledged, nothing is stored twice.
    assert apply()[2] == (Outcome.ACCEPTED, "")
    assert sequences(cluster, NL, a) == [1, 2, 3]
    assert cluster.count(NL, "routing_log", "kind = 'event-applied'") == 3
    assert cluster.count(NL, "routing_log") == before


def test_a_bulk_call_answers_each_command(cluster: Cluster, two_cases: tuple[str, str]) -> None:
    a, b = two_cases
    work = cluster.node(DE).case_work
    results = work.run(
        [
            Command.assess(a, [], BASELINE),
            Command.act(b, [], REMOVED),  # b is not assessed: refused, the others go on
            Command.act(a, [], LEA),
            Command.act(a, [("r-" + "0" * 32, 0)], REMOVED),  # no such item in a
        ]
    )
    assert isinstance(results[0], CaseEvent)
    assert isinstance(results[1], TransitionRefused)
    assert isinstance(results[2], CaseEvent)
    assert isinstance(results[3], NotFound)
    assert (results[0].sequence, results[2].sequence) == (1, 2)
    assert results[0].at == results[2].at  # one job
    assert sequences(cluster, DE, a) == [1, 2]
    assert sequences(cluster, DE, b) == []
    wait_until(lambda: sequences(cluster, NL, a) == [1, 2], what="a's events at nl-eokm")
