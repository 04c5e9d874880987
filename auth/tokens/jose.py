"""The JOSE encodings partner tokens and trust files share: base64url and strict JSON.

A token's header and payload, and a trusted-issuers file, are JSON that parsers disagree on at the
edges: duplicate member names (which one wins?) and NaN/Infinity. ``parse_json`` refuses both and
never echoes a value in its error (tokens are secrets). ``b64url`` and ``compact_json`` are the
writing side, used by the node's own issuer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from auth import strict_json
from auth.strict_json import JsonProblem, StrictJsonError

__all__ = ["b64url", "compact_json", "parse_json"]


def parse_json(data: bytes) -> Any:
    """JSON that refuses duplicate members (parsers disagree on which wins) and NaN/Infinity."""
    try:
        return strict_json.loads(data)
    except StrictJsonError as exc:
        # Never echo a value taken from a token: name the problem only.
        raise ValueError(
            "duplicate member name"
            if exc.problem is JsonProblem.DUPLICATE
            else f"{exc.name} is not JSON"
        ) from None


def compact_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
