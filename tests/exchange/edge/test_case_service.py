"""The Cases service over real gRPC on loopback: every RPC, every refusal, scopes and WatchCases.

One federation for the module — nl-eokm (NL), de-eco (DE) and the coordinator inhope, real
nodes with their databases, keys and tokens — in which nl-eokm reports DE-hosted URLs, so
de-eco holds the cases and nl-eokm is the origin. Each test makes its own reports, so the tests
do not depend on each other's order. A refused request must change nothing at either node
(``snapshot``). WatchCases budgets are small here (``watch_streams = 2``) so the budget itself
can be tested; its duration bound and the stop are tested on a servicer of their own over the
same node's components, with a short ``max_watch_s``.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from auth.tokens import Scope
from exchange.client.stubs import CasesClient
from exchange.domain import AgeGroup, Classification
from exchange.edge import case_service
from exchange.edge.case_service import CaseServicer, change_messages
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    Gender,
    ItemRef,
    Queue,
    ReasonCode,
    Stage,
    TimedEvent,
    Withdrawal,
    WithdrawalReason,
)
from exchange.wire.case_codec import item_key_to_proto
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import cases_pb2_grpc as cgrpc
from ihx.v1 import lifecycle_pb2 as lpb
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import T0, make_submission, url_in
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    PLANS,
    Cluster,
    provision,
    tuning,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

Metadata = tuple[tuple[str, str], ...]
HEX = "0123456789abcdef"
UNKNOWN_CASE = "c-" + "f" * 32
UNKNOWN_REPORT = "r-" + "e" * 32


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    plans = tuple(p for p in PLANS if p.id in (NL, DE, COORDINATOR))
    root: Path = tmp_path_factory.mktemp("cases")
    cluster = Cluster(provision(root, plans=plans, extra_settings=tuning(watch_streams=2)))
    try:
        cluster.start(NL, DE, COORDINATOR)
        yield cluster
    finally:
        cluster.close()


def token(cluster: Cluster, member: str, *scopes: Scope) -> str:
    return cluster.fed.token(member, *(scopes or (Scope.CASES_WORK,)), subject="analyst-1")


def bearer(value: str) -> Metadata:
    return (("authorization", f"Bearer {value}"),)


def client(cluster: Cluster, member: str) -> CasesClient:
    return CasesClient(cluster.address(member), token=token(cluster, member), timeout=30)


_numbers = itertools.count()


def reported(
    cluster: Cluster,
    *,
    items: int = 1,
    classification: Classification = Classification.BASELINE,
) -> tuple[str, str]:
    """nl-eokm reports a new DE-hosted URL: (report id, case id) once de-eco's receipt is in."""
    n = next(_numbers)
    submission = make_submission(
        url_in("DE", f"/cases/{n}.jpg"),
        hashes=[f"case-service-{n}-{i}" for i in range(items)],
        classification=classification,
    )
    report_id = cluster.submit(NL, [submission])[0].report_id
    with client(cluster, NL) as nl:
        status = wait_until(
            lambda: (s := nl.report_status(report_id)).case_id and s,
            what=f"de-eco's receipt for {report_id} at nl-eokm",
        )
    return report_id, status.case_id


def settle(cluster: Cluster) -> None:
    """Wait until every node has delivered everything (a receipt follows the peer's COMMIT)."""
    for member in (NL, DE, COORDINATOR):
        wait_until(
            lambda member=member: cluster.drained(member),  # type: ignore[misc]
            what=f"{member}'s outbox drained",
            show=lambda member=member: cluster.delivery_state(member),  # type: ignore[misc]
        )


def last_cursor(cluster: Cluster, member: str) -> str:
    return str(cluster.scalar(member, "SELECT coalesce(max(cursor), 0) FROM case_events"))


def snapshot(cluster: Cluster) -> dict[str, object]:
    """Everything a case call could change, at both nodes, once deliveries in flight landed."""
    settle(cluster)
    out: dict[str, object] = {}
    for member in (NL, DE):
        out[member] = (
            cluster.count(member, "case_events"),
            cluster.count(member, "reports", "withdrawn_at IS NOT NULL"),
            cluster.count(member, "routing_log"),
            cluster.rows(
                member,
                "SELECT case_id, report_id, idx, stage, classification, actions, updated_at"
                " FROM item_states ORDER BY case_id, report_id, idx",
            ),
        )
    return out


