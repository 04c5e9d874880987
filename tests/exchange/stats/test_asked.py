"""Periods as text: each refusal names the field and what was wrong; buckets counted up front."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from exchange.errors import InvalidStatisticsRequest
from exchange.stats.asked import bucket_count, parse_period, period_text
from exchange.stats.model import MAX_BUCKETS, Granularity, Period


def test_a_period_parses_and_prints_back_the_same_text() -> None:
    period = parse_period("2025-01-10", "2025-03-31", "month")
    assert period == Period(date(2025, 1, 10), date(2025, 3, 31), Granularity.MONTH)
    assert period_text(period) == ("2025-01-10", "2025-03-31", "month")


@pytest.mark.parametrize(
    ("first", "last", "by", "code", "message"),
    [
        ("2025-1-01", "2025-03-31", "month", "stats-day", "first_day: '2025-1-01' is not a day"),
        ("2025-01-01 ", "2025-03-31", "month", "stats-day", "first_day: '2025-01-01 ' is not"),
        ("", "2025-03-31", "month", "stats-day", "first_day: '' is not a day"),
        (
            "2025-01-01",
            "2025-02-30",
            "month",
            "stats-day",
            "'2025-02-30' is not a day of",
        ),
        ("2025-01-01", "2025-01-01T00:00", "day", "stats-day", "last_day: '2025-01-01T00:00'"),
        ("2025-01-01", "2025-03-31", "quarter", "stats-granularity", "'quarter' is not a gran"),
        ("2025-01-01", "2025-03-31", "Month", "stats-granularity", "use one of day, week, month"),
        ("2025-03-01", "2025-02-28", "day", "stats-period", "last_day: 2025-02-28 is before"),
        ("2000-01-01", "2025-12-31", "day", "stats-buckets", "9497 buckets, at most 3700"),
        ("0001-01-01", "9999-12-31", "day", "stats-buckets", "choose a coarser granularity"),
        ("9999-12-01", "9999-12-31", "month", "stats-period", "year 10000 is out of range"),
    ],
)
def test_refusals_name_the_field(first: str, last: str, by: str, code: str, message: str) -> None:
    with pytest.raises(InvalidStatisticsRequest) as caught:
        parse_period(first, last, by)
    assert caught.value.code == code
    assert message in caught.value.message


def test_refusals_name_the_options_they_were_given_as() -> None:
    with pytest.raises(InvalidStatisticsRequest, match=r"^--to: 2025-01-01 is before --from"):
        parse_period("2025-02-01", "2025-01-01", "day", names=("--from", "--to", "--by"))


def test_the_most_buckets_allowed_is_accepted() -> None:
    first = date(2020, 1, 1)
    period = parse_period(
        first.isoformat(), (first + timedelta(MAX_BUCKETS - 1)).isoformat(), "day"
    )
    assert len(period.starts) == MAX_BUCKETS


def test_bucket_count_agrees_with_the_period_it_predicts() -> None:
    rng = random.Random(14)
    for _ in range(500):
        first = date(2019, 1, 1) + timedelta(days=rng.randrange(2500))
        last = first + timedelta(days=rng.randrange(800))
        for by in Granularity:
            assert bucket_count(first, last, by) == len(Period(first, last, by).starts)
