"""Back at once after maintenance: a restarted node's hello makes its peers deliver now.

de-eco is stopped while nl-eokm has reports for it. nl-eokm runs the production backoff
(``ExchangeTuning`` defaults: 1 s growing to 5 minutes); its failed attempts are real
(connection refused on loopback) and only the waits between them are fast-forwarded by the
injected ``wait`` — until the backoff has been at its maximum twice, so the outage is longer
than the maximum backoff. From then on the waits are real: the sender sleeps at least 150 s
(equal jitter at 300 s). de-eco then restarts (same database, same port) with nothing to send
nl-eokm; only its hello can end that sleep, and the reports are receipted at de-eco within
seconds. The hostile test sends nl-eokm hellos that must be refused — each with its status —
while the sender sleeps, and checks that none of them woke it.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth.keys import SigningKey
from auth.manifest import Manifest
from common.clock import system_clock
from exchange.delivery.greeter import Greeter
from exchange.ops.metrics import Metrics
from exchange.settings import ExchangeTuning
from exchange.wire.hello import sign_hello
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.auth.factories import make_member, make_network
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.ops import channel, stop_quickly
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    Cluster,
    provision,
    tuning,
    wait_until,
)

PRODUCTION = ExchangeTuning()
# Waits fast-forwarded: ceilings 1, 2, 4 … 256 s, then two at the 300 s maximum.
FAST_FORWARDED = 11


class FastForward:
    """The senders' backoff wait: the first ``FAST_FORWARDED`` waits of the sender to de-eco
    return at once (as if their time had passed), later ones wait for real."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.sleeping = threading.Event()  # the sender to de-eco is in a real wait

    def __call__(self, event: threading.Event, seconds: float) -> bool:
        if threading.current_thread().name != f"ihx-send-{DE}":
            return event.wait(seconds)
        self.delays.append(seconds)
        if len(self.delays) <= FAST_FORWARDED:
            return False
        self.sleeping.set()
        try:
            return event.wait(seconds)
        finally:
            self.sleeping.clear()

    @property
    def outage(self) -> float:
        """The outage's length as the sender saw it: the waits fast-forwarded."""
        return sum(self.delays[:FAST_FORWARDED])


@pytest.fixture
def outage(make_cluster: MakeCluster) -> tuple[Cluster, FastForward]:
    """nl-eokm (production backoff) with reports for de-eco, which is down and has been for
    longer than the maximum backoff; nl-eokm's sender to it is in a real wait of ≥ 150 s."""
    cluster = make_cluster(
        extra_settings=tuning(
            backoff_initial_s=PRODUCTION.backoff_initial_s,
            backoff_max_s=PRODUCTION.backoff_max_s,
        ),
        start=(DE, COORDINATOR),
    )
    waits = FastForward()
    cluster.start(NL, wait=waits)
    cluster.stop(DE)
    queued = [make_submission(url_in("DE", f"/maint/{i}.jpg"), hashes=[f"m-{i}"]) for i in range(5)]
    cluster.submit(NL, queued)
    sender = cluster.node(NL).senders[DE]
    wait_until(
        waits.sleeping.is_set,
        60,
        what="nl-eokm's sender to de-eco failing into a real wait at the maximum backoff",
        show=lambda: (waits.delays, sender.attempts, sender.last_error),
    )
    assert sender.backoff.failures > FAST_FORWARDED
    assert waits.outage > PRODUCTION.backoff_max_s, waits.delays
    assert waits.delays[-1] >= PRODUCTION.backoff_max_s / 2, waits.delays
    return cluster, waits