def call(
    cluster: Cluster, member: str, method: str, request: Any, metadata: Metadata | None = None
) -> tuple[grpc.StatusCode, str, list[Any]]:
    """``method`` of the Cases service at ``member``: its status, details, and what came back."""
    meta = metadata if metadata is not None else bearer(token(cluster, member))
    returned: list[Any] = []
    with grpc.insecure_channel(cluster.address(member)) as channel:
        rpc = getattr(cgrpc.CasesStub(channel), method)
        try:
            answer = rpc(request, metadata=meta, timeout=10)
            if method == "WatchCases":
                for message in answer:
                    returned.append(message)
                    answer.cancel()
            else:
                returned.append(answer)
        except grpc.RpcError as error:
            failed = cast(grpc.Call, error)
            if failed.code() is not grpc.StatusCode.CANCELLED:
                return failed.code(), failed.details() or "", returned
    return grpc.StatusCode.OK, "", returned


def refused(
    cluster: Cluster, member: str, method: str, request: Any, metadata: Metadata | None = None
) -> tuple[grpc.StatusCode, str]:
    code, details, returned = call(cluster, member, method, request, metadata)
    assert code is not grpc.StatusCode.OK, (method, request)
    assert returned == []
    return code, details


# -- the whole lifecycle through the service ------------------------------------------------------


def test_the_holder_works_a_case_to_removal_and_the_origin_sees_every_step(
    cluster: Cluster,
) -> None:
    report_id, case_id = reported(cluster, items=2)
    with client(cluster, DE) as de, client(cluster, NL) as nl:
        waiting, _ = de.queue(Queue.UNASSESSED, limit=1000)
        assert case_id in [r.id for r in waiting]
        detail = de.case(case_id)
        assert (detail.holder, detail.hosting_country, detail.open) == (DE, "DE", True)
        assert detail.url.endswith(".jpg")
        assert detail.reporting_members == (NL,)
        assert [s.stage for s in detail.items] == [Stage.UNASSESSED] * 2

        assessment = Assessment(
            Classification.BASELINE,
            AgeGroup.PREPUBESCENT,
            Gender.FEMALE,
            user_generated=True,
            analyst_ref="A-17",
        )
        after = de.assess(case_id, [], assessment)
        assert [(s.stage, s.assessment) for s in after.items] == [(Stage.ASSESSED, assessment)] * 2
        assert case_id in [r.id for r in de.queue(Queue.UNACTIONED, limit=1000)[0]]
        de.act(case_id, [], Action(ActionKind.REPORTED_TO_LEA, partner="bka"))
        de.act(case_id, [(report_id, 0)], Action(ActionKind.REPORTED_TO_HOST, recipient="abuse@h"))
        closed = de.act(case_id, [], Action(ActionKind.REMOVED, reference="msg-1"))
        assert not closed.open
        assert closed.closed_at is not None
        assert [s.stage for s in closed.items] == [Stage.REMOVED] * 2
        first = closed.items[0]
        assert (first.lea_partner, first.host_recipient) == ("bka", "abuse@h")
        assert first.clock_started is not None
        assert first.closed_at is not None
        assert first.clock_started <= first.assessed_at <= first.lea_at <= first.closed_at
        assert [e.kind for e in closed.timeline] == [EventKind.ASSESSMENT] + [EventKind.ACTION] * 3
        assert case_id in [r.id for r in de.queue(Queue.RECENTLY_CLOSED, limit=1000)[0]]
        assert case_id not in [r.id for r in de.queue(Queue.UNASSESSED, limit=1000)[0]]

        seen = wait_until(
            lambda: (s := nl.report_status(report_id)).items[1].stage is Stage.REMOVED and s,
            what="the removal at nl-eokm",
        )
        assert (seen.destination, seen.case_id, seen.delivery) == (DE, case_id, "new-case")
        assert [e.id for e in seen.timeline] == [e.id for e in closed.timeline]
        assert seen.items == closed.items
    with client(cluster, COORDINATOR) as coordinator:
        known = wait_until(
            lambda: not (d := coordinator.case(case_id)).open and d, what="the coordinator's view"
        )
    assert (known.holder, known.url) == (DE, "")
    assert [s.stage for s in known.items] == [Stage.REMOVED] * 2


