"""CSV exports without a database: cells safe in a spreadsheet, columns checked, statistics."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest

from exchange.errors import MalformedRequest
from exchange.stats.export import (
    STATISTICS_COLUMNS,
    CaseColumn,
    CaseFilter,
    case_columns,
    cell,
    statistics_csv,
)
from exchange.stats.model import Figure, Histogram
from tests.exchange.stats.chart_snapshots import DAY_MS, network, snapshot


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("NL", "NL"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (True, "yes"),
        (False, "no"),
        (12, "12"),
        (("removed", "assessed"), "removed assessed"),
        (date(2026, 3, 1), "2026-03-01"),
    ],
)
def test_cells_never_start_a_formula(value: object, expected: str) -> None:
    assert cell(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x;=1+1", "x;'=1+1"),
        ("x;@SUM(1+1)", "x;'@SUM(1+1)"),
        ("x;+1+1", "x;'+1+1"),
        ("x;-1+1", "x;'-1+1"),
        ("a,b; =HYPERLINK(1)", "a,b; '=HYPERLINK(1)"),
        ("a\t=1", "a\t'=1"),
        ("a\n@x", "a\n'@x"),
        ("a\r\n+x", "a\r\n'+x"),
        (" =1+1", " '=1+1"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ("x;\uff0bcmd", "x;'\uff0bcmd"),
        ("a-b;c=d,e+f", "a-b;c=d,e+f"),
        ("2026-03-01T12:00:00+00:00", "2026-03-01T12:00:00+00:00"),
    ],
)
def test_no_piece_a_semicolon_locale_splits_off_starts_a_formula(value: str, expected: str) -> None:
    """Red-team F6: Excel in a ';' locale splits ``x;=1+1`` into two cells, the second a formula."""
    assert cell(value) == expected
    for separator in ";,\t\r\n":
        for piece in cell(value).split(separator):
            assert not piece.lstrip(" \t\r\n\u3000").startswith(
                tuple("=+-@\uff1d\uff0b\uff0d\uff20")
            )


def test_times_are_written_in_utc() -> None:
    at = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert cell(at) == "2026-03-01T12:00:00+00:00"


def test_columns_are_chosen_in_order() -> None:
    assert case_columns("status, case_id,items") == (
        CaseColumn.STATUS,
        CaseColumn.CASE_ID,
        CaseColumn.ITEMS,
    )


def test_an_unknown_column_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(MalformedRequest) as refused:
        case_columns("case_id,password")
    message = str(refused.value)
    assert "unknown column 'password'" in message
    assert "case_id, status, hosting_country" in message
    assert "url" not in message.split("choose from:")[1].split(", ")


def test_the_url_column_needs_a_role_that_may_see_urls() -> None:
    with pytest.raises(MalformedRequest, match="may not see URLs"):
        case_columns("case_id,url")
    assert case_columns("case_id,url", may_see_urls=True)[1] is CaseColumn.URL


@pytest.mark.parametrize(("text", "why"), [("", "no columns"), ("status,status", "twice")])
def test_empty_or_repeated_columns_are_refused(text: str, why: str) -> None:
    with pytest.raises(MalformedRequest, match=why):
        case_columns(text)


def _rows(chunks: object) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(chunks))))  # type: ignore[arg-type]


def test_statistics_rows_hold_counts_histograms_and_masks() -> None:
    snap = snapshot(
        {
            (Figure.ITEMS, "NL"): (3, 0, 0, 0, 0, 7),
            (Figure.HOSTER_ITEMS, "AS64500 X"): (3, 0, 0, 0, 0, 9),
            (Figure.ITEMS, "=cmd"): (1, 0, 0, 0, 0, 0),
        },
        {(Figure.TO_REMOVAL, "orphan"): Histogram.of([2 * DAY_MS, 2 * DAY_MS, 10**12])},
    )
    rows = _rows(statistics_csv(snap))
    assert rows[0] == list(STATISTICS_COLUMNS)
    assert ["member", "answered", "nl-eokm", "", "", ""] in rows
    assert ["count", "items", "NL", "2026-01-01", "", "3"] in rows
    assert ["count", "items", "NL", "2026-06-01", "", "7"] in rows
    # a country count is exact; a hoster's count under 5 is masked, 5 and over is not
    assert ["count", "hoster.items", "AS64500 X", "2026-01-01", "", "<5"] in rows
    assert ["count", "hoster.items", "AS64500 X", "2026-06-01", "", "9"] in rows
    assert ["count", "items", "'=cmd", "2026-01-01", "", "1"] in rows
    assert ["duration", "to_removal", "orphan", "2026-01-01", str(2 * DAY_MS), "2"] in rows
    assert ["duration", "to_removal", "orphan", "2026-01-01", "more", "1"] in rows
    # zero buckets are not written
    assert not [r for r in rows if r[-1] == "0"]


def test_a_hosters_few_removal_times_are_one_masked_row_not_their_buckets() -> None:
    few = Histogram.of([2 * DAY_MS, 9 * DAY_MS])
    many = Histogram.of([DAY_MS] * 3 + [9 * DAY_MS] * 3)
    snap = snapshot(
        {},
        {(Figure.HOSTER_REMOVAL, "AS1 Few"): few, (Figure.HOSTER_REMOVAL, "AS2 Many"): many},
    )
    rows = [r for r in _rows(statistics_csv(snap)) if r[0] == "duration"]
    few_rows = [r for r in rows if r[2] == "AS1 Few"]
    # the buckets would place the two removals in time: only that there are under 5
    assert few_rows == [["duration", "hoster.removal", "AS1 Few", "2026-01-01", "", "<5"]]
    assert ["duration", "hoster.removal", "AS2 Many", "2026-01-01", str(DAY_MS), "<5"] in rows
    assert len([r for r in rows if r[2] == "AS2 Many"]) == 2


def test_a_merged_export_names_who_answered_and_who_is_missing() -> None:
    merged = network(
        snapshot({(Figure.ITEMS, "NL"): (1,) * 6}, member="nl-eokm"),
        snapshot({(Figure.ITEMS, "NL"): (2,) * 6}, member="de-eco"),
        missing={"us-ncmec": "unreachable"},
    )
    rows = _rows(statistics_csv(merged))
    assert ["member", "answered", "de-eco", "", "", ""] in rows
    assert ["member", "answered", "nl-eokm", "", "", ""] in rows
    assert ["member", "missing", "us-ncmec", "", "", "unreachable"] in rows
    assert ["count", "items", "NL", "2026-03-01", "", "3"] in rows


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "pending"}, "status 'pending': choose from open, closed"),
        ({"hosting_country": "nl"}, "country 'nl': a two-letter code"),
        ({"hosting_country": "NLD"}, "country 'NLD': a two-letter code"),
    ],
)
def test_a_case_filter_names_what_is_wrong(changes: dict[str, str], message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        CaseFilter(**changes)  # type: ignore[arg-type]
