"""The ``stats:read`` scope: a value of its own that ``admin`` implies and no other scope does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auth.errors import PermissionDenied
from auth.tokens import Principal, Scope, require
from auth.tokens.policy import SCOPES_BY_VALUE


def _principal(*scopes: Scope) -> Principal:
    return Principal(
        "inhope", "ihx:nl-eokm", frozenset(scopes), None, datetime(2030, 1, 1, tzinfo=UTC)
    )


def test_stats_read_is_a_scope_of_its_own() -> None:
    assert SCOPES_BY_VALUE["stats:read"] is Scope.STATS_READ


def test_admin_implies_stats_read() -> None:
    require(_principal(Scope.ADMIN), Scope.STATS_READ)


@pytest.mark.parametrize("scope", [s for s in Scope if s not in (Scope.STATS_READ, Scope.ADMIN)])
def test_no_other_scope_grants_it(scope: Scope) -> None:
    with pytest.raises(PermissionDenied, match="does not grant scope stats:read"):
        require(_principal(scope), Scope.STATS_READ)