def test_queues_page_with_the_cursor_they_hand_out(cluster: Cluster) -> None:
    for _ in range(3):
        reported(cluster)
    with client(cluster, DE) as de:
        everything, end = de.queue(Queue.UNASSESSED, limit=1000)
        assert end == ""
        assert len(everything) >= 3
        pages, cursor = [], ""
        while True:
            page, cursor = de.queue(Queue.UNASSESSED, limit=2, after=cursor)
            pages.append(page)
            if not cursor:
                break
    assert [r.id for page in pages for r in page] == [r.id for r in everything]
    assert all(len(page) <= 2 for page in pages)


def test_a_withdrawal_closes_the_items_at_the_holder_once(cluster: Cluster) -> None:
    report_id, case_id = reported(cluster)
    with client(cluster, NL) as nl, client(cluster, DE) as de:
        status = nl.withdraw(report_id, Withdrawal(WithdrawalReason.WRONG_URL, "typo"))
        assert status.withdrawn
        assert status.timeline[0].kind is EventKind.WITHDRAWAL
        wait_until(
            lambda: [s.stage for s in de.case(case_id).items] == [Stage.WITHDRAWN],
            what="the withdrawal at de-eco",
        )
        confirmed = wait_until(
            lambda: (s := nl.report_status(report_id)).items[0].stage is Stage.WITHDRAWN and s,
            what="de-eco's confirmation at nl-eokm",
        )
        assert [e.kind for e in confirmed.timeline] == [EventKind.WITHDRAWAL, EventKind.WITHDRAWN]
        before = snapshot(cluster)
        again = nl.withdraw(report_id, Withdrawal(WithdrawalReason.WRONG_URL))
    assert again.withdrawn
    assert snapshot(cluster) == before  # withdrawn once: the second changes nothing


# -- refusals: each with its status, nothing changed ----------------------------------------------


@pytest.fixture(scope="module")
def held(cluster: Cluster) -> tuple[str, str]:
    """A case at de-eco the refusals aim at: every field valid but the one a test breaks."""
    return reported(cluster, items=2)


def _assess(case_id: str, **assessment: Any) -> cpb.AssessRequest:
    fields = {"classification": pb.CLASSIFICATION_BASELINE, **assessment}
    return cpb.AssessRequest(case_id=case_id, assessment=lpb.Assessment(**fields))


def _act(case_id: str, **action: Any) -> cpb.ActRequest:
    return cpb.ActRequest(case_id=case_id, action=lpb.Action(**action))


