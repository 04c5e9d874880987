"""Fixtures of the takedown tests: real SMTP relays on loopback and a test CA.

* ``relay_tls`` — a test CA and the relay's certificate for 127.0.0.1 (``smtp.RelayTls``);
* ``relay`` — a plain relay (no STARTTLS, no AUTH), started and stopped around the test;
* ``make_relay(tls=…, users=…)`` — more relays, each stopped at teardown.

The relays record what they accept (``tests/exchange/takedown/smtp.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.exchange.takedown.smtp import RelayTls, SmtpRelay


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
