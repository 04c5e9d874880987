"""Admission (exchange/admission.py): budgets, stream probation and eviction, caps, the sweep.

Real ``Admission`` objects on a hand-driven clock; "cancelled" and "woken" are recorded by the
callbacks a servicer would pass. The gRPC side (interceptor, servicer loop) is exercised by the
integration tests (tests/integration/test_overload.py).
"""

from __future__ import annotations

import itertools

import pytest

from exchange.edge.admission import (
    END_GRACE,
    REFUSAL_WORKERS,
    Admission,
    Budgets,
    CallClass,
    Slot,
    StreamState,
    StreamTicket,
    classify,
)
from exchange.edge.status import status_for
from exchange.errors import Overloaded, ShuttingDown
from exchange.ops.metrics import Metrics

STREAM = "/ihx.v1.Exchange/Stream"
SUBMIT = "/ihx.v1.Intake/SubmitReport"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def admission(clock: Clock | None = None, **budgets: float) -> Admission:
    defaults: dict[str, float] = {
        "probation_streams": 2,
        "max_streams": 3,
        "streams_per_member": 2,
        "streams_per_connection": 3,
        "first_envelope_s": 5,
        "stream_idle_timeout_s": 30,
        "intake_calls": 2,
        "calls_per_subject": 1,
    }
    return Admission(
        Budgets(**{**defaults, **budgets}),  # type: ignore[arg-type]
        clock=clock or Clock(),
        metrics=Metrics(),
    )


_ports = itertools.count(40000)


def stream(a: Admission, peer: str | None = None) -> tuple[StreamTicket, list[str]]:
    """A stream admitted and started (on a connection of its own unless ``peer`` is given)."""
    peer = peer or f"ipv4:127.0.0.1:{next(_ports)}"
    events: list[str] = []
    ticket = a.acquire(STREAM, peer, lambda: events.append("cancelled"))
    assert isinstance(ticket, StreamTicket)
    ticket.on_end = lambda: events.append("woken")
    return ticket, events


def test_methods_fall_into_their_classes() -> None:
    assert classify(STREAM) is CallClass.STREAM
    assert classify("/ihx.v1.Exchange/GetNodeInfo") is CallClass.OPEN
    assert classify("/grpc.health.v1.Health/Check") is CallClass.OPEN
    assert classify("/grpc.health.v1.Health/Watch") is CallClass.PROBE  # held open by anyone
    reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    assert classify(reflection) is CallClass.PROBE
    assert classify("/ihx.v1.Exchange/Hello") is CallClass.HELLO  # shares with nothing
    assert classify("/ihx.v1.Exchange/Deliver") is CallClass.OTHER
    assert classify(SUBMIT) is CallClass.INTAKE
    assert classify("/ihx.v1.Partner/PullCases") is CallClass.PARTNER
    assert classify("/ihx.v1.RoutingLog/ListRoutingLog") is CallClass.LOG
    assert classify("/ihx.v1.Cases/Assess") is CallClass.CASES
    assert classify("/ihx.v1.Cases/ListQueue") is CallClass.CASES
    assert classify("/ihx.v1.Cases/WatchCases") is CallClass.WATCH  # held open: its own budget


def test_the_pool_holds_every_budget_at_once() -> None:
    b = Budgets()
    budgets = sum(b.limit(k) for k in CallClass if k is not CallClass.STREAM)
    assert b.workers == b.max_streams + 2 * b.probation_streams + budgets + REFUSAL_WORKERS


def acquire(a: Admission, method: str = SUBMIT) -> Slot:
    return a.acquire(method, "ipv4:127.0.0.1:1", lambda: None)