def invalid_requests(case_id: str, report_id: str) -> list[tuple[str, Any, str]]:
    """(method, request, the text the refusal must name) for every kind of bad field."""
    ref = item_key_to_proto
    lea = lpb.ACTION_KIND_REPORTED_TO_LEA
    return [
        ("ListQueue", cpb.ListQueueRequest(), "queue: missing or unknown value 0"),
        ("ListQueue", cpb.ListQueueRequest(queue=cast(Any, 77)), "queue: missing or unknown"),
        ("ListQueue", cpb.ListQueueRequest(queue=1, limit=1001), "limit: from 1 to 1000"),
        (
            "ListQueue",
            cpb.ListQueueRequest(queue=3, older_than_days=36_501),
            "older_than_days: from 1 to 36,500",
        ),
        ("ListQueue", cpb.ListQueueRequest(queue=1, after_cursor="x"), "after_cursor"),
        ("ListQueue", cpb.ListQueueRequest(queue=1, after_cursor="1/c-\x00"), "after_cursor"),
        ("ListQueue", cpb.ListQueueRequest(queue=1, after_cursor=f"²/{case_id}"), "after_cursor"),
        ("GetCase", cpb.GetCaseRequest(), "case_id: not a case id"),
        ("GetCase", cpb.GetCaseRequest(case_id=case_id.upper()), "case_id: not a case id"),
        ("GetCase", cpb.GetCaseRequest(case_id=report_id), "case_id: not a case id"),
        ("Assess", cpb.AssessRequest(case_id=case_id), "assessment: required"),
        ("Assess", _assess("c-1"), "case_id: not a case id"),
        (
            "Assess",
            _assess(case_id, classification=pb.CLASSIFICATION_DOUBTFUL),
            "assessment.classification: baseline, national or not_illegal",
        ),
        ("Assess", _assess(case_id, gender=cast(Any, 9)), "assessment.gender"),
        ("Assess", _assess(case_id, age_group=cast(Any, 9)), "assessment.age_group"),
        ("Assess", _assess(case_id, analyst_ref="x" * 129), "assessment.analyst_ref: at most"),
        ("Assess", _assess(case_id, analyst_ref="a\x00b"), "assessment.analyst_ref: control"),
        (
            "Assess",
            cpb.AssessRequest(
                case_id=case_id,
                items=[ref("r-xyz", 0)],
                assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE),
            ),
            "items[0].report_id: not a report id",
        ),
        (
            "Assess",
            cpb.AssessRequest(
                case_id=case_id,
                items=[ref(report_id, 0), ref(report_id, 1000)],
                assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE),
            ),
            "items[1].index: 1000 is not an item",
        ),
        (
            "Assess",
            cpb.AssessRequest(
                case_id=case_id,
                items=[ref(report_id, 1), ref(report_id, 1)],
                assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE),
            ),
            f"items[1]: {report_id}#1 is named twice",
        ),
        (
            "Assess",
            cpb.AssessRequest(
                case_id=case_id,
                items=[lpb.ItemRef(report_id=report_id, index=0, origin_member=NL)],
                assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE),
            ),
            "items[0]: name an item by report_id and index only",
        ),
        (
            "Assess",
            cpb.AssessRequest(
                case_id=case_id,
                items=[ref(report_id, i % 1000) for i in range(1001)],
                assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE),
            ),
            "items: at most 1000 items",
        ),
        ("Act", cpb.ActRequest(case_id=case_id), "action: required"),
        ("Act", _act(case_id), "action.kind: missing or unknown value 0"),
        ("Act", _act(case_id, kind=lea), "action.partner: reported_to_lea names the partner"),
        (
            "Act",
            _act(case_id, kind=lpb.ACTION_KIND_REPORTED_TO_HOST),
            "action.recipient: reported_to_host names",
        ),
        ("Act", _act(case_id, kind=lpb.ACTION_KIND_MOVED), "action.moved_to_country: a move"),
        (
            "Act",
            _act(case_id, kind=lpb.ACTION_KIND_MOVED, moved_to_country="fr"),
            "action.moved_to_country: ISO 3166-1 alpha-2",
        ),
        (
            "Act",
            _act(case_id, kind=lpb.ACTION_KIND_REMOVED, reason=lpb.REASON_CODE_SITE_DOWN),
            "action.reason: removed takes no reason",
        ),
        (
            "Act",
            _act(case_id, kind=lea, partner="bka", recipient="abuse@h"),
            "action.recipient: reported_to_lea takes no recipient",
        ),
        (
            "Act",
            _act(case_id, kind=lpb.ACTION_KIND_UNAVAILABLE, reason=cast(Any, 99)),
            "action.reason: missing or unknown value 99",
        ),
        ("Act", _act(case_id, kind=lea, partner="b" * 65), "action.partner: at most 64"),
        ("Act", _act(case_id, kind=lea, partner="bka", reference="\u202e"), "action.reference"),
        ("GetReportStatus", cpb.ReportStatusRequest(report_id=case_id), "report_id: not a report"),
        ("Withdraw", cpb.WithdrawRequest(report_id=report_id), "reason: missing or unknown"),
        ("Withdraw", cpb.WithdrawRequest(report_id="r-1", reason=1), "report_id: not a report"),
        (
            "Withdraw",
            cpb.WithdrawRequest(report_id=report_id, reason=1, note="n" * 1001),
            "note: at most 1000 characters",
        ),
        (
            "Withdraw",
            cpb.WithdrawRequest(report_id=report_id, reason=1, note="a\x00"),
            "note: control or format character U+0000",
        ),
        ("WatchCases", cpb.WatchCasesRequest(after_cursor="abc"), "after_cursor: not a cursor"),
        ("WatchCases", cpb.WatchCasesRequest(after_cursor="²"), "after_cursor: not a cursor"),
        ("WatchCases", cpb.WatchCasesRequest(after_cursor="9" * 19), "after_cursor: not a cursor"),
    ]


