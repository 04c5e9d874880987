"""``gather`` against real gRPC servers on loopback, one per member of a test manifest.

nl-eokm serves its real signed snapshot (the node's servicer over hand-built figures); de-eco
serves the same servicer but signs with the wrong key; ro-safernet aborts with a long reason
full of control characters; us-ncmec listens but never answers within the call's deadline;
the coordinator is asked without a token. The merge is nl-eokm's snapshot exactly, and every
other member is named with why.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

from auth.manifest import Manifest
from exchange.client.statistics import Gathering, gather
from exchange.edge.stats_service import StatisticsServicer
from ihx.v1 import statistics_pb2_grpc as sgrpc
from tests.auth.factories import COORDINATOR, make_member, member_key
from tests.exchange.factories import T0, FakeClock, make_network, signing_key
from tests.exchange.stats.hand_snapshots import PERIOD, hand_snapshot

NL, DE, US, RO = "nl-eokm", "de-eco", "us-ncmec", "ro-safernet"


class _Refusing(sgrpc.StatisticsServicer):
    def GetStatistics(self, request: object, context: grpc.ServicerContext) -> object:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no\x1b[31m\nway " + "x" * 500)


class _Silent(sgrpc.StatisticsServicer):
    def __init__(self, release: threading.Event) -> None:
        self._release = release

    def GetStatistics(self, request: object, context: grpc.ServicerContext) -> object:
        self._release.wait(30)  # until the test is over: the caller's deadline passes first
        context.abort(grpc.StatusCode.UNAVAILABLE, "late")


def _serve(servicer: sgrpc.StatisticsServicer) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    sgrpc.add_StatisticsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def network() -> Iterator[Manifest]:
    release = threading.Event()
    figures: Callable[..., object] = lambda p: hand_snapshot(NL, p, generated_at=T0)  # noqa: E731
    wrong_key: Callable[..., object] = lambda p: hand_snapshot(DE, p, generated_at=T0)  # noqa: E731
    servers = {
        NL: _serve(StatisticsServicer(figures, signing_key(NL), NL)),  # type: ignore[arg-type]
        DE: _serve(StatisticsServicer(wrong_key, signing_key(US), DE)),  # type: ignore[arg-type]
        RO: _serve(_Refusing()),
        US: _serve(_Silent(release)),
    }
    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    base = make_network().manifest
    members = tuple(
        make_member(
            m.id,
            m.countries,
            keys=(member_key(signing_key(m.id)),),
            endpoint=servers[m.id][1] if m.id in servers else f"127.0.0.1:{free_port}",
        )
        for m in base.members
    )
    try:
        yield replace(base, members=members)
    finally:
        release.set()
        for server, _ in servers.values():
            server.stop(0)


def test_the_merge_is_the_verified_answer_and_every_other_member_is_named(
    network: Manifest,
) -> None:
    how = Gathering(
        tokens={NL: "t", DE: "t", RO: "t", US: "t"},
        clock=FakeClock(T0),
        max_skew=timedelta(minutes=15),
        timeout=1.0,
        workers=2,
    )
    merged = gather(network, PERIOD, how)
    assert merged.answered == (NL,)
    mine = hand_snapshot(NL, PERIOD, generated_at=T0)
    assert (merged.snapshot.counts, merged.snapshot.histograms, merged.snapshot.gauges) == (
        mine.counts,
        mine.histograms,
        mine.gauges,
    )
    assert set(merged.missing) == {DE, RO, US, COORDINATOR}
    assert merged.missing[COORDINATOR] == (
        "not asked: no stats:read token for it (--token MEMBER=TOKEN or a network token)"
    )
    assert merged.missing[DE].startswith("answer refused (stats-signature): signature of de-eco")
    us = network.member(US).endpoint
    assert merged.missing[US] == f"no answer within 1 s ({us}: DEADLINE_EXCEEDED)"
    ro = merged.missing[RO]
    assert ro.startswith("answered FAILED_PRECONDITION: no [31m way xxx")
    assert ro.isprintable()
    assert ro.endswith(f" ({network.member(RO).endpoint})")
    assert (
        len(ro)
        <= len("answered FAILED_PRECONDITION: ") + 200 + len(network.member(RO).endpoint) + 3
    )


def test_only_members_given_a_token_are_asked(network: Manifest) -> None:
    how = Gathering(
        tokens={NL: "t"},
        clock=FakeClock(T0),
        max_skew=timedelta(minutes=15),
        timeout=1.0,
    )
    merged = gather(network, PERIOD, how)
    assert merged.answered == (NL,)
    no_token = "not asked: no stats:read token for it (--token MEMBER=TOKEN or a network token)"
    assert merged.missing == {m: no_token for m in (COORDINATOR, DE, RO, US)}
