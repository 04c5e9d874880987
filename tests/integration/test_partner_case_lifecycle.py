"""Law-enforcement partners see the case lifecycle, and record their own feedback — real gRPC.

The partner federation (tests/integration/partner_cluster.py): nl-eokm submits DE-hosted
reports; de-eco opens the cases and assigns baseline ones to de-bka, national ones to de-lka.

* A pulled case carries its lifecycle: open, every item's state with its takedown clock, the
  timeline of signed events, and whether every report was withdrawn.
* An acknowledged case comes again on the next pull once de-eco assesses or acts on it, with
  the new state and timeline; a withdrawal by the origin reaches the partner the same way.
* ``RecordFeedback``: a partner's feedback on its own case is stored and audited (a routing-log
  entry of kind ``feedback``; the log still verifies); another partner's case and unknown ids
  are NOT_FOUND, a bad code or note INVALID_ARGUMENT — and nothing is stored for any refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import cast

import grpc
import pytest

from exchange.client.stubs import LogClient, PartnerClient
from exchange.domain import Classification
from exchange.lifecycle.model import Action, ActionKind, Assessment, Withdrawal, WithdrawalReason
from exchange.wire.case_codec import event_from_proto
from exchange.wire.codec import timestamp
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import lifecycle_pb2 as lpb
from ihx.v1 import partner_pb2 as ppb
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.partner_cluster import (
    DE_BKA,
    DE_LKA,
    log_token,
    partner_cluster,
    pull_token,
    stop_senders,
)
from tests.integration.support import DE, NL, Cluster, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Iterator[Cluster]:
    cluster = partner_cluster(make_cluster)
    yield cluster
    stop_senders(cluster)


class Cases:
    """Two DE-hosted baseline cases (two items, one item) and a national one, held by de-eco."""

    def __init__(self, cluster: Cluster) -> None:
        answers = cluster.submit(
            NL,
            [
                make_submission(url_in("DE", "/lc/two.jpg"), hashes=["lc-two-a", "lc-two-b"]),
                make_submission(url_in("DE", "/lc/one.jpg"), hashes=["lc-one"]),
                make_submission(
                    url_in("DE", "/lc/national.jpg"),
                    hashes=["lc-national"],
                    classification=Classification.NATIONAL,
                ),
            ],
        )
        wait_until(
            lambda: cluster.count(DE, "partner_cases") == 3,
            30,
            what="de-eco holding the three cases, assigned to its partners",
        )
        case_of = {r.url: r.id for r in cluster.rows(DE, "SELECT id, url FROM cases")}
        self.reports = [a.report_id for a in answers]
        self.two, self.one, self.national = (case_of[a.canonical_url] for a in answers)


@pytest.fixture
def cases(cluster: Cluster) -> Cases:
    return Cases(cluster)


def client(cluster: Cluster, partner: str) -> PartnerClient:
    return PartnerClient(cluster.address(DE), token=pull_token(cluster, DE, partner))


@pytest.fixture
def bka(cluster: Cluster) -> Iterator[PartnerClient]:
    with client(cluster, DE_BKA) as c:
        yield c


def pulled(partner: PartnerClient) -> dict[str, ppb.Case]:
    """The partner's visible cases from the start of its queue (how a partner pulls again)."""
    return {c.id: c for c in partner.pull("", 100)}


def status_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = cast(grpc.Call, info.value)
    return error.code(), error.details() or ""


# -- the lifecycle in a pull ----------------------------------------------------------------


