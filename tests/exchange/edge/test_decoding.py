"""The decode guard on a real gRPC server: malformed request bytes answer INVALID_ARGUMENT.

The server on 127.0.0.1 runs ``DecodeGuard`` with the node's own servicers (de-eco's exchange
receiver and nl-eokm's intake over a real database), the stock health and reflection services,
and one client-streaming method of the test's own — so every handler shape is exercised: unary,
unary → stream, stream → unary, stream → stream, consumed on the handler's thread (reflection,
the test's method) or on a reader thread of the servicer (exchange and intake streams).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from sqlalchemy import Engine

from exchange.edge.decoding import DecodeGuard
from exchange.edge.exchange_service import ExchangeServicer
from exchange.edge.intake_service import IntakeServicer
from exchange.intake import Intake
from exchange.receiver import Receiver
from exchange.wire.codec import submission_to_proto
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from tests.exchange.factories import (
    make_report,
    make_submission,
    report_wire,
    seal_batch,
    table_counts,
    url_in,
)

STREAM = "/ihx.v1.Exchange/Stream"
DELIVER = "/ihx.v1.Exchange/Deliver"
SUBMIT_MANY = "/ihx.v1.Intake/SubmitReports"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
WATCH = "/grpc.health.v1.Health/Watch"
COUNT = "/ihx.test.Counter/Count"
GARBAGE = b"\xff\xff\xff\xff"
# A SubmitReportRequest whose notes (field 5) are the CESU-8 of U+D800: not UTF-8, so invalid.
LONE_SURROGATE = b"\x0a\x13https://example.nl/\x2a\x03\xed\xa0\x80"


def _count(requests: Iterator[xpb.NodeInfoRequest], context: grpc.ServicerContext) -> xpb.NodeInfo:
    """Stream → unary, reading on the handler's thread: how many requests came."""
    return xpb.NodeInfo(max_batch_reports=sum(1 for _ in requests))


@dataclass
class Served:
    channel: grpc.Channel
    engine: Engine

    def stream(self, method: str, messages: list[bytes]) -> tuple[list[bytes], grpc.RpcError]:
        """Raw messages on one stream: the answers that came back, then the error it ended with."""
        call = self.channel.stream_stream(
            method, request_serializer=None, response_deserializer=None
        )
        answers: list[bytes] = []
        try:
            for answer in call(iter(messages), timeout=10):
                answers.append(answer)
        except grpc.RpcError as error:
            return answers, error
        raise AssertionError(f"the stream ended well after {len(answers)} answers")

    def still_serves(self) -> None:
        info = xgrpc.ExchangeStub(self.channel).GetNodeInfo(xpb.NodeInfoRequest(), timeout=10)
        assert info.member == "de-eco"