def test_a_class_over_its_budget_is_refused_and_a_release_frees_it() -> None:
    a = admission()
    a.check(SUBMIT)
    first, _second = acquire(a), acquire(a)
    with pytest.raises(Overloaded) as info:
        a.check(SUBMIT)  # refused before a worker is taken
    assert status_for(info.value).name == "RESOURCE_EXHAUSTED"
    with pytest.raises(Overloaded):
        acquire(a)  # and when one that passed the check starts
    assert a.refused["budget"] == 2
    acquire(a, "/ihx.v1.Partner/PullCases")  # another class is not affected
    first.release()
    first.release()  # idempotent: frees one slot, once
    acquire(a)
    with pytest.raises(Overloaded):
        acquire(a)


def test_once_closed_only_health_checks_and_probes_are_admitted() -> None:
    a = admission()
    running = acquire(a)
    ticket, _ = stream(a)
    a.close()
    for method in (SUBMIT, STREAM, "/ihx.v1.Exchange/Hello", "/ihx.v1.Partner/PullCases"):
        with pytest.raises(ShuttingDown) as info:
            a.check(method)  # refused before a worker is taken
        assert status_for(info.value).name == "UNAVAILABLE"
        with pytest.raises(ShuttingDown):
            a.acquire(method, "ipv4:127.0.0.1:1", lambda: None)  # and when one queued starts
    assert a.refused["shutdown"] == 8
    a.check("/grpc.health.v1.Health/Check")  # a balancer still learns NOT_SERVING
    acquire(a, "/grpc.health.v1.Health/Check").release()
    acquire(a, "/grpc.health.v1.Health/Watch").release()
    # What was admitted before runs on, and lets go as usual.
    assert a.snapshot()["intake"] == 1
    assert ticket.state is StreamState.PROBATION
    running.release()
    assert a.snapshot()["intake"] == 0


def test_full_probation_evicts_the_oldest_stream_not_the_newcomer() -> None:
    a = admission()
    oldest, events = stream(a)
    stream(a)
    newest, _ = stream(a)
    assert oldest.ended
    assert oldest.end_reason == "probation-full"
    assert not oldest.graceful
    assert events == ["woken"]
    assert newest.state is StreamState.PROBATION
    assert a.snapshot()["probation"] == 2
    assert a.snapshot()["ending"] == 1
    metrics = a._metrics
    assert metrics is not None
    ended = metrics.registry.get_sample_value(
        "ihx_streams_ended_total", {"reason": "probation-full"}
    )
    assert ended == 1
    oldest.release()
    assert a.snapshot()["ending"] == 0


def test_streams_still_ending_have_a_cap_of_their_own() -> None:
    a = admission()
    for _ in range(4):
        stream(a)  # two evicted, not yet let go
    with pytest.raises(Overloaded, match="still ending"):
        a.check(STREAM)
    with pytest.raises(Overloaded, match="still ending"):
        stream(a)
    assert a.refused["ending"] == 2


def test_a_verified_stream_counts_against_its_member_whose_oldest_is_evicted() -> None:
    a = admission(probation_streams=4, streams_per_connection=8)
    first, _ = stream(a)
    second, _ = stream(a)
    third, _ = stream(a)
    for ticket in (first, second, third):
        ticket.promote("de-eco")
    assert first.end_reason == "member-full"
    assert second.state is StreamState.VERIFIED
    assert third.state is StreamState.VERIFIED
    assert a.snapshot()["verified"] == 2
    assert a.snapshot()["probation"] == 0


def test_no_more_verified_streams_than_max_streams() -> None:
    a = admission(probation_streams=4, streams_per_connection=8, max_streams=2)
    for member in ("de-eco", "us-ncmec"):
        ticket, _ = stream(a)
        ticket.promote(member)
    last, _ = stream(a)
    with pytest.raises(Overloaded, match="maximum of 2"):
        last.promote("inhope")
    assert last.ended
    assert a.refused["verified-full"] == 1


def test_one_connection_holds_at_most_its_share_of_streams() -> None:
    a = admission(probation_streams=8, streams_per_connection=2)
    first, _ = stream(a, "ipv4:10.0.0.1:5000")
    stream(a, "ipv4:10.0.0.1:5000")
    with pytest.raises(Overloaded, match="per connection"):
        stream(a, "ipv4:10.0.0.1:5000")
    stream(a, "ipv4:10.0.0.1:5001")  # another connection is not affected
    first.release()
    stream(a, "ipv4:10.0.0.1:5000")
    assert a.refused["connection"] == 1