def test_every_malformed_field_is_invalid_argument_naming_it(
    cluster: Cluster, held: tuple[str, str]
) -> None:
    report_id, case_id = held
    before = snapshot(cluster)
    for method, request, named in invalid_requests(case_id, report_id):
        member = NL if method in ("Withdraw", "GetReportStatus") else DE
        code, details = refused(cluster, member, method, request)
        assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, request, details)
        assert named in details, (method, details)
    assert snapshot(cluster) == before


def raw_call(cluster: Cluster, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    """``data`` sent as the request of ``method`` at de-eco, as they are."""
    path = f"/ihx.v1.Cases/{method}"
    with grpc.insecure_channel(cluster.address(DE)) as channel:
        try:
            if method == "WatchCases":
                list(channel.unary_stream(path)(data, metadata=bearer(token(cluster, DE))))
            else:
                channel.unary_unary(path)(data, metadata=bearer(token(cluster, DE)), timeout=10)
        except grpc.RpcError as error:
            failed = cast(grpc.Call, error)
            return failed.code(), failed.details() or ""
    return grpc.StatusCode.OK, ""


def test_bytes_that_are_no_request_or_carry_unknown_fields_are_invalid_argument(
    cluster: Cluster, held: tuple[str, str]
) -> None:
    _, case_id = held
    known = cpb.AssessRequest(
        case_id=case_id, assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE)
    ).SerializeToString()
    field_111 = b"\xf8\x06\x01"  # field 111, varint 1: in no message of the schema
    sent = [
        ("Assess", b"\xff\xff\xff", "request-malformed"),
        ("Assess", known + field_111, "unknown-field"),
        ("WatchCases", b"\xff\xff\xff", "request-malformed"),
        ("WatchCases", field_111, "unknown-field"),
    ]
    before = snapshot(cluster)
    for method, data, code in sent:
        status, details = raw_call(cluster, method, data)
        assert status is grpc.StatusCode.INVALID_ARGUMENT, (method, code, details)
        assert details.startswith(f"{code}: "), details
    assert snapshot(cluster) == before


def test_what_this_node_does_not_know_is_not_found(cluster: Cluster, held: tuple[str, str]) -> None:
    report_id, case_id = held
    ref = item_key_to_proto
    before = snapshot(cluster)
    cases = [
        (DE, "GetCase", cpb.GetCaseRequest(case_id=UNKNOWN_CASE), f"no case {UNKNOWN_CASE}"),
        (DE, "Assess", _assess(UNKNOWN_CASE), f"no case {UNKNOWN_CASE}"),
        (DE, "Act", _act(UNKNOWN_CASE, kind=lpb.ACTION_KIND_REMOVED), f"no case {UNKNOWN_CASE}"),
        (
            DE,
            "Assess",
            cpb.AssessRequest(
                case_id=case_id,
                items=[ref(report_id, 5)],
                assessment=lpb.Assessment(classification=pb.CLASSIFICATION_BASELINE),
            ),
            f"case {case_id} has no item {report_id}#5",
        ),
        (NL, "GetReportStatus", cpb.ReportStatusRequest(report_id=UNKNOWN_REPORT), "no report"),
        (NL, "Withdraw", cpb.WithdrawRequest(report_id=UNKNOWN_REPORT, reason=1), "no report"),
    ]
    for member, method, request, named in cases:
        code, details = refused(cluster, member, method, request)
        assert (code, details.split(":")[0]) == (grpc.StatusCode.NOT_FOUND, "not-found"), method
        assert named in details, (method, details)
    assert snapshot(cluster) == before


