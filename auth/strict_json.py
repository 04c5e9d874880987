"""JSON parsing that refuses what parsers disagree on: duplicate member names and NaN/Infinity.

Signed manifests, token headers and claims, JWKS files and import lines are all read with it,
so a document means the same thing to every node and tool. Refusals are ``StrictJsonError``
(a ``ValueError``) carrying what was refused, so each caller words its own message.
"""

from __future__ import annotations

import enum
import json
from typing import Any


class JsonProblem(enum.StrEnum):
    """What strict parsing refused."""

    DUPLICATE = "duplicate"  # a member name twice in one object
    CONSTANT = "constant"  # NaN, Infinity or -Infinity


class StrictJsonError(ValueError):
    """A duplicate member name (``JsonProblem.DUPLICATE``) or a NaN/Infinity constant."""

    def __init__(self, problem: JsonProblem, name: str) -> None:
        self.problem = problem
        self.name = name
        quoted = json.dumps(name, ensure_ascii=False)
        what = (
            f"duplicate key {quoted}"
            if problem is JsonProblem.DUPLICATE
            else f"{name} is not allowed"
        )
        super().__init__(what)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(JsonProblem.DUPLICATE, key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise StrictJsonError(JsonProblem.CONSTANT, name)


def loads(data: str | bytes) -> Any:
    """``json.loads`` that raises ``StrictJsonError`` for duplicates and NaN/Infinity."""
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
