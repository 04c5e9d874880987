"""A stand-in for ``grpc.ServicerContext`` in servicer tests: ``abort`` raises, as gRPC's does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import grpc

from auth.tokens import Principal, Scope
from exchange.edge import access
from tests.exchange.factories import T0


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class AbortingContext:
    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


@contextmanager
def calling_as(subject: str, issuer: str = "test-issuer") -> Iterator[None]:
    """Run the block as the access interceptor would after verifying ``subject``'s token."""
    principal = Principal(subject, issuer, frozenset({Scope.CASES_PULL}), None, T0)
    token = access._principal.set(principal)
    try:
        yield
    finally:
        access._principal.reset(token)
