"""``StatisticsServicer`` (edge/stats_service.py) on a real gRPC server on 127.0.0.1.

The server runs the node's interceptors in the node's order (admission, access with a real
token verifier, decode guard) in front of the servicer, whose figures are a hand-built snapshot
(the engine's own figures are tested with it; the node's wiring in tests/integration). Checked
here: a ``stats:read`` (or ``admin``) token gets a snapshot signed by the node key that opens
to exactly the figures; a missing token or a token without the scope is refused before anything
is counted; every bad request is INVALID_ARGUMENT naming the field, and the node keeps serving.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from auth.tokens import Scope
from exchange.edge.access import AccessInterceptor
from exchange.edge.admission import Admission, AdmissionInterceptor, Budgets
from exchange.edge.decoding import DecodeGuard
from exchange.edge.stats_service import StatisticsServicer
from exchange.ops.metrics import Metrics
from exchange.stats.model import Figure, Granularity, Period, SeriesKey, Snapshot
from exchange.wire.stats_codec import request_from_period
from exchange.wire.stats_signed import open_statistics
from ihx.v1 import statistics_pb2 as spb
from ihx.v1 import statistics_pb2_grpc as sgrpc
from tests.auth.token_factories import NOW, TokenWorld, make_token_world
from tests.exchange.factories import FakeClock, length_delimited, make_network, signing_key
from tests.exchange.stats.hand_snapshots import PERIOD, hand_snapshot

NL = "nl-eokm"
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Served:
    channel: grpc.Channel
    world: TokenWorld
    asked: list[Period]

    @property
    def stub(self) -> sgrpc.StatisticsStub:
        return sgrpc.StatisticsStub(self.channel)

    def auth(self, *scopes: Scope) -> Metadata:
        token = self.world.issuer.issue("coordinator", list(scopes), ttl=timedelta(minutes=5))
        return (("authorization", f"Bearer {token}"),)


def serve(
    tmp_path: Path,
    extra: Mapping[SeriesKey, tuple[int, ...]] | None = None,
    *,
    gate: threading.Event | None = None,
    **options: Any,
) -> Iterator[Served]:
    """The servicer behind the node's interceptors; its figures (with ``extra`` count series)
    record every period asked."""
    world = make_token_world(tmp_path)
    asked: list[Period] = []

    def figures(period: Period) -> Snapshot:
        asked.append(period)
        if gate is not None:
            assert gate.wait(30)
        own = hand_snapshot(NL, period, generated_at=NOW)
        counts = {**own.counts, **(extra or {})}
        return Snapshot(own.members, period, NOW, counts, own.histograms, own.gauges)

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
    servicer = StatisticsServicer(figures, signing_key(NL), NL, **options)
    sgrpc.add_StatisticsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    admission.start()
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(channel, world, asked)
    finally:
        channel.close()
        server.stop(0)
        admission.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)


def get(served: Served, request: spb.StatisticsRequest, metadata: Metadata) -> bytes:
    call = served.channel.unary_unary(
        "/ihx.v1.Statistics/GetStatistics",
        request_serializer=spb.StatisticsRequest.SerializeToString,
        response_deserializer=None,
    )
    answer: bytes = call(request, metadata=metadata, timeout=10)
    return answer


def failure(served: Served, request: spb.StatisticsRequest, metadata: Metadata) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as raised:
        served.stub.GetStatistics(request, metadata=metadata, timeout=10)
    call: grpc.Call = raised.value  # type: ignore[assignment]
    return call


def still_serves(served: Served) -> None:
    data = get(served, request_from_period(PERIOD), served.auth(Scope.STATS_READ))
    assert len(data) > 100


@pytest.mark.parametrize("scope", [Scope.STATS_READ, Scope.ADMIN])
def test_a_stats_token_gets_the_figures_signed_by_the_node(served: Served, scope: Scope) -> None:
    data = get(served, request_from_period(PERIOD), served.auth(scope))
    snapshot = open_statistics(
        data,
        member=NL,
        period=PERIOD,
        manifest=make_network().manifest,
        now=NOW,
        max_skew=timedelta(minutes=15),
    )
    assert snapshot == hand_snapshot(NL, PERIOD, generated_at=NOW)
    assert served.asked == [PERIOD]


def test_no_token_is_unauthenticated_and_nothing_is_counted(served: Served) -> None:
    call = failure(served, request_from_period(PERIOD), ())
    assert call.code() is grpc.StatusCode.UNAUTHENTICATED
    assert served.asked == []


@pytest.mark.parametrize("scope", [Scope.LOG_READ, Scope.CASES_PULL, Scope.CASES_WORK])
def test_a_token_without_stats_read_is_denied(served: Served, scope: Scope) -> None:
    call = failure(served, request_from_period(PERIOD), served.auth(scope))
    assert call.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "does not grant scope stats:read" in (call.details() or "")
    assert served.asked == []


@pytest.mark.parametrize(
    ("first", "last", "by", "details"),
    [
        ("2026-01-01", "2026-13-01", "month", "last_day: '2026-13-01' is not a day"),
        ("01/01/2026", "2026-03-31", "month", "first_day: '01/01/2026' is not a day"),
        ("", "", "", "first_day: '' is not a day"),
        ("2026-01-01", "2026-03-31", "fortnight", "granularity: 'fortnight' is not a gran"),
        ("2026-03-31", "2026-01-01", "day", "last_day: 2026-01-01 is before first_day"),
        ("1900-01-01", "2026-01-01", "day", "buckets, at most 3700"),
        ("2026-01-01", "2026-03-31", "", "granularity: '' is not a granularity"),
    ],
)
def test_a_bad_request_is_invalid_argument_and_the_node_keeps_serving(
    served: Served, first: str, last: str, by: str, details: str
) -> None:
    request = spb.StatisticsRequest(first_day=first, last_day=last, granularity=by)
    call = failure(served, request, served.auth(Scope.STATS_READ))
    assert call.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert details in (call.details() or ""), call.details()
    assert (call.details() or "").startswith("stats-")
    assert served.asked == []
    still_serves(served)


def test_a_request_with_an_unknown_field_is_refused(served: Served) -> None:
    raw = request_from_period(PERIOD).SerializeToString() + length_delimited(9, b"extra")
    call = served.channel.unary_unary(
        "/ihx.v1.Statistics/GetStatistics", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(raw, metadata=served.auth(Scope.STATS_READ), timeout=10)
    error: grpc.Call = raised.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "#9" in (error.details() or "")
    assert served.asked == []
    still_serves(served)


def test_an_answer_over_the_size_limit_is_refused_with_advice(tmp_path: Path) -> None:
    for served in serve(tmp_path, max_body_bytes=200):
        call = failure(served, request_from_period(PERIOD), served.auth(Scope.STATS_READ))
        assert call.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (call.details() or "").startswith("stats-too-large: the answer would be")
        assert "choose a coarser granularity" in (call.details() or "")


def test_figures_the_protocol_would_refuse_are_never_signed(tmp_path: Path) -> None:
    """A key no gatherer accepts is the figures' bug: INTERNAL here, not a silent gap later."""
    for served in serve(tmp_path, extra={(Figure.HOSTER_ITEMS, "AS1 Bad\nName"): (9, 9, 9)}):
        call = failure(served, request_from_period(PERIOD), served.auth(Scope.STATS_READ))
        assert call.code() is grpc.StatusCode.INTERNAL
        assert served.asked == [PERIOD]


