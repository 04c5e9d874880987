"""A statistics period as people and peers write it: ``YYYY-MM-DD`` days and a granularity word.

One parser for the three places a period comes in as text — the ``GetStatistics`` request,
``ihx stats --from/--to/--by`` and the period a signed answer says it counts — so every one
refuses the same things with the same message, and prints the same canonical text back
(``period_text``) that a verifier compares byte for byte.

The bucket count is worked out arithmetically *before* a ``Period`` is built: ``Period`` lists
its bucket starts one by one, so a hostile request for ten thousand years of days would cost
seconds and megabytes before ``Period`` could refuse it. Pure: no gRPC, no database.
"""

from __future__ import annotations

import re
from datetime import date

from exchange.errors import InvalidStatisticsRequest
from exchange.stats.model import MAX_BUCKETS, Granularity, Period, period_start

__all__ = ["bucket_count", "parse_day", "parse_granularity", "parse_period", "period_text"]

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_GRANULARITIES = ", ".join(g.value for g in Granularity)


def parse_day(name: str, text: str) -> date:
    """``YYYY-MM-DD`` exactly (no time, no week dates, no surrounding spaces)."""
    if not _DAY.fullmatch(text):
        raise InvalidStatisticsRequest(
            f"{name}: {text[:40]!r} is not a day: use YYYY-MM-DD, e.g. 2025-01-31",
            code="stats-day",
        )
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidStatisticsRequest(
            f"{name}: {text!r} is not a day of the calendar", code="stats-day"
        ) from None


def parse_granularity(name: str, text: str) -> Granularity:
    try:
        return Granularity(text)
    except ValueError:
        raise InvalidStatisticsRequest(
            f"{name}: {text[:40]!r} is not a granularity: use one of {_GRANULARITIES}",
            code="stats-granularity",
        ) from None


def bucket_count(first: date, last: date, granularity: Granularity) -> int:
    """How many buckets ``Period(first, last, granularity)`` has, without listing them."""
    if granularity is Granularity.DAY:
        return (last - first).days + 1
    if granularity is Granularity.WEEK:
        weeks = period_start(last, granularity) - period_start(first, granularity)
        return weeks.days // 7 + 1
    if granularity is Granularity.MONTH:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return last.year - first.year + 1


def parse_period(
    first: str,
    last: str,
    granularity: str,
    *,
    names: tuple[str, str, str] = ("first_day", "last_day", "granularity"),
) -> Period:
    """The period of three texts; ``names`` are the fields (or options) named in a refusal."""
    start = parse_day(names[0], first)
    end = parse_day(names[1], last)
    by = parse_granularity(names[2], granularity)
    if end < start:
        raise InvalidStatisticsRequest(
            f"{names[1]}: {end} is before {names[0]} {start}", code="stats-period"
        )
    buckets = bucket_count(start, end, by)
    if buckets > MAX_BUCKETS:
        raise InvalidStatisticsRequest(
            f"{start}..{end} by {by.value} is {buckets} buckets, at most {MAX_BUCKETS}: "
            "choose a coarser granularity or a shorter period",
            code="stats-buckets",
        )
    try:
        return Period(start, end, by)
    except ValueError as error:  # the calendar's own end: a bucket after 9999-12-31
        raise InvalidStatisticsRequest(f"{start}..{end}: {error}", code="stats-period") from None


def period_text(period: Period) -> tuple[str, str, str]:
    """The canonical text of a period: (first day, last day, granularity)."""
    return period.first.isoformat(), period.last.isoformat(), period.granularity.value
