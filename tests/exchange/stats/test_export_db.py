"""CSV exports of cases and the routing log on real databases (SQLite, and PostgreSQL when the
suite runs on it): columns as chosen, URLs only when allowed, every row once across pages,
thousands of rows streamed a page at a time, hostile text made inert."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from exchange.domain import Classification
from exchange.errors import MalformedRequest
from exchange.stats.export import (
    LOG_COLUMNS,
    ROWS_PER_CHUNK,
    CaseColumn,
    CaseFilter,
    LogFilter,
    cases_csv,
    log_csv,
)
from exchange.store import cases as case_store
from tests.exchange.factories import T0, make_report
from tests.exchange.stats.export_rows import link_reports, put_log, put_many
from tests.exchange.store.held_cases import assessed_as, closed_item, item, put_case


def rows(chunks: Iterable[str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(chunks))))


def test_cases_with_their_items_and_reports(engine: Engine) -> None:
    one = put_case(
        engine,
        "one",
        [assessed_as(Classification.BASELINE, 0), closed_item(1, closed_days_ago=1)],
        orphaned=True,
    )
    two = put_case(engine, "two", [item(0)])
    link_reports(engine, one, ["nl-eokm", "us-ncmec", "nl-eokm"])
    cols = [
        CaseColumn.CASE_ID,
        CaseColumn.ITEMS,
        CaseColumn.STAGE,
        CaseColumn.CLASSIFICATION,
        CaseColumn.ORPHANED,
        CaseColumn.REPORTS,
        CaseColumn.REPORTED_BY,
        CaseColumn.STATUS,
        CaseColumn.HOSTING_COUNTRY,
    ]
    got = rows(cases_csv(engine, cols))
    assert got[0] == [c.value for c in cols]
    by_id = {r[0]: r for r in got[1:]}
    assert set(by_id) == {one, two}
    assert by_id[one][1:] == [
        "2",
        "assessed removed",
        "baseline",
        "yes",
        "3",
        "nl-eokm us-ncmec",
        "open",
        "DE",
    ]
    assert by_id[two][1:] == ["1", "unassessed", "", "no", "0", "", "open", "DE"]


def test_the_url_is_exported_only_when_the_caller_may_see_it(engine: Engine) -> None:
    cid = put_case(engine, "u", [item(0)])
    with_url = rows(cases_csv(engine, [CaseColumn.CASE_ID, CaseColumn.URL], may_see_urls=True))
    assert with_url[1] == [cid, "https://hosting-de.example/u.jpg"]
    with pytest.raises(MalformedRequest, match="may not see URLs"):
        cases_csv(engine, [CaseColumn.CASE_ID, CaseColumn.URL])
    default = "".join(cases_csv(engine))
    assert "hosting-de.example" not in default
    assert cid in default


def test_hostile_text_in_a_case_is_inert_in_a_spreadsheet(engine: Engine) -> None:
    url = '=HYPERLINK("https://evil.example","click")'
    report = make_report(url=url, canonical=False, report_id="r-" + "e" * 32)
    with engine.begin() as conn:
        case_store.open_cases(conn, [("c-hostile", report)], T0)
    got = rows(cases_csv(engine, [CaseColumn.CASE_ID, CaseColumn.URL], may_see_urls=True))
    assert got[1] == ["c-hostile", "'" + url]


def test_filters_narrow_the_cases(engine: Engine) -> None:
    put_many(engine, 3, prefix="early")
    later = T0 + timedelta(days=2)
    with engine.begin() as conn:
        case_store.open_cases(
            conn, [("c-late", make_report(url="https://late.example/", country="NL"))], later
        )
    only = rows(cases_csv(engine, [CaseColumn.CASE_ID], CaseFilter(since=later)))
    assert only[1:] == [["c-late"]]
    nl = rows(cases_csv(engine, [CaseColumn.CASE_ID], CaseFilter(hosting_country="NL")))
    assert nl[1:] == [["c-late"]]
    before = rows(cases_csv(engine, [CaseColumn.CASE_ID], CaseFilter(until=later)))
    assert len(before) == 1 + 3
    assert rows(cases_csv(engine, [CaseColumn.CASE_ID], CaseFilter(status="closed"))) == [
        ["case_id"]
    ]


def test_every_case_once_across_page_boundaries(engine: Engine) -> None:
    ids = put_many(engine, 23)
    got = rows(cases_csv(engine, [CaseColumn.CASE_ID], page_size=5))
    assert [r[0] for r in got[1:]] == ids


def test_ten_thousand_cases_stream_a_page_at_a_time(engine: Engine) -> None:
    ids = put_many(engine, 10_500)
    stream = cases_csv(engine, [CaseColumn.CASE_ID, CaseColumn.ITEMS, CaseColumn.REPORTS])
    first = next(stream)
    # the first chunk is the header and one chunk of rows, not the whole table
    assert first.count("\r\n") == 1 + ROWS_PER_CHUNK
    # a case added while the export runs, after the pages read so far, is still exported:
    # each page is a fresh read after the last id, not one long query
    late = make_report(url="https://late.example/", report_id="r-" + "f" * 32)
    with engine.begin() as conn:
        case_store.open_cases(conn, [("c-zzzz-late", late)], T0)
    got = rows([first, *stream])
    assert [r[0] for r in got[1:]] == [*ids, "c-zzzz-late"]
    assert all(r[1:] == ["0", "0"] for r in got[1:])


def test_the_routing_log_with_ihx_logs_filters(engine: Engine) -> None:
    entries = put_log(
        engine,
        [
            {"kind": "intake", "member": "de-eco", "country": "DE", "report_id": "r-1"},
            {"kind": "sent", "member": "de-eco", "country": "DE", "report_id": "r-1"},
            {"kind": "intake", "member": "us-ncmec", "country": "US", "report_id": "r-2"},
            {"kind": "intake", "member": "de-eco", "detail": {"note": "=1+1"}},
        ],
    )
    everything = rows(log_csv(engine))
    assert everything[0] == list(LOG_COLUMNS)
    assert [r[0] for r in everything[1:]] == ["0", "1", "2", "3"]
    assert everything[1][1] == entries[0].at.isoformat()
    assert everything[1][-1] == entries[0].entry_hash.hex()

    def idx(f: LogFilter) -> list[str]:
        return [r[0] for r in rows(log_csv(engine, f))[1:]]

    assert idx(LogFilter(kind="intake")) == ["0", "2", "3"]
    assert idx(LogFilter(member="us-ncmec")) == ["2"]
    assert idx(LogFilter(country="DE")) == ["0", "1"]
    assert idx(LogFilter(report_id="r-1")) == ["0", "1"]
    assert idx(LogFilter(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))) == [
        "1",
        "2",
    ]
    # detail is JSON, starting with "{": not a formula, kept as is
    assert everything[4][6] == '{"note":"=1+1"}'


def test_twelve_thousand_log_entries_every_one_once(engine: Engine) -> None:
    put_log(engine, [{"kind": "intake", "member": "de-eco"}] * 12_000)
    got = rows(log_csv(engine))
    assert [int(r[0]) for r in got[1:]] == list(range(12_000))
