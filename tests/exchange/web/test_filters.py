"""The log page's query parameters: every form checked, bounded, named when wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange.web.errors import BadQuery
from exchange.web.filters import DEFAULT_PAGE, parse_log_query


def test_empty_query_is_the_first_page_of_everything() -> None:
    q = parse_log_query({})
    f = q.store
    assert (f.kind, f.member, f.country, f.report_id, f.since, f.until) == (None,) * 6
    assert (f.after_index, f.page_size) == (-1, DEFAULT_PAGE)
    assert q.link() == ""


def test_filters_are_parsed_and_links_keep_them() -> None:
    q = parse_log_query(
        {
            "kind": "new-case",
            "member": "nl-eokm",
            "country": "de",
            "report": "r-" + "a" * 32,
            "since": "2026-01-02T03:04",
            "until": "2026-01-03T00:00:00Z",
            "size": "10",
            "after": "41",
            "utm_source": "ignored",
        }
    )
    f = q.store
    assert (f.kind, f.member, f.country) == ("new-case", "nl-eokm", "DE")
    assert f.since == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert f.until == datetime(2026, 1, 3, tzinfo=UTC)
    assert (f.page_size, f.after_index) == (10, 41)
    link = q.link(after=90)
    assert "after=90" in link
    assert "kind=new-case" in link
    assert "country=DE" in link
    assert "size=10" in link
    assert "utm_source" not in link


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"kind": "everything"}, "kind"),
        ({"member": "NL EOKM"}, "member"),
        ({"country": "NLD"}, "country"),
        ({"report": "r-123"}, "report"),
        ({"since": "last week"}, "since"),
        ({"since": "0001-01-01"}, "since"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
        ({"size": "501"}, "size"),
        ({"size": "1e3"}, "size"),
        ({"after": "-2"}, "after"),
        ({"after": "²"}, "after"),
        ({"member": "a" * 101}, "member"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(params: dict[str, str], named: str) -> None:
    with pytest.raises(BadQuery, match=f"^{named}"):
        parse_log_query(params)
