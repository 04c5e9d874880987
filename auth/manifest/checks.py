"""Value checks and field-path errors shared by the manifest model, parser and signing.

A manifest error must name the offending field (``members[2].countries[0]: …``) whether it was
raised while building the model in code or while parsing a document. The checks that decide
whether a value is acceptable therefore live here, once, and return a *problem* (or None) that the
caller prefixes with its own path; ``within`` adds a path prefix to errors raised by nested
objects, and the ``as_table``/``as_array``/``as_string``/``check_fields`` readers give document
parsing the same vocabulary. Nothing here knows the model.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from auth.countries import ISO_3166_ALPHA2
from auth.errors import ManifestError

MEMBER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
NETWORK_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
TLS_IDENTITY_PATTERN = re.compile(r"sha256:[0-9a-f]{64}|spiffe://ihx/[a-z0-9][a-z0-9-]{1,62}")
_ENDPOINT = re.compile(
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d{1,5})"
)
MAX_NAME = 200


def _join(prefix: str, message: str) -> str:
    return f"{prefix}{message}" if message.startswith("[") else f"{prefix}.{message}"


@contextmanager
def within(prefix: str) -> Iterator[None]:
    """Prefix the field path of ManifestErrors raised inside: nested objects report full paths."""
    try:
        yield
    except ManifestError as exc:
        raise ManifestError(_join(prefix, exc.message)) from None


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def country_problem(cc: object) -> str | None:
    if isinstance(cc, str) and cc in ISO_3166_ALPHA2:
        return None
    return f"{quote(cc)} is not an upper-case ISO 3166-1 alpha-2 country code"


def member_id_problem(member_id: object) -> str | None:
    if isinstance(member_id, str) and MEMBER_ID_PATTERN.fullmatch(member_id):
        return None
    return (
        f"{quote(member_id)} is not a member id "
        "(2-63 characters: lower-case letters, digits and '-', not starting with '-')"
    )


def endpoint_problem(endpoint: object) -> str | None:
    if not isinstance(endpoint, str):
        return f"expected a string, got {type_name(endpoint)}"
    match = _ENDPOINT.fullmatch(endpoint)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        return f'{quote(endpoint)} is not a "host:port" endpoint'
    return None


def text_problem(value: object, *, max_len: int = MAX_NAME) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {type_name(value)}"
    if not value.strip():
        return "must not be empty"
    if len(value) > max_len:
        return f"longer than {max_len} characters"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "must not contain control characters"
    return None


def quote(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ManifestError(f"{name}: expected a datetime, got {type_name(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ManifestError(f"{name}: time has no timezone")
    # One representation (UTC) so documents, logs and comparisons agree.
    return value.astimezone(UTC)


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(prefix: str, key: object) -> str:
    """``prefix.key``, or ``prefix["odd key"]`` when the key would not read as one word."""
    if isinstance(key, str) and BARE_KEY.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{quote(key)}]"


def as_table(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: expected a table, got {type_name(value)}")
    return value


def as_array(value: object, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ManifestError(f"{path}: expected an array, got {type_name(value)}")
    return list(value)


def as_string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{path}: expected a string, got {type_name(value)}")
    return value


def check_fields(
    table: Mapping[str, Any], prefix: str, required: Sequence[str], optional: Sequence[str] = ()
) -> None:
    """Unknown fields are errors (they are usually typos); every required field must be there."""
    known = (*required, *optional)
    for name in table:
        if name not in known:
            raise ManifestError(
                f"{key_path(prefix, name)}: unknown field "
                f"(known fields: {', '.join(sorted(known))})"
            )
    for name in required:
        if name not in table:
            raise ManifestError(f"{key_path(prefix, name)}: required field missing")