def test_an_answer_is_kept_briefly_per_period(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    for served in serve(tmp_path, clock=clock, keep=timedelta(seconds=30)):
        auth = served.auth(Scope.STATS_READ)
        first = get(served, request_from_period(PERIOD), auth)
        clock.advance(29)
        assert get(served, request_from_period(PERIOD), auth) == first
        assert served.asked == [PERIOD]  # the second answer was the kept one
        clock.advance(2)
        get(served, request_from_period(PERIOD), auth)
        assert served.asked == [PERIOD, PERIOD]


def test_computations_over_the_bound_are_refused_not_queued(tmp_path: Path) -> None:
    gate = threading.Event()
    for served in serve(tmp_path, gate=gate, at_once=1):
        auth = served.auth(Scope.STATS_READ)
        slow = futures.ThreadPoolExecutor(1).submit(get, served, request_from_period(PERIOD), auth)
        for _ in range(3000):  # until the first computation holds the only slot
            if served.asked:
                break
            threading.Event().wait(0.01)
        other = Period(PERIOD.first, PERIOD.last, Granularity.DAY)
        call = failure(served, request_from_period(other), auth)
        assert call.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "busy computing statistics" in (call.details() or "")
        gate.set()
        assert len(slow.result(30)) > 100
        assert len(get(served, request_from_period(other), auth)) > 100  # the slot is free
