"""The routing log's query parameters, parsed and bounded before any of them reaches a query.

Every value has a form: ``kind`` one of ``LogKind``; ``member`` a member id's characters;
``country`` two capital letters; ``report`` a report id; ``since``/``until`` a date, a
``datetime-local`` value (read as UTC) or RFC 3339; ``after`` an entry index (keyset paging:
stable under appends); ``size`` 1 to 500. Anything else is a ``BadQuery`` naming the parameter
— the page says what was wrong and nothing is read. Unknown parameters are ignored (a browser's
own additions must not break a bookmark).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from exchange.domain import LogKind, is_report_id
from exchange.store.routing_log import MAX_INDEX, LogFilter
from exchange.web.errors import BadQuery

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_VALUE = 100  # characters of any one parameter
_MEMBER = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_COUNTRY = re.compile(r"[A-Z]{2}")
KINDS = tuple(k.value for k in LogKind)
FIELDS = ("kind", "member", "country", "report", "since", "until")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The filters as given (for the form and the links) and as the store takes them."""

    given: Mapping[str, str]
    store: LogFilter

    def link(self, **changes: str | int) -> str:
        """The query string of this page with ``changes`` (empty values left out)."""
        values: dict[str, str | int] = {k: v for k, v in self.given.items() if v}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v != ""})


def _text(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > MAX_VALUE:
        raise BadQuery(f"{name}: at most {MAX_VALUE} characters")
    return value


def parse_time(name: str, value: str) -> datetime | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name}: not a date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    if not 1970 <= at.year <= 9998:
        raise BadQuery(f"{name}: the year must be from 1970 to 9998")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _integer(params: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    value = _text(params, name)
    if not value:
        return default
    if not (value.isascii() and value.lstrip("-").isdigit()) or len(value) > 20:
        raise BadQuery(f"{name}: not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise BadQuery(f"{name}: from {low} to {high}")
    return number


def _checked(name: str, value: str, ok: bool, form: str) -> str:
    if value and not ok:
        raise BadQuery(f"{name}: {form}")
    return value


def parse_log_query(params: Mapping[str, str]) -> LogQuery:
    """The log page's filters from its query parameters; ``BadQuery`` naming the first bad one."""
    given = {name: _text(params, name) for name in FIELDS}
    kind = _checked("kind", given["kind"], given["kind"] in KINDS, "not a kind of log entry")
    member = _checked(
        "member", given["member"], bool(_MEMBER.fullmatch(given["member"])), "not a member id"
    )
    country = _checked(
        "country",
        given["country"].upper(),
        bool(_COUNTRY.fullmatch(given["country"].upper())),
        "two letters (ISO 3166-1)",
    )
    report = _checked(
        "report",
        given["report"],
        is_report_id(given["report"]),
        "not a report id (r- and 32 hex digits)",
    )
    since, until = parse_time("since", given["since"]), parse_time("until", given["until"])
    if since is not None and until is not None and until <= since:
        raise BadQuery("until: must be after since")
    size = _integer(params, "size", 1, MAX_PAGE, DEFAULT_PAGE)
    after = _integer(params, "after", -1, MAX_INDEX - 1, -1)
    given = {**given, "country": country, "size": str(size) if size != DEFAULT_PAGE else ""}
    return LogQuery(
        given,
        LogFilter(
            since=since,
            until=until,
            country=country or None,
            member=member or None,
            kind=kind or None,
            report_id=report or None,
            after_index=after,
            page_size=size,
        ),
    )