def test_the_sweep_ends_silent_and_idle_streams_and_cancels_laggards() -> None:
    clock = Clock()
    a = admission(clock, probation_streams=4, streams_per_connection=8)
    silent, silent_events = stream(a)
    verified, verified_events = stream(a)
    verified.promote("de-eco")
    clock.t += 5
    a.sweep()
    assert silent.end_reason == "first-envelope-timeout"
    assert not silent.graceful
    assert silent_events == ["woken"]
    assert not verified.ended
    clock.t += END_GRACE
    a.sweep()
    assert silent_events == ["woken", "cancelled"]  # its loop did not let go: cancelled
    clock.t += 20
    verified.touch()
    clock.t += 29
    a.sweep()
    assert not verified.ended  # touched 29 s ago
    clock.t += 1
    a.sweep()
    assert verified.end_reason == "idle"
    assert verified.graceful
    assert verified_events == ["woken"]
    assert a.ended == {"first-envelope-timeout": 1, "idle": 1}


WATCH = "/grpc.health.v1.Health/Watch"
HELLO = "/ihx.v1.Exchange/Hello"


def test_held_health_watches_shut_out_no_hello_nor_deliver() -> None:
    a = admission(probe_streams=4, probes_per_connection=2, hello_calls=1, other_calls=1)
    for i in range(4):  # two connections' worth, two each: the probe budget is full
        a.acquire(WATCH, f"ipv4:127.0.0.1:{50000 + i // 2}", lambda: None)
    with pytest.raises(Overloaded):
        a.acquire(WATCH, "ipv4:127.0.0.1:50009", lambda: None)
    a.check(HELLO)
    hello = a.acquire(HELLO, "ipv4:127.0.0.1:50000", lambda: None)
    a.acquire("/ihx.v1.Exchange/Deliver", "ipv4:127.0.0.1:50000", lambda: None)
    with pytest.raises(Overloaded):
        a.check(HELLO)  # hellos have a budget of their own, and it is small
    hello.release()
    a.check(HELLO)


def test_one_connection_holds_few_probes_and_each_is_cancelled_when_too_old() -> None:
    clock = Clock()
    a = admission(clock, probe_streams=8, probes_per_connection=2, probe_max_s=60)
    cancelled: list[int] = []
    first = a.acquire(WATCH, "ipv4:127.0.0.1:1", lambda: cancelled.append(1))
    clock.t += 30
    a.acquire(WATCH, "ipv4:127.0.0.1:1", lambda: cancelled.append(2))
    with pytest.raises(Overloaded) as info:
        a.acquire(WATCH, "ipv4:127.0.0.1:1", lambda: None)
    assert "per connection" in str(info.value)
    assert a.refused["connection"] == 1
    clock.t += 30
    a.sweep()
    a.sweep()
    assert cancelled == [1]  # the first is 60 s old: cancelled, once; the second is not yet
    first.release()  # its call ended (the cancel's callback): its connection may open another
    a.acquire(WATCH, "ipv4:127.0.0.1:1", lambda: None)
    assert a.snapshot()["probe"] == 2
    assert a.ended["probe-lifetime"] == 1


def test_a_token_subject_holds_at_most_its_share() -> None:
    a = admission(calls_per_subject=2)
    held = [a.acquire_subject("analyst", CallClass.INTAKE) for _ in range(2)]
    with pytest.raises(Overloaded, match="'analyst' already holds 2"):
        a.check_subject("analyst", CallClass.INTAKE)
    with pytest.raises(Overloaded, match="'analyst' already holds 2"):
        a.acquire_subject("analyst", CallClass.INTAKE)
    a.acquire_subject("nl-police", CallClass.PARTNER)
    held[0].release()
    a.acquire_subject("analyst", CallClass.INTAKE)
    assert a.refused["subject"] == 2