def test_a_pulled_case_carries_its_lifecycle_and_comes_again_when_it_moves(
    cluster: Cluster, cases: Cases, bka: PartnerClient
) -> None:
    first = pulled(bka)
    assert set(first) == {cases.two, cases.one}
    case = first[cases.two]
    assert case.open
    assert not case.withdrawn
    assert list(case.timeline) == []
    assert [(s.ref.report_id, s.ref.index) for s in case.items] == [
        (cases.reports[0], 0),
        (cases.reports[0], 1),
    ]
    for item in case.items:
        assert item.stage == cpb.ITEM_STAGE_UNASSESSED
        # the takedown clock starts at the signed receipt time
        assert item.clock_started == case.takedown_clock_started
        assert item.ref.origin_member == NL
    assert bka.ack([cases.two, cases.one]).acknowledged == 2

    # de-eco assesses both items and tells law enforcement: the acknowledged case comes again
    work = cluster.node(DE).case_work
    assessed = work.assess(cases.two, [], Assessment(Classification.BASELINE, analyst_ref="an-1"))
    told = work.act(cases.two, [], Action(ActionKind.REPORTED_TO_LEA, partner=DE_BKA))
    again = pulled(bka)
    assert set(again) == {cases.two}  # the other acknowledged case did not move
    case = again[cases.two]
    assert case.open
    assert [event_from_proto(e) for e in case.timeline] == [assessed, told]
    for item in case.items:
        assert item.stage == cpb.ITEM_STAGE_ACTIONED
        assert item.assessment.classification == 1  # baseline
        assert item.assessment.analyst_ref == "an-1"
        assert item.lea_partner == DE_BKA
        assert item.HasField("assessed_at")
        assert item.HasField("lea_at")
    assert bka.ack([cases.two]).acknowledged == 1

    # removal closes the case: it comes again, closed, with the whole timeline
    removed = work.act(cases.two, [], Action(ActionKind.REMOVED))
    case = pulled(bka)[cases.two]
    assert not case.open
    assert [event_from_proto(e) for e in case.timeline] == [assessed, told, removed]
    assert {s.stage for s in case.items} == {cpb.ITEM_STAGE_REMOVED}
    assert all(s.HasField("closed_at") for s in case.items)


def test_a_withdrawal_by_the_origin_reaches_the_partner(
    cluster: Cluster, cases: Cases, bka: PartnerClient
) -> None:
    pulled(bka)
    assert bka.ack([cases.two, cases.one]).acknowledged == 2
    asked = cluster.node(NL).case_work.withdraw(
        cases.reports[1], Withdrawal(WithdrawalReason.MISREPORT, "wrong image")
    )
    assert asked is not None

    case = wait_until(
        lambda: pulled(bka).get(cases.one), 30, what="the withdrawn case offered to de-bka again"
    )
    assert case.withdrawn
    assert not case.open
    assert [s.stage for s in case.items] == [cpb.ITEM_STAGE_WITHDRAWN]
    # the origin's signed request, then de-eco's confirmation that the report left the case
    request, confirmed = case.timeline
    assert event_from_proto(request) == asked
    assert confirmed.member == DE
    assert confirmed.WhichOneof("body") == "withdrawn"
    assert confirmed.withdrawn.reason == lpb.WITHDRAWAL_REASON_MISREPORT
    # the other case keeps its state: nothing of it was withdrawn
    assert cases.two not in pulled(bka)


# -- feedback -------------------------------------------------------------------------------------


def feedback_rows(cluster: Cluster) -> list[tuple[str, str, str, str]]:
    return [
        (r.partner, r.case_id, r.code, r.note)
        for r in cluster.rows(
            DE, "SELECT partner, case_id, code, note FROM partner_feedback ORDER BY id"
        )
    ]


def test_a_partner_records_feedback_on_its_own_case_audited(
    cluster: Cluster, cases: Cases, bka: PartnerClient
) -> None:
    answer = bka.feedback(cases.two, ppb.FEEDBACK_CODE_INVESTIGATING, "file 2026/17\nteam B")
    assert answer.HasField("recorded_at")
    bka.feedback(cases.one, ppb.FEEDBACK_CODE_RECEIVED)
    assert feedback_rows(cluster) == [
        (DE_BKA, cases.two, "investigating", "file 2026/17\nteam B"),
        (DE_BKA, cases.one, "received", ""),
    ]

    with LogClient(cluster.address(DE), token=log_token(cluster, DE)) as log:
        entries = list(log.entries(kind="feedback"))
    assert [(e.member, json.loads(e.detail_json)) for e in entries] == [
        (DE_BKA, {"case": cases.two, "code": "investigating", "note_chars": 19}),
        (DE_BKA, {"case": cases.one, "code": "received", "note_chars": 0}),
    ]
    assert entries[0].at == answer.recorded_at
    assert cluster.log_break(DE) is None

    # the holder's analysts see it in the case
    (shown,) = cluster.node(DE).case_views.case(cases.two).feedback
    assert (shown.partner, shown.code, shown.note) == (
        DE_BKA,
        "investigating",
        "file 2026/17\nteam B",
    )
    assert timestamp(shown.at) == answer.recorded_at