@pytest.mark.timeout(120)
def test_delivery_resumes_at_once_after_an_outage_longer_than_the_maximum_backoff(
    outage: tuple[Cluster, FastForward],
) -> None:
    cluster, waits = outage
    nl = cluster.node(NL)
    sender = nl.senders[DE]
    attempts = sender.attempts
    remaining = waits.delays[-1]

    cluster.start(DE)  # same database, same port; it has nothing to send nl-eokm
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports", "origin_member = :m", m=NL),
        10,  # the sender itself would sleep ``remaining`` (≥ 150 s) more
        what=f"de-eco's hello making nl-eokm deliver now, not in {remaining:.0f} s",
        show=lambda: (cluster.delivery_state(NL), sender.attempts, waits.delays[-3:]),
    )
    assert cluster.count(DE, "reports", "origin_member = :m", m=NL) == 5
    assert sender.attempts == attempts + 1, "one attempt: the one the hello asked for"
    de = cluster.node(DE)
    wait_until(de.greeter.done.is_set, 10, what="de-eco's hellos all answered or given up")
    assert de.metrics.hellos_sent.labels(NL, "ok")._value.get() == 1
    # One hello; on a loaded machine de-eco's first may pass its short deadline after nl-eokm
    # took it, and is tried again (greeter.py): nl-eokm counts each it took, never more than
    # were sent, and its sender tried once all the same (above).
    tried = sum(
        de.metrics.hellos_sent.labels(NL, result)._value.get()
        for result in ("ok", "DEADLINE_EXCEEDED", "UNAVAILABLE", "RESOURCE_EXHAUSTED")
    )
    assert 1 <= nl.metrics.hellos_received.labels(DE)._value.get() <= tried
    # us-ncmec never ran: its hello was tried a few times, not answered, and that failed nothing.
    assert de.metrics.hellos_sent.labels("us-ncmec", "ok")._value.get() == 0
    assert de.metrics.hellos_sent.labels("us-ncmec", "UNAVAILABLE")._value.get() == 1


def _key(cluster: Cluster, member: str) -> SigningKey:
    return SigningKey.load(cluster.fed.settings[member].signing_key)


def _hello(
    key: SigningKey,
    *,
    sender: str = DE,
    recipient: str = NL,
    at: datetime | None = None,
) -> xpb.SignedHello:
    return sign_hello(
        key,
        sender=sender,
        recipient=recipient,
        signed_at=at or datetime.now(UTC),
        manifest_epoch=1,
    )


def _refusal(stub: xgrpc.ExchangeStub, hello: xpb.SignedHello) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Hello(hello, timeout=10)
    error = caught.value
    return error.code(), error.details()  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
