"""exchange/takedown/dispatch.py: many real re-checks at once, within a global and a per-host
limit, a slow host never holding up the others. Checks are real ``Prober`` checks against the
loopback ``web_server``; a *gate* holds a path's answers until the test opens it, so ordering
is shown without timing anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from exchange.takedown.dispatch import CheckPool, Target
from exchange.takedown.model import Outcome
from exchange.takedown.probe import Prober
from tests.exchange.factories import FakeClock, host_in
from tests.exchange.takedown.servers import LoopbackRoute, WebServer, gated, present, removed

MakeProber = Callable[..., Prober]
COUNTRIES = ("NL", "DE", "US", "GB", "RO", "JP")  # one test host each (probe_resolver)


def targets(country: str, count: int, prefix: str = "p") -> list[Target]:
    host = host_in(country)
    return [
        Target(f"c-{country}-{prefix}{i}", f"http://{host}/{prefix}{i}.jpg", host)
        for i in range(count)
    ]


@pytest.fixture
def make_pool(make_prober: MakeProber, clock: FakeClock) -> Iterator[Callable[..., CheckPool]]:
    pools: list[CheckPool] = []

    def build(prober: Prober | None = None, **limits: int) -> CheckPool:
        pool = CheckPool((prober or make_prober(read_timeout_s=15.0)).check, clock, **limits)
        pools.append(pool)
        return pool

    yield build
    for pool in pools:
        pool.close()


def test_every_target_is_checked_once_and_yielded_with_its_check(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    for i in range(10):
        web_server.set(f"/p{i}.jpg", present() if i % 2 else removed(410))
    work = [t for cc in COUNTRIES for t in targets(cc, 10)]

    done = dict(make_pool(concurrency=8, per_host_concurrency=2).run(work))

    assert set(done) == set(work)
    for target, check in done.items():
        index = int(target.url.rsplit("/p", 1)[1].removesuffix(".jpg"))
        assert check.outcome is (Outcome.ONLINE if index % 2 else Outcome.GONE)
    assert len(web_server.requests) == len(work)
    assert web_server.max_in_flight() <= 8
    assert all(web_server.max_in_flight(host_in(cc)) <= 2 for cc in COUNTRIES)


def test_a_slow_host_waits_in_its_own_queue_while_the_others_finish(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    gate = threading.Event()
    for i in range(20):
        web_server.set(f"/slow{i}.jpg", gated(gate), host=host_in("NL"))
    for i in range(4):
        web_server.set(f"/fast{i}.jpg", present())
    slow = targets("NL", 20, "slow")  # first in line, more of them than there are workers
    fast = [t for cc in COUNTRIES[1:] for t in targets(cc, 4, "fast")]
    pool = make_pool(concurrency=4, per_host_concurrency=2)

    order: list[Target] = []
    for target, check in pool.run(slow + fast):
        order.append(target)
        assert check.outcome is Outcome.ONLINE
        if len(order) == len(fast):
            gate.set()  # every other host is done: now the slow host may answer

    # all of the other hosts' checks completed while the slow host's were held back
    assert set(order[: len(fast)]) == set(fast)
    assert set(order[len(fast) :]) == set(slow)
    # and the slow host was asked at most two things at once, never one per worker
    assert web_server.max_in_flight(host_in("NL")) == 2


def _held_until(web_server: WebServer, gate: threading.Event, in_flight: int) -> threading.Thread:
    """Opens ``gate`` once the server serves ``in_flight`` requests at once (or gives up)."""

    def watch() -> None:
        web_server.wait_in_flight(in_flight)
        gate.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher


def test_the_global_limit_is_reached_and_never_passed(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    gate = threading.Event()
    for i in range(2):
        web_server.set(f"/p{i}.jpg", gated(gate))
    work = [t for cc in COUNTRIES for t in targets(cc, 2)]  # 12 checks on 6 hosts

    watcher = _held_until(web_server, gate, 5)
    done = list(make_pool(concurrency=5, per_host_concurrency=2).run(work))
    watcher.join()

    assert len(done) == len(work)
    assert web_server.max_in_flight() == 5


def test_the_per_host_limit_is_reached_and_never_passed(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    gate = threading.Event()
    for i in range(6):
        web_server.set(f"/p{i}.jpg", gated(gate))
    work = targets("NL", 6) + targets("DE", 6)  # two hosts, more workers than 2 x 2

    watcher = _held_until(web_server, gate, 4)
    done = list(make_pool(concurrency=8, per_host_concurrency=2).run(work))
    watcher.join()

    assert len(done) == len(work)
    assert web_server.max_in_flight(host_in("NL")) == 2
    assert web_server.max_in_flight(host_in("DE")) == 2
    assert web_server.max_in_flight() == 4


def test_targets_are_read_lazily_within_the_backlog(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    web_server.set("/p0.jpg", present())
    pulled = 0

    def feed() -> Iterator[Target]:
        nonlocal pulled
        for i in range(50):
            pulled += 1
            cc = COUNTRIES[i % len(COUNTRIES)]
            yield Target(f"c{i}", f"http://{host_in(cc)}/p0.jpg", host_in(cc))

    yielded = 0
    for _ in make_pool(concurrency=4, backlog=3).run(feed()):
        yielded += 1
        # yielding one more frees one place: at most three read and not yet yielded, plus it
        assert pulled - yielded <= 3
    assert (pulled, yielded) == (50, 50)


def test_a_pool_has_its_fixed_workers_whatever_the_number_of_targets(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    web_server.set("/p0.jpg", present())

    def workers() -> int:
        return sum(t.name.startswith("recheck-") for t in threading.enumerate())

    pool = make_pool(concurrency=3)
    assert workers() == 3

    work = [Target(f"c{i}", f"http://{host_in('DE')}/p0.jpg", f"h{i}") for i in range(300)]
    assert len(list(pool.run(work))) == 300
    assert workers() == 3

    pool.close()
    assert workers() == 0
    with pytest.raises(RuntimeError, match="closed"):
        list(pool.run(work[:1]))


def test_a_check_that_raises_becomes_unreachable_and_the_pool_goes_on(
    web_server: WebServer,
    make_prober: MakeProber,
    make_pool: Callable[..., CheckPool],
    route: LoopbackRoute,
    caplog: pytest.LogCaptureFixture,
) -> None:
    web_server.set("/p0.jpg", present())

    def broken_edge(address: str, port: int) -> tuple[str, int]:
        if address == "8.8.8.8":  # host_in("US")
            raise RuntimeError("the network edge has a bug")
        return route(address, port)

    pool = make_pool(make_prober(route=broken_edge), concurrency=2)
    work = [t for cc in ("US", "NL", "US", "DE") for t in targets(cc, 1)]

    with caplog.at_level(logging.ERROR, logger="exchange.takedown.dispatch"):
        done = list(pool.run(work))

    assert len(done) == 4
    us = [check for target, check in done if target.host == host_in("US")]
    others = [check for target, check in done if target.host != host_in("US")]
    assert [(c.outcome, c.detail) for c in us] == [
        (Outcome.UNREACHABLE, "check failed: RuntimeError")
    ] * 2
    assert all(c.outcome is Outcome.ONLINE for c in others)
    # logged with the case and host, never the URL's path; only the pool's own records count
    # (a thread another test left behind may log to the root handler meanwhile)
    logged = [r for r in caplog.records if r.name == "exchange.takedown.dispatch"]
    assert len(logged) == 2
    assert all("p0.jpg" not in r.getMessage() for r in logged)
    assert {getattr(r, "host", None) for r in logged} == {host_in("US")}


def test_leaving_a_run_early_drops_its_targets_that_have_not_started(
    web_server: WebServer, make_pool: Callable[..., CheckPool]
) -> None:
    gate = threading.Event()
    for i in range(5):
        web_server.set(f"/held{i}.jpg", gated(gate))
    web_server.set("/p0.jpg", present())
    pool = make_pool(concurrency=2, per_host_concurrency=1)

    for target, _ in pool.run(targets("NL", 5, "held") + targets("DE", 1)):
        assert target.host == host_in("DE")  # the held host cannot answer yet
        break
    gate.set()
    # the pool still serves a new run
    assert [c.outcome for _, c in pool.run(targets("US", 1))] == [Outcome.ONLINE]
    pool.close()  # waits for the one held check that had started

    held = [r for r in web_server.requests if r.path.startswith("/held")]
    assert len(held) == 1


def test_limits_must_be_positive(make_prober: MakeProber, clock: FakeClock) -> None:
    for limits in ({"concurrency": 0}, {"per_host_concurrency": 0}, {"backlog": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            CheckPool(make_prober().check, clock, **limits)