def test_feedback_is_refused_with_nothing_stored(
    cluster: Cluster, cases: Cases, bka: PartnerClient
) -> None:
    log_before = cluster.count(DE, "routing_log")
    refusals = {
        # de-lka's case is answered exactly like an unknown one
        "another partner's case": (
            partial(bka.feedback, cases.national, ppb.FEEDBACK_CODE_RECEIVED),
            grpc.StatusCode.NOT_FOUND,
        ),
        "an unknown case": (
            partial(bka.feedback, "c-" + "0" * 32, ppb.FEEDBACK_CODE_RECEIVED),
            grpc.StatusCode.NOT_FOUND,
        ),
        "no case id at all": (
            partial(bka.feedback, "not-a-case", ppb.FEEDBACK_CODE_RECEIVED),
            grpc.StatusCode.NOT_FOUND,
        ),
        "no code": (
            partial(bka.feedback, cases.two, ppb.FEEDBACK_CODE_UNSPECIFIED),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "an unknown code": (
            partial(bka.feedback, cases.two, cast(ppb.FeedbackCode.ValueType, 42)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "a note too long": (
            partial(bka.feedback, cases.two, ppb.FEEDBACK_CODE_RECEIVED, "n" * 1001),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "a control character in the note": (
            partial(bka.feedback, cases.two, ppb.FEEDBACK_CODE_RECEIVED, "a\x1b[2Jb"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    }
    for what, (call, expected) in refusals.items():
        code, details = status_of(call)
        assert code is expected, (what, details)
    too_long = status_of(refusals["a note too long"][0])[1]
    assert too_long == "invalid-event: note: at most 1000 characters"
    assert "code: missing or unknown value 42" in status_of(refusals["an unknown code"][0])[1]

    # a subject that is no partner of de-eco is refused before anything is looked up
    with client(cluster, "nl-police") as stranger:
        code, _ = status_of(partial(stranger.feedback, cases.two, ppb.FEEDBACK_CODE_RECEIVED))
    assert code is grpc.StatusCode.PERMISSION_DENIED

    assert feedback_rows(cluster) == []
    assert cluster.count(DE, "routing_log", "kind = 'feedback'") == 0
    assert cluster.count(DE, "routing_log") == log_before

    # de-lka may give feedback on its own case
    with client(cluster, DE_LKA) as lka:
        lka.feedback(cases.national, ppb.FEEDBACK_CODE_NO_ACTION, "not in our remit")
    assert feedback_rows(cluster) == [(DE_LKA, cases.national, "no_action", "not in our remit")]


def test_a_partner_keeps_at_most_its_quota_of_feedback_per_case(
    cluster: Cluster, cases: Cases, bka: PartnerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exchange.partners.MAX_FEEDBACK_PER_CASE", 3)
    for i in range(3):
        bka.feedback(cases.one, ppb.FEEDBACK_CODE_INVESTIGATING, f"note {i}")
    log_before = cluster.count(DE, "routing_log")

    code, details = status_of(partial(bka.feedback, cases.one, ppb.FEEDBACK_CODE_RECEIVED))

    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith("quota-exceeded: ")
    assert len([r for r in feedback_rows(cluster) if r[1] == cases.one]) == 3
    assert cluster.count(DE, "routing_log") == log_before
    bka.feedback(cases.two, ppb.FEEDBACK_CODE_RECEIVED)  # another case has its own quota


# -- holds on the notices to the hoster -----------------------------------------------------


def hold_rows(cluster: Cluster) -> list[tuple[str, str, str, bool]]:
    rows = cluster.rows(
        DE, "SELECT case_id, by, reason, released_at FROM takedown_holds ORDER BY id"
    )
    return [(r.case_id, r.by, r.reason, r.released_at is not None) for r in rows]


def test_a_partner_holds_the_notices_of_its_own_case_audited(
    cluster: Cluster, cases: Cases, bka: PartnerClient
) -> None:
    held = bka.hold(cases.two, 7200, "evidence preservation, file 2026/17")
    bka.hold(cases.two, 600, "renewed by the duty officer")
    assert hold_rows(cluster) == [
        (cases.two, DE_BKA, "evidence preservation, file 2026/17", False),
        (cases.two, DE_BKA, "renewed by the duty officer", False),
    ]
    (row,) = cluster.rows(DE, "SELECT at, until FROM takedown_holds WHERE reason LIKE 'ev%'")
    assert row.until - row.at == 7200 * 1_000_000  # stored as microseconds
    assert held.until.seconds == row.until // 1_000_000

    assert bka.release_hold(cases.two).released == 2
    assert bka.release_hold(cases.two).released == 0  # nothing active is left
    assert [r[3] for r in hold_rows(cluster)] == [True, True]  # kept, stamped: the audit

    with LogClient(cluster.address(DE), token=log_token(cluster, DE)) as log:
        held_entries = list(log.entries(kind="notices-held"))
        released_entries = list(log.entries(kind="hold-released"))
    assert [json.loads(e.detail_json)["by"] for e in held_entries] == [DE_BKA, DE_BKA]
    assert [json.loads(e.detail_json) for e in released_entries] == [
        {"case": cases.two, "by": DE_BKA, "released": 2}
    ]
    assert cluster.log_break(DE) is None


def test_holds_are_refused_with_nothing_stored(
    cluster: Cluster, cases: Cases, bka: PartnerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_before = cluster.count(DE, "routing_log")
    refusals = {
        "another partner's case": (
            partial(bka.hold, cases.national, 60, "x"),
            grpc.StatusCode.NOT_FOUND,
        ),
        "an unknown case": (partial(bka.hold, "c-" + "0" * 32, 60, "x"), grpc.StatusCode.NOT_FOUND),
        "no case id at all": (
            partial(bka.hold, "not-a-case", 60, "x"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "no duration": (partial(bka.hold, cases.two, 0, "x"), grpc.StatusCode.INVALID_ARGUMENT),
        "over 90 days": (
            partial(bka.hold, cases.two, 90 * 86400 + 1, "x"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "no reason": (partial(bka.hold, cases.two, 60, "  "), grpc.StatusCode.INVALID_ARGUMENT),
        "a control character": (
            partial(bka.hold, cases.two, 60, "a\x1b[2Jb"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "a reason too long": (
            partial(bka.hold, cases.two, 60, "r" * 201),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "releasing another partner's case": (
            partial(bka.release_hold, cases.national),
            grpc.StatusCode.NOT_FOUND,
        ),
    }
    for what, (call, expected) in refusals.items():
        code, details = status_of(call)
        assert code is expected, (what, details)
    with client(cluster, "nl-police") as stranger:
        code, _ = status_of(partial(stranger.hold, cases.two, 60, "x"))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert hold_rows(cluster) == []
    assert cluster.count(DE, "routing_log") == log_before

    # at most MAX_ACTIVE active holds per partner and case
    monkeypatch.setattr("exchange.takedown.holds.MAX_ACTIVE", 2)
    bka.hold(cases.one, 60, "first")
    bka.hold(cases.one, 60, "second")
    code, details = status_of(partial(bka.hold, cases.one, 60, "third"))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert len(hold_rows(cluster)) == 2

    # and at most MAX_PER_CASE ever, released or not (rows and log entries are kept)
    monkeypatch.setattr("exchange.takedown.holds.MAX_PER_CASE", 3)
    bka.release_hold(cases.one)
    bka.hold(cases.one, 60, "third, after a release")
    bka.release_hold(cases.one)
    code, details = status_of(partial(bka.hold, cases.one, 60, "fourth"))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert "3 times" in details
    assert len(hold_rows(cluster)) == 3
