"""``exchange.client.report_files``: parsing report files line by line, streaming them in order."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Iterator

import pytest

from exchange.client.report_files import (
    Accepted,
    ImportFileError,
    ImportSummary,
    Refused,
    detect_format,
    iter_csv,
    iter_jsonl,
    run_import,
    submission_from_object,
)
from exchange.domain import AgeGroup, Classification, MediaType, SiteType, Submission
from ihx.v1 import intake_pb2 as ipb

SHA = "sha256:" + "ab" * 32


def jsonl(*lines: str | bytes) -> io.BytesIO:
    return io.BytesIO(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))


def record(**fields: object) -> str:
    base: dict[str, object] = {
        "url": "https://example.nl/",
        "items": [{"hashes": [SHA], "classification": "baseline"}],
    }
    base.update(fields)
    return json.dumps(base)


def test_a_full_record_becomes_a_submission() -> None:
    sub = submission_from_object(
        {
            "url": "https://example.nl/x",
            "site_type": "image_host",
            "commercial": True,
            "payment_methods": ["btc", "card"],
            "notes": "n",
            "items": [
                {
                    "hashes": [SHA.upper().replace("SHA256", "sha256"), "md5:" + "1" * 32],
                    "classification": "national",
                    "media_type": "video",
                    "age_group": "infant",
                }
            ],
        },
        client_ref="7",
    )
    assert sub.url == "https://example.nl/x"
    assert sub.client_ref == "7"
    assert sub.facts.site_type is SiteType.IMAGE_HOST
    assert sub.facts.commercial is True
    assert sub.facts.payment_methods == ("btc", "card")
    (item,) = sub.items
    assert item.classification is Classification.NATIONAL
    assert item.media_type is MediaType.VIDEO
    assert item.age_group is AgeGroup.INFANT
    assert [str(h) for h in item.hashes] == ["md5:" + "1" * 32, SHA]


def test_jsonl_yields_line_numbers_and_reasons() -> None:
    parsed = list(
        iter_jsonl(
            jsonl(
                b"\xef\xbb\xbf" + record().encode(),  # BOM on line 1 is tolerated
                "",
                "[1, 2]",
                record(items=[{"hashes": [SHA], "classification": "awful"}]),
                record(items=[]),
                record(commercial="yes"),
                '{"url": "https://a/", "url": "https://b/", "items": []}',
                b"\xff\xfe",
                record(items=[{"hashes": [SHA], "classification": "baseline", "extra": 1}]),
                record(notes="x" * 3000),
                record(items=[{"hashes": [SHA]}]),
            )
        )
    )
    assert [n for n, _ in parsed] == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    first = parsed[0][1]
    assert isinstance(first, Submission)
    assert first.client_ref == "1"
    reasons = [r for _, r in parsed[1:]]
    assert all(isinstance(r, str) for r in reasons)
    assert "expected a JSON object, got an array" in str(reasons[0])
    assert "items[0].classification: 'awful' is not one of baseline" in str(reasons[1])
    assert "at least one item" in str(reasons[2])
    assert "commercial: expected true or false" in str(reasons[3])
    assert "duplicate key 'url'" in str(reasons[4])
    assert "not UTF-8" in str(reasons[5])
    assert "items[0].extra: unknown field" in str(reasons[6])
    assert "notes: at most 2000 characters" in str(reasons[7])
    assert "items[0].classification: required" in str(reasons[8])


def test_jsonl_refuses_overlong_lines() -> None:
    huge = b'{"url": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    ((line, reason),) = list(iter_jsonl(jsonl(huge)))
    assert line == 1
    assert "longer than" in str(reason)


def test_csv_rows_with_line_numbers_and_multi_line_fields() -> None:
    data = (
        "URL,Classification,Hashes,notes\n"
        f'https://example.nl/a,baseline,{SHA},"one\ntwo"\n'
        "\n"
        "https://example.nl/b,baseline,sha256:12,\n"
        "https://example.nl/c,baseline\n"
        f"https://example.nl/d,doubtful,{SHA};md5:{'2' * 32},\n"
    )
    raw = data.encode() + f"https://example.nl/e,baseline,{SHA},".encode() + b"\xff\n"
    parsed = list(iter_csv(io.BytesIO(raw)))
    assert [n for n, _ in parsed] == [2, 5, 6, 7, 8]
    a = parsed[0][1]
    assert isinstance(a, Submission)
    assert a.facts.notes == "one\ntwo"
    assert a.client_ref == "2"
    assert "hashes[0]: a sha256 hash has 64 hex digits" in str(parsed[1][1])
    assert "expected 4 fields" in str(parsed[2][1])
    d = parsed[3][1]
    assert isinstance(d, Submission)
    assert len(d.items[0].hashes) == 2
    assert "notes: not UTF-8" in str(parsed[4][1])


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("url,classification,hashes,colour", "unknown column 'colour'"),
        ("url,classification", "required column missing: hashes"),
        ("url,url,classification,hashes", "appears twice"),
        ("", "empty"),
    ],
)
def test_csv_header_problems_fail_the_whole_file(header: str, fragment: str) -> None:
    with pytest.raises(ImportFileError, match=fragment):
        iter_csv(io.BytesIO(header.encode() + (b"\n" if header else b"")))


def test_format_from_the_file_name() -> None:
    assert detect_format("Reports.CSV") == "csv"
    assert detect_format("reports.jsonl") == "jsonl"
    assert detect_format("-") == "jsonl"


def _response(ref: str, *, error: str = "", duplicate: bool = False) -> ipb.SubmitReportResponse:
    r = ipb.SubmitReportResponse(client_ref=ref, duplicate=duplicate)
    if error:
        r.error_code, r.error = "invalid-url", error
    else:
        r.decision.member = "de-eco"
    return r


def test_run_import_orders_events_and_counts() -> None:
    def fake_submit_many(subs: Iterable[Submission]) -> Iterator[ipb.SubmitReportResponse]:
        # Like gRPC: the requests are consumed on another thread, ahead of the answers.
        taken: list[Submission] = []
        reader = threading.Thread(target=lambda: taken.extend(subs))
        reader.start()
        reader.join()
        for s in taken:
            if s.url.startswith("bad"):
                yield _response(s.client_ref, error="bad url")
            else:
                yield _response(s.client_ref, duplicate=s.url.endswith("dup"))

    records = list(
        iter_jsonl(
            jsonl(
                record(url="https://a/"),
                "nonsense",
                record(url="bad:"),
                record(url="https://b/dup"),
                "nonsense",
            )
        )
    )
    summary = ImportSummary()
    events = list(run_import(records, fake_submit_many, summary))
    assert [(type(e).__name__, e.line) for e in events] == [
        ("Accepted", 1),
        ("Refused", 2),
        ("Refused", 3),
        ("Accepted", 4),
        ("Refused", 5),
    ]
    refused = [e for e in events if isinstance(e, Refused)]
    assert [e.by_node for e in refused] == [False, True, False]
    assert isinstance(events[0], Accepted)
    assert (summary.read, summary.submitted, summary.new, summary.duplicates) == (5, 3, 1, 1)
    assert (summary.bad_lines, summary.refused_by_node, summary.refused) == (2, 1, 3)
    assert summary.destinations == {"de-eco": 2}


def test_run_import_reraises_a_reader_failure_instead_of_the_cancelled_call() -> None:
    def records() -> Iterator[tuple[int, Submission | str]]:
        yield 1, "bad"
        raise ImportFileError("line 2: not valid CSV: boom")

    class Cancelled(Exception):
        pass

    def fake_submit_many(subs: Iterable[Submission]) -> Iterator[ipb.SubmitReportResponse]:
        try:
            list(subs)
        except ImportFileError:
            raise Cancelled("the call was cancelled") from None
        yield from ()

    with pytest.raises(ImportFileError, match="boom"):
        list(run_import(records(), fake_submit_many, ImportSummary()))


# -- the reporter's region, with consent --------------------------------------------------------


def test_jsonl_records_take_a_region_only_with_consent() -> None:
    parsed = list(
        iter_jsonl(
            jsonl(
                record(reporter_region="NL-NH", region_consent=True),
                record(region_consent=True),
                record(),
                record(reporter_region="NL-NH"),
                record(reporter_region="NL-NH", region_consent=False),
                record(reporter_region="Noord-Holland", region_consent=True),
                record(reporter_region=7, region_consent=True),
                record(reporter_region="NL-NH", region_consent="yes"),
            )
        )
    )
    regions = [p.reporter_region if isinstance(p, Submission) else p for _, p in parsed]
    assert regions[:3] == ["NL-NH", None, None]
    assert "recorded only with the reporter's consent" in str(regions[3])
    assert "recorded only with the reporter's consent" in str(regions[4])
    assert "'Noord-Hollan' is not an ISO 3166-2 subdivision code" in str(regions[5])
    assert "reporter_region: expected a string, got a number" in str(regions[6])
    assert "region_consent: expected true or false, got a string" in str(regions[7])


def test_csv_rows_take_a_region_only_with_consent() -> None:
    data = (
        "url,classification,hashes,reporter_region,region_consent\n"
        f"https://example.nl/a,baseline,{SHA},NL-NH,true\n"
        f"https://example.nl/b,baseline,{SHA},,yes\n"
        f"https://example.nl/c,baseline,{SHA},,\n"
        f"https://example.nl/d,baseline,{SHA},NL-NH,\n"
        f"https://example.nl/e,baseline,{SHA},NL-NH,maybe\n"
        f"https://example.nl/f,baseline,{SHA},nl-nh,1\n"
    )
    parsed = list(iter_csv(io.BytesIO(data.encode())))
    regions = [p.reporter_region if isinstance(p, Submission) else p for _, p in parsed]
    assert regions[:3] == ["NL-NH", None, None]
    assert "recorded only with the reporter's consent" in str(regions[3])
    assert "region_consent: 'maybe' is not true or false" in str(regions[4])
    assert "'nl-nh' is not an ISO 3166-2 subdivision code" in str(regions[5])