@pytest.fixture
def served(receiver: Receiver, intake: Intake, engine: Engine) -> Iterator[Served]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[DecodeGuard()])
    info = xpb.NodeInfo(member="de-eco")
    xgrpc.add_ExchangeServicer_to_server(ExchangeServicer(receiver, "de-eco", lambda: info), server)
    igrpc.add_IntakeServicer_to_server(IntakeServicer(intake), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    reflection.enable_server_reflection(("ihx.v1.Exchange", reflection.SERVICE_NAME), server)
    counter = grpc.stream_unary_rpc_method_handler(
        _count,
        request_deserializer=xpb.NodeInfoRequest.FromString,
        response_serializer=xpb.NodeInfo.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("ihx.test.Counter", {"Count": counter}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(channel, engine)
    finally:
        channel.close()
        server.stop(0)


def envelope(seed: str, sequence: int) -> bytes:
    """One report from nl-eokm to de-eco, sealed, as bytes on the wire."""
    report = make_report(url=f"https://hosting-de.example/{seed}", hashes=[seed])
    return seal_batch([report_wire(report)], sequence=sequence).to_proto().SerializeToString()


def chunk(*seeds: str) -> bytes:
    """A SubmitReportsRequest: one NL report per seed."""
    reports = [make_submission(url_in("NL", f"/{s}.jpg"), hashes=[s]) for s in seeds]
    return ipb.SubmitReportsRequest(
        reports=[submission_to_proto(r) for r in reports]
    ).SerializeToString()


def assert_malformed(error: grpc.RpcError, method: str, detail: str) -> None:
    call: grpc.Call = error  # type: ignore[assignment]
    assert call.code() is grpc.StatusCode.INVALID_ARGUMENT, (call.code(), call.details())
    assert call.details() == f"request-malformed: {detail} for {method}"


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


# -- request streams consumed on a reader thread (the node's own servicers) ----------------------


def test_exchange_stream_refuses_a_malformed_first_message(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = table_counts(served.engine)
    answers, error = served.stream(STREAM, [GARBAGE, envelope("a", 1)])
    assert answers == []
    assert_malformed(error, STREAM, "message 1 of the stream is not a valid message")
    assert table_counts(served.engine) == before
    # One line in the node's log, no traceback: a client's mistake, not a server bug.
    (record,) = [r for r in caplog.records if r.name == "exchange.edge.decoding"]
    assert record.getMessage() == f"malformed message 1 in a stream to {STREAM} (4 bytes)"
    no_errors_logged(caplog)
    served.still_serves()


def test_exchange_stream_answers_the_envelopes_before_the_malformed_one(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    before = table_counts(served.engine)
    messages = [envelope("a", 1), envelope("b", 2), envelope("c", 3)[:-1], envelope("d", 4)]
    answers, error = served.stream(STREAM, messages)
    assert_malformed(error, STREAM, "message 3 of the stream is not a valid message")
    bodies = [xpb.ReceiptBody.FromString(xpb.SignedReceipt.FromString(a).body) for a in answers]
    assert [b.batch_sequence for b in bodies] == [1, 2]
    assert [o.outcome for b in bodies for o in b.outcomes] == [xpb.OUTCOME_NEW_CASE] * 2
    after = table_counts(served.engine)
    # The two envelopes before the bad message are stored; the bad one and the one after are not.
    assert (after["inbox"] - before["inbox"], after["reports"] - before["reports"]) == (2, 2)
    no_errors_logged(caplog)
    # The stream after it starts clean: the next sequence is taken.
    answers, error = served.stream(STREAM, [envelope("d", 4), GARBAGE])
    assert len(answers) == 1
    assert_malformed(error, STREAM, "message 2 of the stream is not a valid message")


def test_intake_stream_answers_the_chunks_before_the_malformed_one(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    before = table_counts(served.engine)
    bad = b"\x0a" + bytes([len(LONE_SURROGATE)]) + LONE_SURROGATE  # reports = [that request]
    messages = [chunk("a", "b"), bad, chunk("c")]
    answers, error = served.stream(SUBMIT_MANY, messages)
    assert_malformed(error, SUBMIT_MANY, "message 2 of the stream is not a valid message")
    (first,) = [ipb.SubmitReportsResponse.FromString(a) for a in answers]
    assert [(r.error_code, r.duplicate) for r in first.results] == [("", False)] * 2
    assert table_counts(served.engine)["reports"] - before["reports"] == 2
    no_errors_logged(caplog)
    served.still_serves()


def test_a_cancelled_stream_just_ends(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    release = threading.Event()

    def one_then_wait() -> Iterator[bytes]:
        yield envelope("a", 1)
        release.wait(10)

    call = served.channel.stream_stream(STREAM, request_serializer=None, response_deserializer=None)
    answers: Any = call(one_then_wait(), timeout=10)  # the stubs know no __next__ or cancel
    first = next(answers)
    assert xpb.ReceiptBody.FromString(xpb.SignedReceipt.FromString(first).body).batch_sequence == 1
    answers.cancel()
    release.set()
    with pytest.raises(grpc.RpcError) as raised:
        next(answers)
    assert raised.value.code() is grpc.StatusCode.CANCELLED
    served.still_serves()
    assert not [r for r in caplog.records if r.name == "exchange.edge.decoding"]
    no_errors_logged(caplog)


# -- request streams consumed on the handler's thread --------------------------------------------


def test_a_stream_read_on_the_handler_thread_is_refused_by_the_guard(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    ask = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    answers, error = served.stream(REFLECTION, [ask, GARBAGE, ask])
    assert len(answers) == 1
    services = reflection_pb2.ServerReflectionResponse.FromString(answers[0]).list_services_response
    assert "ihx.v1.Exchange" in [s.name for s in services.service]
    assert_malformed(error, REFLECTION, "message 2 of the stream is not a valid message")
    no_errors_logged(caplog)


def test_a_client_stream_with_a_unary_answer(served: Served) -> None:
    count = served.channel.stream_unary(COUNT, request_serializer=None, response_deserializer=None)
    ok = xpb.NodeInfo.FromString(count(iter([b"", b""]), timeout=10))
    assert ok.max_batch_reports == 2
    with pytest.raises(grpc.RpcError) as raised:
        count(iter([b"", b"", GARBAGE]), timeout=10)
    assert_malformed(raised.value, COUNT, "message 3 of the stream is not a valid message")


# -- unary requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "stream_answer"), [(DELIVER, False), (WATCH, True)], ids=["unary", "unary-stream"]
)
def test_a_malformed_unary_request(served: Served, method: str, stream_answer: bool) -> None:
    before = table_counts(served.engine)
    if stream_answer:
        call = served.channel.unary_stream(
            method, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as raised:
            list(call(GARBAGE, timeout=10))
    else:
        unary = served.channel.unary_unary(
            method, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as raised:
            unary(GARBAGE, timeout=10)
    assert_malformed(raised.value, method, "the request is not a valid message")
    assert table_counts(served.engine) == before
    served.still_serves()
