"""``IntakeServicer`` (edge/intake_service.py) on a real gRPC server on 127.0.0.1.

The server runs the node's own interceptors in the node's order (admission, access with a real
token verifier, decode guard) in front of nl-eokm's real intake over a real database. Checked
here: one report answered with its decision and trace, a caller without a token refused before
the servicer runs, a bulk stream answered chunk by chunk in request order with refused reports
answered in their slot, an oversized chunk refused as a whole, and known content named with the
classification it was first seen with.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine, select

from auth.tokens import Scope
from exchange.edge.access import AccessInterceptor
from exchange.edge.admission import Admission, AdmissionInterceptor, Budgets
from exchange.edge.decoding import DecodeGuard
from exchange.edge.intake_service import MAX_CHUNK, IntakeServicer
from exchange.intake import Intake
from exchange.ops.metrics import Metrics
from exchange.store import retention, schema
from exchange.wire.codec import anonymised_report, submission_to_proto
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import report_pb2 as pb
from tests.auth.token_factories import make_token_world
from tests.exchange.factories import make_submission, table_counts, url_in


@dataclass
class Served:
    stub: igrpc.IntakeStub
    engine: Engine
    auth: tuple[tuple[str, str], ...]


@pytest.fixture
def served(intake: Intake, engine: Engine, tmp_path: Path) -> Iterator[Served]:
    world = make_token_world(tmp_path)
    token = world.issuer.issue("analyst-1", [Scope.REPORTS_SUBMIT], ttl=timedelta(minutes=10))
    metrics = Metrics()
    admission = Admission(Budgets(), metrics=metrics)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[
            AdmissionInterceptor(admission),
            AccessInterceptor(world.verifier, metrics, admission),
            DecodeGuard(),
        ],
    )
    igrpc.add_IntakeServicer_to_server(IntakeServicer(intake), server)
    port = server.add_insecure_port("127.0.0.1:0")
    admission.start()
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(igrpc.IntakeStub(channel), engine, (("authorization", f"Bearer {token}"),))
    finally:
        channel.close()
        server.stop(0)
        admission.stop()


def request(country: str, seed: str, client_ref: str = "") -> ipb.SubmitReportRequest:
    submission = make_submission(url_in(country, f"/{seed}.jpg"), hashes=[seed])
    msg = submission_to_proto(submission)
    msg.client_ref = client_ref
    return msg


def test_one_report_is_answered_with_its_decision_and_trace(served: Served) -> None:
    answer = served.stub.SubmitReport(request("DE", "one"), metadata=served.auth, timeout=10)
    assert answer.decision.member == "de-eco"
    assert answer.canonical_url == url_in("DE", "/one.jpg")
    assert not answer.duplicate
    assert answer.HasField("trace")
    assert answer.trace.country == "DE"
    assert table_counts(served.engine)["reports"] == 1


def test_a_caller_without_a_token_is_refused_before_intake(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        served.stub.SubmitReport(request("DE", "anon"), timeout=10)
    call: grpc.Call = raised.value  # type: ignore[assignment]
    assert call.code() is grpc.StatusCode.UNAUTHENTICATED
    assert table_counts(served.engine)["reports"] == 0


def test_a_bulk_stream_answers_in_request_order(served: Served) -> None:
    bad = request("DE", "bad", client_ref="r2")
    bad.url = "not a url"
    chunks = [
        ipb.SubmitReportsRequest(reports=[request("DE", "a", "r1"), bad]),
        ipb.SubmitReportsRequest(reports=[request("NL", "b", "r3")]),
    ]
    answers = list(served.stub.SubmitReports(iter(chunks), metadata=served.auth, timeout=10))
    results = [r for answer in answers for r in answer.results]
    assert [len(a.results) for a in answers] == [2, 1]
    assert [r.client_ref for r in results] == ["r1", "r2", "r3"]
    assert [bool(r.error_code) for r in results] == [False, True, False]
    assert [r.decision.member for r in results] == ["de-eco", "", "nl-eokm"]
    assert not any(r.HasField("trace") for r in results)  # only the single call carries it
    assert table_counts(served.engine)["reports"] == 2


def test_an_oversized_chunk_is_refused_in_its_slot(served: Served) -> None:
    too_many = ipb.SubmitReportsRequest(
        reports=[request("DE", f"n{i}") for i in range(MAX_CHUNK + 1)]
    )
    (answer,) = served.stub.SubmitReports(iter([too_many]), metadata=served.auth, timeout=30)
    (result,) = answer.results
    assert result.error_code == "chunk-too-large"
    assert result.error == f"a SubmitReports message carries {MAX_CHUNK + 1} reports; " + (
        f"the limit is {MAX_CHUNK}"
    )
    assert table_counts(served.engine)["reports"] == 0


def test_known_content_names_where_and_how_it_was_first_seen(served: Served) -> None:
    first = served.stub.SubmitReport(request("NL", "seen"), metadata=served.auth, timeout=10)
    again = request("NL", "seen")
    again.url = url_in("NL", "/elsewhere.jpg")
    answer = served.stub.SubmitReport(again, metadata=served.auth, timeout=10)
    (item,) = answer.items
    assert item.known_content
    assert item.first_seen_member == "nl-eokm"
    assert item.first_seen_case
    assert item.first_classification == pb.CLASSIFICATION_BASELINE
    assert first.items[0].known_content is False


# -- the reporter's region: only with consent -------------------------------------------------


def refused(served: Served, msg: ipb.SubmitReportRequest) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as raised:
        served.stub.SubmitReport(msg, metadata=served.auth, timeout=10)
    call: grpc.Call = raised.value  # type: ignore[assignment]
    return call


@pytest.mark.parametrize(
    ("region", "consent", "details"),
    [
        (
            "NL-NH",
            False,
            "region-without-consent: reporter_region: recorded only with the reporter's consent "
            "(set region_consent)",
        ),
        ("nl-nh", True, "region-invalid: reporter_region: 'nl-nh' is not an ISO 3166-2"),
        ("NL", True, "region-invalid: reporter_region: 'NL' is not an ISO 3166-2"),
        ("NL-NHXX", True, "region-invalid"),
        ("NLD-NH", True, "region-invalid"),
        ("NL_NH", True, "region-invalid"),
        ("NL-N H", True, "region-invalid"),
        ("NL-NＨ", True, "region-invalid"),  # a full-width letter
    ],
)
def test_a_region_without_consent_or_out_of_form_is_refused_storing_nothing(
    served: Served, region: str, consent: bool, details: str
) -> None:
    before = table_counts(served.engine)
    msg = request("NL", "region")
    msg.reporter_region, msg.region_consent = region, consent
    call = refused(served, msg)
    assert call.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (call.details() or "").startswith(details)
    assert table_counts(served.engine) == before


def test_a_region_with_consent_is_recorded_and_consent_alone_is_fine(served: Served) -> None:
    with_region = request("NL", "with")
    with_region.reporter_region, with_region.region_consent = "NL-NH", True
    only_consent = request("NL", "consent")
    only_consent.region_consent = True
    for msg in (with_region, only_consent):
        served.stub.SubmitReport(msg, metadata=served.auth, timeout=10)
    with served.engine.connect() as conn:
        rows = conn.execute(select(schema.reports.c.url, schema.reports.c.reporter_region))
        regions = {r.url.rsplit("/", 1)[1]: r.reporter_region for r in rows}
    assert regions == {"with.jpg": "NL-NH", "consent.jpg": None}


def test_a_region_without_consent_is_refused_in_its_slot_of_a_stream(served: Served) -> None:
    bad = request("NL", "stream-bad", client_ref="r1")
    bad.reporter_region = "NL-NH"
    good = request("NL", "stream-good", client_ref="r2")
    (answer,) = served.stub.SubmitReports(
        iter([ipb.SubmitReportsRequest(reports=[bad, good])]), metadata=served.auth, timeout=10
    )
    assert [r.error_code for r in answer.results] == ["region-without-consent", ""]
    assert table_counts(served.engine)["reports"] == 1


def test_a_report_anonymised_under_retention_is_refused_in_its_slot(served: Served) -> None:
    old = request("NL", "retained", client_ref="r1")
    first = served.stub.SubmitReport(old, metadata=served.auth, timeout=10)
    with served.engine.begin() as conn:
        (wire,) = conn.execute(
            select(schema.reports.c.wire).where(schema.reports.c.id == first.report_id)
        ).scalars()
        retention.anonymise_reports(
            conn, {first.report_id: anonymised_report(wire)}, datetime.now(UTC)
        )
    fresh = request("NL", "fresh", client_ref="r2")
    (answer,) = served.stub.SubmitReports(
        iter([ipb.SubmitReportsRequest(reports=[old, fresh])]), metadata=served.auth, timeout=10
    )
    assert [r.error_code for r in answer.results] == ["report-anonymised", ""]
    assert [r.client_ref for r in answer.results] == ["r1", "r2"]
    # the single call: INVALID_ARGUMENT, naming why
    call = refused(served, old)
    assert call.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (call.details() or "").startswith("report-anonymised: this node held the same report")
    assert table_counts(served.engine)["reports"] == 2
