"""JSON parsing that refuses what parsers disagree on: duplicate member names and NaN/Infinity.

Signed manifests, token headers and claims, JWKS files and import lines are all read with it,
so a document means the same thing to every node and tool. Refusals are ``StrictJsonError``
(a ``ValueError``) carrying what was refused, so each caller words its own message.
"""

from __future__ import annotations

import json
from typing import Any


class StrictJsonError(ValueError):
    """A duplicate member name (``problem == "duplicate"``) or a NaN/Infinity constant."""

    def __init__(self, problem: str, name: str) -> None:
        self.problem = problem
        self.name = name
        quoted = json.dumps(name, ensure_ascii=False)
        what = f"duplicate key {quoted}" if problem == "duplicate" else f"{name} is not allowed"
        super().__init__(what)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError("duplicate", key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise StrictJsonError("constant", name)


def loads(data: str | bytes) -> Any:
    """``json.loads`` that raises ``StrictJsonError`` for duplicates and NaN/Infinity."""
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