def test_only_the_holder_works_a_case_and_only_the_origin_withdraws(cluster: Cluster) -> None:
    report_id, case_id = reported(cluster)
    with client(cluster, DE) as de, client(cluster, NL) as nl:
        de.assess(case_id, [], Assessment(Classification.NATIONAL))
        wait_until(lambda: nl.report_status(report_id).timeline, what="the assessment at NL")
    before = snapshot(cluster)
    code, details = refused(cluster, NL, "Assess", _assess(case_id))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert details.startswith("not-assigned: ")
    assert f"held by {DE}" in details
    code, details = refused(
        cluster, NL, "Act", _act(case_id, kind=lpb.ACTION_KIND_REPORTED_TO_LEA, partner="x")
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    code, details = refused(
        cluster, DE, "Withdraw", cpb.WithdrawRequest(report_id=report_id, reason=1)
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert f"sent by {NL}: only its origin withdraws it" in details
    assert snapshot(cluster) == before


def test_a_rule_refusal_is_failed_precondition_naming_the_rule(cluster: Cluster) -> None:
    report_id, case_id = reported(cluster)
    item = f"item {report_id}#0"
    refusals = [
        (_act(case_id, kind=lpb.ACTION_KIND_REMOVED), "removed needs the item assessed illegal"),
        (
            _act(case_id, kind=lpb.ACTION_KIND_UNAVAILABLE),
            "unavailable takes one of content_not_found",
        ),
    ]
    with client(cluster, DE) as de:
        before = snapshot(cluster)
        for request, rule in refusals:
            code, details = refused(cluster, DE, "Act", request)
            assert code is grpc.StatusCode.FAILED_PRECONDITION
            assert details.startswith(f"transition-refused: {item}: {rule}"), details
        assert snapshot(cluster) == before
        de.assess(case_id, [], Assessment(Classification.BASELINE))
        before = snapshot(cluster)
        code, details = refused(
            cluster, DE, "Assess", _assess(case_id, classification=pb.CLASSIFICATION_NATIONAL)
        )
        assert (code, details) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"transition-refused: {item}: baseline is locked: nobody re-classifies it",
        )
        code, details = refused(
            cluster,
            DE,
            "Act",
            _act(case_id, kind=lpb.ACTION_KIND_NOT_ILLEGAL, reason=lpb.REASON_CODE_SITE_DOWN),
        )
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        assert "not_illegal takes" in details
        assert snapshot(cluster) == before
        de.act(case_id, [], Action(ActionKind.UNAVAILABLE, ReasonCode.SITE_DOWN))
    code, details = refused(
        cluster, DE, "Act", _act(case_id, kind=lpb.ACTION_KIND_REPORTED_TO_LEA, partner="bka")
    )
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert details.endswith(f"case {case_id}: every item is closed")


# -- scope ----------------------------------------------------------------------------------------


def every_method(case_id: str, report_id: str) -> list[tuple[str, Any]]:
    """A valid request for each of the seven methods."""
    return [
        ("ListQueue", cpb.ListQueueRequest(queue=cpb.QUEUE_UNASSESSED)),
        ("GetCase", cpb.GetCaseRequest(case_id=case_id)),
        ("Assess", _assess(case_id)),
        ("Act", _act(case_id, kind=lpb.ACTION_KIND_REPORTED_TO_LEA, partner="bka")),
        ("GetReportStatus", cpb.ReportStatusRequest(report_id=report_id)),
        ("Withdraw", cpb.WithdrawRequest(report_id=report_id, reason=1)),
        ("WatchCases", cpb.WatchCasesRequest()),
    ]


def test_a_token_without_cases_work_is_refused_by_every_method(
    cluster: Cluster, held: tuple[str, str]
) -> None:
    report_id, case_id = held
    others = [s for s in Scope if s not in (Scope.CASES_WORK, Scope.ADMIN)]
    wrong = bearer(token(cluster, DE, *others))
    before = snapshot(cluster)
    for method, request in every_method(case_id, report_id):
        code, details = refused(cluster, DE, method, request, wrong)
        assert code is grpc.StatusCode.PERMISSION_DENIED, method
        assert details.startswith("permission-denied: "), details
        assert "cases:work" in details, details
        code, details = refused(cluster, DE, method, request, ())
        assert code is grpc.StatusCode.UNAUTHENTICATED, method
        assert details.startswith("token-missing: "), method
        # A cases:work token of another node is no token here.
        code, _ = refused(cluster, DE, method, request, bearer(token(cluster, NL)))
        assert code is grpc.StatusCode.UNAUTHENTICATED, method
    assert snapshot(cluster) == before
    admin = bearer(token(cluster, DE, Scope.ADMIN))
    code, _, answers = call(cluster, DE, "GetCase", cpb.GetCaseRequest(case_id=case_id), admin)
    assert code is grpc.StatusCode.OK
    assert answers[0].id == case_id


# -- WatchCases -----------------------------------------------------------------------------------


class Watch:
    """A WatchCases call read on a thread of its own: its messages, then how it ended."""

    def __init__(self, cluster: Cluster, member: str, after: str = "") -> None:
        self.channel = grpc.insecure_channel(cluster.address(member))
        self.call = cgrpc.CasesStub(self.channel).WatchCases(
            cpb.WatchCasesRequest(after_cursor=after),
            metadata=bearer(token(cluster, member)),
            timeout=60,
        )
        self.messages: queue.Queue[cpb.WatchCasesResponse] = queue.Queue()
        self.ended: grpc.StatusCode | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.put(message)
            self.ended = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.ended = cast(grpc.Call, error).code()

    def changes(self, n: int, timeout: float = 30) -> list[cpb.CaseChange]:
        """The next ``n`` changes (more if the last message carries more)."""
        out: list[cpb.CaseChange] = []
        while len(out) < n:
            out.extend(self.messages.get(timeout=timeout).changes)
        return out

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(10)
        self.channel.close()


def watching(cluster: Cluster, member: str) -> int:
    return cluster.node(member).admission.snapshot().get("cases-watch", 0)


def test_watch_cases_sends_what_exists_then_what_comes_and_stops_when_cancelled(
    cluster: Cluster,
) -> None:
    _report_id, case_id = reported(cluster)
    node = cluster.node(DE)
    existing = node.case_views.changes(0, 100_000)
    watch = Watch(cluster, DE)
    try:
        got = watch.changes(len(existing))
        assert [(int(c.cursor), c.event.id) for c in got] == [
            (t.cursor, t.event.id) for t in existing
        ]
        with client(cluster, DE) as de:
            de.assess(case_id, [], Assessment(Classification.BASELINE))
            de.act(case_id, [], Action(ActionKind.REPORTED_TO_LEA, partner="bka"))
        new = watch.changes(2)
        assert [c.event.case_id for c in new] == [case_id, case_id]
        assert [c.event.WhichOneof("body") for c in new] == ["assessment", "action"]
        assert [int(c.cursor) for c in got + new] == sorted({int(c.cursor) for c in got + new})
        assert watching(cluster, DE) == 1
    finally:
        watch.close()
    assert watch.ended is grpc.StatusCode.CANCELLED
    wait_until(lambda: watching(cluster, DE) == 0, 10, what="the watch's slot released")

    # Resuming from the last cursor sends only what came after it.
    resumed = Watch(cluster, DE, after=new[0].cursor)
    try:
        assert [c.event.id for c in resumed.changes(1)] == [new[1].event.id]
    finally:
        resumed.close()


def test_watch_cases_at_the_origin_sees_the_holders_steps(cluster: Cluster) -> None:
    report_id, case_id = reported(cluster)
    settle(cluster)
    watch = Watch(cluster, NL, after=last_cursor(cluster, NL))
    try:
        with client(cluster, DE) as de:
            de.assess(case_id, [], Assessment(Classification.BASELINE))
            de.act(case_id, [], Action(ActionKind.REMOVED))
        got = watch.changes(2)
    finally:
        watch.close()
    assert [(c.event.member, c.event.case_id) for c in got] == [(DE, case_id)] * 2
    assert [c.event.items[0].report_id for c in got] == [report_id] * 2


def test_watches_have_a_budget_of_their_own(cluster: Cluster) -> None:
    watches = [Watch(cluster, DE), Watch(cluster, DE)]  # watch_streams = 2 in this module
    try:
        wait_until(lambda: watching(cluster, DE) == 2, 10, what="two watches admitted")
        code, details = refused(cluster, DE, "WatchCases", cpb.WatchCasesRequest())
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith("overloaded: ")
        assert "cases-watch" in details
        # The other case work is not held up by the watches.
        code, _, _ = call(cluster, DE, "ListQueue", cpb.ListQueueRequest(queue=1))
        assert code is grpc.StatusCode.OK
    finally:
        for w in watches:
            w.close()
    wait_until(lambda: watching(cluster, DE) == 0, 10, what="both watches released")
    again = Watch(cluster, DE)
    try:
        wait_until(lambda: watching(cluster, DE) == 1, 10, what="a watch admitted again")
    finally:
        again.close()
    assert again.ended is grpc.StatusCode.CANCELLED  # by us: it was admitted


def test_watch_cases_sends_at_most_500_changes_per_message(cluster: Cluster) -> None:
    _report_id, case_id = reported(cluster)
    after = last_cursor(cluster, DE)
    work = cluster.node(DE).case_work
    # A national assessment may be overruled, again and again: 501 events, from a few threads
    # at once so the single writer commits them in groups.
    with futures.ThreadPoolExecutor(8) as pool:
        done = pool.map(
            lambda _: work.assess(case_id, [], Assessment(Classification.NATIONAL)), range(501)
        )
        assert len(list(done)) == 501
    watch = Watch(cluster, DE, after=after)
    try:
        first, second = watch.messages.get(timeout=30), watch.messages.get(timeout=30)
    finally:
        watch.close()
    assert (len(first.changes), len(second.changes)) == (500, 1)
    sequences = [c.event.sequence for c in [*first.changes, *second.changes]]
    assert sequences == list(range(1, 502))


# -- the bounds, on a servicer of their own ------------------------------------------------------


Serve = Callable[[float, threading.Event], cgrpc.CasesStub]


@pytest.fixture
def serve(cluster: Cluster) -> Iterator[Serve]:
    """de-eco's case work behind a Cases servicer of its own (no interceptors), on its own port,
    with the given watch bound and stop flag."""
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(max_watch_s: float, stopping: threading.Event) -> cgrpc.CasesStub:
        node = cluster.node(DE)
        servicer = CaseServicer(
            node.case_work,
            node.case_views,
            node.case_feed,
            stopping=stopping,
            max_watch_s=max_watch_s,
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        cgrpc.add_CasesServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channels.append(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return cgrpc.CasesStub(channels[-1])

    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(0)


def test_a_watch_ends_by_itself_after_its_maximum_duration(cluster: Cluster, serve: Serve) -> None:
    stub = serve(1.0, threading.Event())
    settle(cluster)
    existing = cluster.node(DE).case_views.changes(0, 100_000)
    # Without the bound this would run into the deadline (DEADLINE_EXCEEDED raises here).
    messages = list(stub.WatchCases(cpb.WatchCasesRequest(), timeout=30))
    assert [int(c.cursor) for m in messages for c in m.changes] == [t.cursor for t in existing]


def test_a_watch_ends_when_the_node_stops(cluster: Cluster, serve: Serve) -> None:
    stopping = threading.Event()
    stub = serve(600.0, stopping)
    _, case_id = reported(cluster)
    after = last_cursor(cluster, DE)
    cluster.node(DE).case_work.assess(case_id, [], Assessment(Classification.NATIONAL))
    call = stub.WatchCases(cpb.WatchCasesRequest(after_cursor=after), timeout=60)
    first = next(call)  # the watch runs: it sent the one change and waits for more
    assert [c.event.case_id for c in first.changes] == [case_id]
    rest: list[object] = []
    reader = threading.Thread(target=lambda: rest.append(list(call)), daemon=True)
    reader.start()
    stopping.set()
    cluster.node(DE).case_feed.notify()
    reader.join(20)
    assert rest == [[]]  # ended with OK and nothing more, long before its 600 s
    assert call.code() is grpc.StatusCode.OK


# -- pure parts -----------------------------------------------------------------------------------


def _event(i: int, items: int) -> TimedEvent:
    refs = tuple(
        ItemRef("r-" + HEX[i % 16] * 32, n, NL, Classification.BASELINE) for n in range(items)
    )
    event = CaseEvent(
        id="e-" + "0" * 32,
        case_id="c-" + "1" * 32,
        member=DE,
        sequence=i + 1,
        at=T0 + timedelta(seconds=i),
        items=refs,
        kind=EventKind.ASSESSMENT,
        body=Assessment(Classification.BASELINE),
    )
    return TimedEvent(i + 1, event)


def test_messages_stay_under_the_byte_bound_whatever_the_events() -> None:
    changes = [_event(i, 1000) for i in range(120)]  # ~50 KB each: about 6 MB in all
    messages = list(change_messages(changes))
    assert len(messages) > 1
    assert all(m.ByteSize() <= case_service.BYTES_PER_MESSAGE + 1024 for m in messages)
    assert [int(c.cursor) for m in messages for c in m.changes] == list(range(1, 121))
    assert list(change_messages([])) == []


@pytest.mark.parametrize(
    ("text", "cursor"), [("", 0), ("0", 0), ("42", 42), ("9" * 18, 10**18 - 1)]
)
def test_feed_cursors_parse(text: str, cursor: int) -> None:
    assert case_service.feed_cursor(text) == cursor
