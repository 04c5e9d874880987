"""The shared kernel: one error base for routing, auth and exchange, and the real clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auth.errors import AuthError
from common.clock import system_clock
from common.errors import IhxError
from exchange.errors import ExchangeError
from routing.errors import RoutingError


@pytest.mark.parametrize("base", [AuthError, ExchangeError, RoutingError])
def test_each_part_roots_its_errors_on_the_one_base(base: type[IhxError]) -> None:
    assert issubclass(base, IhxError)
    assert base.__init__ is IhxError.__init__


def test_code_defaults_to_the_class_and_can_be_set_per_error() -> None:
    assert IhxError("boom").code == "ihx-error"
    assert RoutingError("boom").code == "routing-error"
    error = AuthError("bad token", code="token-alg")
    assert (error.code, error.message, AuthError.code) == ("token-alg", "bad token", "auth-error")


def test_message_falls_back_to_the_code() -> None:
    error = ExchangeError.__new__(ExchangeError)
    assert error.message == "exchange-error"


def test_system_clock_is_aware_utc_now() -> None:
    now = system_clock()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
