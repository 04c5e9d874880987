"""Fixtures for the takedown room: a resolver with inward-pointing names, a prober on loopback.

* ``probe_resolver`` — ``host_in(cc)`` names resolve to the test GeoIP address in ``cc`` (as the
  node-core ``resolver``), plus the names of ``HOSTS`` below: names that point at
  special-purpose addresses, at a mix, at a public address no database places, at nothing.
* ``probe_tracer`` — the node's real ``Tracer`` over that resolver and the test databases.
* ``route`` — a ``LoopbackRoute`` to the test's ``web_server``: every traced address is sent to
  it and recorded.
* ``make_prober(**overrides)`` — a ``Prober`` with short timeouts over all of the above.
* ``relay_tls`` — a test CA and an SMTP relay's certificate for 127.0.0.1 (``smtp.RelayTls``);
* ``relay`` — a plain SMTP relay (no STARTTLS, no AUTH), started and stopped around the test;
* ``make_relay(tls=…, users=…)`` — more relays, each stopped at teardown; relays record what
  they accept (``tests/exchange/takedown/smtp.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from exchange.takedown.probe import Prober
from routing.geoip import GeoIp
from routing.resolver import StaticResolver
from routing.trace import Tracer
from tests.conftest import GeoRow
from tests.exchange.factories import FakeClock, host_in
from tests.exchange.takedown.servers import LoopbackRoute, WebServer
from tests.exchange.takedown.smtp import RelayTls, SmtpRelay

USER_AGENT = "ihx-recheck/1 (test hotline; +https://hotline.example/recheck)"

HOSTS: Mapping[str, list[str]] = {
    "private.example": ["10.0.0.1"],
    "loopback.example": ["127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "inward-v6.example": ["::1"],
    "also-inward.example": ["185.107.56.1", "127.0.0.1"],  # public and inward at once
    "behind-private.example": ["10.0.0.2", "185.107.56.1"],  # a hosting candidate after one
    "unplaced.example": ["1.1.1.1"],  # public, but no test database places it
    "no-answer.example": [],
}


@pytest.fixture
def probe_resolver(geo_table: Mapping[str, GeoRow]) -> StaticResolver:
    table: dict[str, list[str]] = dict(HOSTS)
    for row in geo_table.values():
        table.setdefault(host_in(row.country), [row.sample])
    return StaticResolver(table)


@pytest.fixture
def probe_tracer(probe_resolver: StaticResolver, geoip: GeoIp, clock: FakeClock) -> Tracer:
    return Tracer(probe_resolver, geoip, clock)


@pytest.fixture
def route(web_server: WebServer) -> LoopbackRoute:
    return LoopbackRoute(web_server.port)


@pytest.fixture
def make_prober(
    probe_tracer: Tracer, clock: FakeClock, route: LoopbackRoute
) -> Callable[..., Prober]:
    def build(**overrides: Any) -> Prober:
        options: dict[str, Any] = {
            "user_agent": USER_AGENT,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 2.0,
            "max_redirects": 5,
            "route": route,
        }
        options.update(overrides)
        return Prober(probe_tracer, clock, **options)

    return build


@pytest.fixture
def relay_tls(tmp_path: Path) -> RelayTls:
    return RelayTls.create(tmp_path / "relay-tls")


@pytest.fixture
def make_relay() -> Iterator[Callable[..., SmtpRelay]]:
    started: list[SmtpRelay] = []

    def make(*, tls: RelayTls | None = None, users: dict[str, str] | None = None) -> SmtpRelay:
        relay = SmtpRelay(tls=tls, users=users).start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.stop()


@pytest.fixture
def relay(make_relay: Callable[..., SmtpRelay]) -> SmtpRelay:
    """A plain relay on 127.0.0.1: no STARTTLS, no AUTH."""
    return make_relay()