def test_hostile_hellos_are_refused_and_wake_nobody(outage: tuple[Cluster, FastForward]) -> None:
    cluster, waits = outage
    nl = cluster.node(NL)
    sender = nl.senders[DE]
    attempts, failures = sender.attempts, sender.backoff.failures
    de_key = _key(cluster, DE)
    forger = SigningKey.generate()
    forged = _hello(de_key)
    forged = xpb.SignedHello(
        body=forged.body, signature=forger.sign(b"ihx-hello-v1\0" + forged.body)
    )
    body = xpb.HelloBody.FromString(_hello(de_key).body)
    padded = body.SerializeToString(deterministic=True) + b"\xf8\x06\x01"  # field 111 = 1
    cases = {
        "forged signature": (forged, grpc.StatusCode.UNAUTHENTICATED, "signature-invalid"),
        "wrong recipient": (
            _hello(de_key, recipient="us-ncmec"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "wrong-recipient",
        ),
        "stale time": (
            _hello(de_key, at=datetime.now(UTC) - timedelta(hours=1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "hello-time",
        ),
        "unknown member": (
            _hello(forger, sender="xx-nobody"),
            grpc.StatusCode.PERMISSION_DENIED,
            "unknown-member",
        ),
        "unknown field": (
            xpb.SignedHello(body=padded, signature=de_key.sign(b"ihx-hello-v1\0" + padded)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown-field",
        ),
    }
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        stub = xgrpc.ExchangeStub(channel)
        for name, (hello, status, code) in cases.items():
            got, details = _refusal(stub, hello)
            assert (got, details.split(":")[0]) == (status, code), (name, details)

        # A replay flood: a hello nl-eokm took (from inhope, whose sender is not failing: it
        # wakes nothing), sent again and again, is refused as a replay every time (before its
        # signature is looked at) and spends none of inhope's allowance.
        taken = _hello(_key(cluster, COORDINATOR), sender=COORDINATOR)
        assert stub.Hello(taken, timeout=10).member == NL
        flood = [_refusal(stub, taken)[0] for _ in range(20)]
        assert flood == [grpc.StatusCode.ALREADY_EXISTS] * 20
        assert stub.Hello(_hello(_key(cluster, COORDINATOR), sender=COORDINATOR), timeout=10)
    refused = nl.metrics.hellos_refused
    assert refused.labels("hello-replayed")._value.get() == 20

    # None of them woke the sender: no attempt, the backoff as it was, still in its real wait.
    assert waits.sleeping.is_set()
    assert (sender.attempts, sender.backoff.failures) == (attempts, failures)


@pytest.mark.timeout(120)
def test_over_mtls_hellos_go_through_and_bind_to_the_members_certificate(tmp_path: Path) -> None:
    cluster = Cluster(provision(tmp_path / "tls", tls=True))
    try:
        cluster.start(NL, DE)
        cluster.stop(DE)
        cluster.start(DE)  # back: its hello reaches nl-eokm over mutual TLS
        de = cluster.node(DE)
        wait_until(de.greeter.done.is_set, 30, what="de-eco's hellos answered or given up")
        assert de.metrics.hellos_sent.labels(NL, "ok")._value.get() == 1
        assert cluster.node(NL).metrics.hellos_received.labels(DE)._value.get() >= 1

        # nl-eokm's own valid hello, carried over de-eco's valid certificate: refused.
        hello = _hello(_key(cluster, NL), sender=NL, recipient=DE)
        with channel(cluster.address(DE), cluster.fed.client_tls(DE)) as as_de:
            got, details = _refusal(xgrpc.ExchangeStub(as_de), hello)
        assert got is grpc.StatusCode.PERMISSION_DENIED
        assert f"not member {NL}" in details
        with channel(cluster.address(DE), cluster.fed.client_tls(NL)) as as_nl:
            assert xgrpc.ExchangeStub(as_nl).Hello(hello, timeout=10).member == DE
    finally:
        stop_quickly(cluster)


def _failures(cluster: Cluster, member: str, peer: str) -> float:
    samples = cluster.node(member).metrics.delivery_failures.collect()[0].samples
    return sum(
        s.value for s in samples if s.name.endswith("_total") and s.labels["destination"] == peer
    )


@pytest.mark.timeout(120)
def test_after_a_quick_restart_the_stream_from_before_is_not_used(
    make_cluster: MakeCluster,
) -> None:
    """de-eco restarts while nl-eokm holds an idle stream to it (ended by de-eco's stop):
    its hello makes nl-eokm close that stream, so the next reports go on a new one — no
    failure, no backoff — instead of failing on the dead one first."""
    cluster = make_cluster(
        extra_settings=tuning(
            backoff_initial_s=PRODUCTION.backoff_initial_s,
            backoff_max_s=PRODUCTION.backoff_max_s,
        ),
        start=(NL, DE, COORDINATOR),
    )
    nl = cluster.node(NL)
    sender = nl.senders[DE]

    def delivered(n: int) -> bool:
        return cluster.drained(NL) and cluster.count(DE, "reports", "origin_member = :m", m=NL) == n

    batch = [make_submission(url_in("DE", f"/quick/{i}.jpg"), hashes=[f"q-{i}"]) for i in range(4)]
    cluster.submit(NL, batch[:2])
    wait_until(lambda: delivered(2), 20, what="the first reports delivered")
    assert not sender.idle, "a stream to de-eco stays open"
    heard = nl.metrics.hellos_received.labels(DE)._value.get()

    cluster.stop(DE)
    cluster.start(DE)
    wait_until(
        lambda: nl.metrics.hellos_received.labels(DE)._value.get() == heard + 1,
        20,
        what="de-eco's hello after its restart",
    )
    wait_until(lambda: sender.idle, 10, what="nl-eokm closing the stream from before the restart")
    attempts = sender.attempts
    cluster.submit(NL, batch[2:])
    wait_until(lambda: delivered(4), 20, what="the next reports delivered on a new stream")
    assert sender.attempts == attempts + 1
    assert _failures(cluster, NL, DE) == 0


@pytest.mark.timeout(120)
def test_a_refused_hello_is_not_retried_and_a_stop_ends_the_greeting(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(start=(DE,))
    de = cluster.node(DE)
    refused_before = de.metrics.hellos_refused.labels("unknown-key")._value.get()
    metrics = Metrics()
    # nl-eokm's identity with a key the manifest does not list: de-eco refuses it for good.
    impostor = Greeter(
        self_member=NL,
        key=SigningKey.generate(),
        manifest=de.manifests.current,
        clock=system_clock,
        max_message_bytes=PRODUCTION.max_message_bytes,
        metrics=metrics,
        pause_s=0.05,
    )
    impostor.start()
    wait_until(impostor.done.is_set, 30, what="the greeting round over")
    impostor.stop()
    assert metrics.hellos_sent.labels(DE, "PERMISSION_DENIED")._value.get() == 1
    assert de.metrics.hellos_refused.labels("unknown-key")._value.get() == refused_before + 1
    # us-ncmec and inhope are down: tried three times each, then given up, nothing raised.
    assert metrics.hellos_sent.labels("us-ncmec", "UNAVAILABLE")._value.get() == 1

    # A greeting still under way when the node stops ends with it (a long pause cut short).
    slow = Greeter(
        self_member=NL,
        key=_key(cluster, NL),
        manifest=de.manifests.current,
        clock=system_clock,
        max_message_bytes=PRODUCTION.max_message_bytes,
        pause_s=600,
    )
    slow.start()
    slow.stop()
    assert not slow._thread.is_alive()


@pytest.mark.timeout(120)
def test_health_watches_held_open_never_shut_out_a_peers_hello(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(start=(NL,))
    channels = [grpc.insecure_channel(cluster.address(NL)) for _ in range(12)]
    held: list[object] = []
    refused: list[grpc.StatusCode] = []
    try:
        for ch in channels:  # two idle watches per connection, more than any budget holds
            for _ in range(2):
                call = health_pb2_grpc.HealthStub(ch).Watch(
                    health_pb2.HealthCheckRequest(service=""), timeout=60
                )
                try:
                    next(call)  # its first answer: the stream is now held by a worker
                    held.append(call)
                except grpc.RpcError as error:
                    refused.append(error.code())
        assert held
        assert set(refused) == {grpc.StatusCode.RESOURCE_EXHAUSTED}  # the watches are bounded
        with grpc.insecure_channel(cluster.address(NL)) as ch:
            ack = xgrpc.ExchangeStub(ch).Hello(_hello(_key(cluster, DE)), timeout=10)
        assert ack.member == NL
        assert cluster.node(NL).metrics.hellos_received.labels(DE)._value.get() == 1
    finally:
        for ch in channels:
            ch.close()


@pytest.mark.timeout(120)
def test_without_mtls_forged_hellos_cannot_spend_a_members_allowance(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(start=(NL,))
    de_key = _key(cluster, DE)
    with grpc.insecure_channel(cluster.address(NL)) as ch:
        stub = xgrpc.ExchangeStub(ch)
        for _ in range(8):  # more than de-eco's burst, each naming de-eco with a bad signature
            forged = xpb.SignedHello(body=_hello(de_key).body, signature=b"\0" * 64)
            assert _refusal(stub, forged)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert stub.Hello(_hello(de_key), timeout=10).member == NL
    assert cluster.node(NL).metrics.hellos_received.labels(DE)._value.get() == 1


class Answering(xgrpc.ExchangeServicer):
    """A healthy peer for every member that names it: acknowledges each hello and notes whom
    it was addressed to."""

    def __init__(self) -> None:
        self.greeted: list[str] = []

    def Hello(self, request: xpb.SignedHello, context: grpc.ServicerContext) -> xpb.HelloAck:
        recipient = xpb.HelloBody.FromString(request.body).recipient
        self.greeted.append(recipient)
        return xpb.HelloAck(member=recipient)


@pytest.fixture
def black_holes_then_healthy() -> Iterator[tuple[Manifest, Answering]]:
    """A manifest of 30 and more black holes (TCP accepted by the kernel, nothing ever read or
    said) listed first, then 30 healthy peers, all served by one ``Answering`` server."""
    holes = []
    for _ in range(30):
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        holes.append(hole)
    answering = Answering()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    xgrpc.add_ExchangeServicer_to_server(answering, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    addresses = [f"127.0.0.1:{h.getsockname()[1]}" for h in holes]
    base = make_network().manifest  # its members are black holes too (nl-eokm greets them)
    members = [replace(m, endpoint=addresses[0]) for m in base.members]
    members += [make_member(f"zz-hole-{i}", endpoint=a) for i, a in enumerate(addresses)]
    members += [make_member(f"zz-ok-{i}", endpoint=f"127.0.0.1:{port}") for i in range(30)]
    try:
        yield replace(base, members=tuple(members)), answering
    finally:
        server.stop(0)
        for hole in holes:
            hole.close()


def _greeter(manifest: Manifest, metrics: Metrics, **options: float) -> Greeter:
    # 5 s, not the default 1 s, for a first answer: on a loaded CI machine 30 fresh channels to
    # one 4-thread server took longer than 1 s (8 of 30 answered), and a healthy peer timed out
    # is retried only after the pause. 60 black holes waited out one after another would still
    # take 300 s, far past every wait below, so the tests still prove the holes delay nobody.
    options.setdefault("first_deadline_s", 5.0)
    return Greeter(
        self_member=NL,
        key=SigningKey.generate(),
        manifest=lambda: manifest,
        clock=system_clock,
        max_message_bytes=PRODUCTION.max_message_bytes,
        metrics=metrics,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.timeout(120)
def test_black_holes_listed_first_delay_no_healthy_peers_hello(
    black_holes_then_healthy: tuple[Manifest, Answering],
) -> None:
    manifest, answering = black_holes_then_healthy
    healthy = sorted(m.id for m in manifest.members if m.id.startswith("zz-ok-"))
    metrics = Metrics()
    # The pause before the retry round is 600 s: a healthy peer greeted within the wait below
    # was greeted in the first pass, before any retry — not after the black holes' retries.
    greeter = _greeter(manifest, metrics, pause_s=600)
    greeter.start()
    try:
        wait_until(
            lambda: len(answering.greeted) >= len(healthy),
            60,
            what="every healthy peer greeted in the first pass, before any retry round",
            show=lambda: sorted(answering.greeted),
        )
        assert sorted(answering.greeted) == healthy  # each once: nothing healthy was retried
        wait_until(
            lambda: all(metrics.hellos_sent.labels(m, "ok")._value.get() == 1 for m in healthy),
            30,
            what="each healthy peer's hello counted ok once the first pass's answers are in",
        )
        assert not greeter.done.is_set()  # the black holes wait for their retry round
    finally:
        greeter.stop()
    assert greeter.done.is_set()
    results = {s.labels["result"] for s in metrics.hellos_sent.collect()[0].samples}
    assert results <= {"ok", "DEADLINE_EXCEEDED", "UNAVAILABLE"}, results
    assert "ok" in results
    assert len(results) > 1  # the black holes counted too, each given up on


@pytest.mark.timeout(120)
def test_no_pause_after_the_last_attempt(
    black_holes_then_healthy: tuple[Manifest, Answering],
) -> None:
    manifest, answering = black_holes_then_healthy
    greeter = _greeter(manifest, Metrics(), attempts=1, pause_s=600)
    greeter.start()
    # One attempt each: the round is over once the black holes' deadlines pass, not 600 s later.
    wait_until(greeter.done.is_set, 60, what="the greeting over after its only attempt")
    assert len(answering.greeted) == 30
    greeter.stop()


def test_a_peer_older_than_hello_is_noted_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A gRPC server without the Hello method — what a member not yet upgraded runs.
    old = grpc.server(futures.ThreadPoolExecutor(2))
    port = old.add_insecure_port("127.0.0.1:0")
    old.start()
    base = make_network().manifest
    members = tuple(
        replace(m, endpoint=f"127.0.0.1:{port}") if m.id != NL else m for m in base.members
    )
    metrics = Metrics()
    greeter = _greeter(replace(base, members=members), metrics, pause_s=0.05)
    try:
        with caplog.at_level(logging.INFO, logger="exchange.delivery.greeter"):
            greeter.start()
            wait_until(greeter.done.is_set, 30, what="the greeting round over")
    finally:
        greeter.stop()
        old.stop(0)
    peers = [m.id for m in members if m.id != NL]
    for peer in peers:
        assert metrics.hellos_sent.labels(peer, "UNIMPLEMENTED")._value.get() == 1
    greeter_records = [r for r in caplog.records if r.name == "exchange.delivery.greeter"]
    assert not [r for r in greeter_records if r.levelno >= logging.WARNING]
    noted = [r.getMessage() for r in greeter_records if "does not know hellos" in r.getMessage()]
    assert sorted(noted) == sorted(f"{p} does not know hellos yet" for p in peers)
