"""Intake at nl-eokm: canonicalise, trace, decide, then store report + log + outbox atomically.

The tracer is real (static resolver, small GeoIP databases), the writer is real, and so is the
SQLite file; ``url_in(cc)`` is a URL the resolver places in country ``cc``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select

from exchange import cases
from exchange.domain import Classification, Sighting, Submission
from exchange.errors import ExchangeError
from exchange.intake import Intake, IntakeResult
from exchange.store import outbox, retention, schema
from exchange.store.writer import Writer
from exchange.wire.codec import anonymised_report, parse_report, report_from_proto
from routing.decision import DecisionReason
from routing.errors import InvalidUrl
from tests.dbs import allow_inserts, refuse_inserts
from tests.exchange.factories import (
    T0,
    FakeClock,
    case_of,
    content_hash,
    make_announcement,
    make_submission,
    report_place,
    table_counts,
    url_in,
    writer_held,
)


def rows(engine: Engine, table: Table, **where: object) -> list[Any]:
    """The committed rows of ``table`` (in key order) matching ``column=value`` filters."""
    stmt = select(table).order_by(*table.primary_key.columns)
    for name, value in where.items():
        stmt = stmt.where(table.c[name] == value)
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def log_kinds(engine: Engine) -> list[str]:
    return [r.kind for r in rows(engine, schema.routing_log)]


# -- local decisions open cases -----------------------------------------------------------------


def test_local_report_opens_a_case(
    intake: Intake,
    engine: Engine,
    wakes: list[set[str]],
    early_seals: list[tuple[set[str], list[str]]],
) -> None:
    result = intake.submit(make_submission(url_in("NL"), hashes=["a", "b"], client_ref="ref-1"))
    assert result.decision.local
    assert result.decision.member == "nl-eokm"
    assert result.decision.reason is DecisionReason.LOCAL
    assert result.decision.country == "NL"
    assert result.duplicate is False
    assert result.client_ref == "ref-1"
    assert result.canonical_url == url_in("NL")
    assert [s.known for s in result.items] == [None, None]

    case_id = case_of(engine, result.report_id)
    (case,) = rows(engine, schema.cases)
    assert case.id == case_id
    assert case.status == "open"
    assert case.first_report_id == result.report_id
    assert case.hosting_country == "NL"
    (member,) = rows(engine, schema.case_reports)
    assert member.reporting_member == "nl-eokm"
    assert member.outcome == "new-case"
    assert member.new_items == 2
    (report,) = rows(engine, schema.reports)
    assert report.role == "origin"
    assert report.case_id == case_id
    assert report.wire == result.wire
    assert rows(engine, schema.outbox) == []
    assert wakes == early_seals == []
    # New content is indexed and announced to the network.
    assert len(rows(engine, schema.hash_index, member="nl-eokm", case_id=case_id)) == 2
    assert len(rows(engine, schema.announcements)) == 2
    assert log_kinds(engine) == ["intake", "new-case", "announced"]


def test_the_wire_report_carries_trace_and_decision(intake: Intake) -> None:
    result = intake.submit(make_submission(url_in("DE")))
    msg = parse_report(result.wire)
    report = report_from_proto(msg)
    assert report.id == result.report_id
    assert report.origin_member == "nl-eokm"
    assert report.decision_member == "de-eco"
    assert report.received_at == T0
    assert msg.trace.host == "hosting-de.example"
    assert [a.address for a in msg.trace.addresses] == ["2a01:4f8::1"]
    assert msg.trace.addresses[0].country == "DE"
    assert msg.trace.addresses[0].asn == 24940
    assert msg.trace.country_database.database_type
    assert msg.decision.reason  # set, not UNSPECIFIED


# -- remote decisions go to the outbox ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "member", "reason", "country"),
    [
        (url_in("DE"), "de-eco", DecisionReason.SERVED_MEMBER, "DE"),
        (url_in("US"), "us-ncmec", DecisionReason.SERVED_MEMBER, "US"),
        (url_in("JP"), "us-ncmec", DecisionReason.ORPHAN_RULE, "JP"),
        (url_in("GB"), "inhope", DecisionReason.COORDINATOR_FALLBACK, "GB"),
        ("https://unknown-host.example/x", "inhope", DecisionReason.UNTRACEABLE, None),
    ],
)
def test_remote_decision_writes_one_outbox_row(
    intake: Intake,
    engine: Engine,
    wakes: list[set[str]],
    early_seals: list[tuple[set[str], list[str]]],
    url: str,
    member: str,
    reason: DecisionReason,
    country: str | None,
) -> None:
    result = intake.submit(make_submission(url, hashes=["a"]))
    assert result.decision.member == member
    assert result.decision.reason is reason
    assert not result.decision.local

    (row,) = rows(engine, schema.outbox)
    assert row.destination == member
    assert row.report_id == result.report_id
    assert row.batch_sequence is None
    (report,) = rows(engine, schema.reports)
    # Queued by the report's place, its bytes sent from its row, never copied (0018).
    assert (row.report_seq, row.payload) == (report.seq, None)
    assert sent_bytes(engine, member) == [result.wire]
    assert report.case_id is None
    assert report.decision_member == member
    assert rows(engine, schema.cases) == []
    # Its sender may seal it in the transaction that queued it, and wakes itself after COMMIT
    # unless it sealed every row (PeerSender.seal_early): intake wakes nobody itself.
    assert early_seals == [({member}, [result.report_id])]
    assert wakes == []

    (entry,) = rows(engine, schema.routing_log)
    assert entry.kind == "intake"
    assert entry.report_id == result.report_id
    assert entry.member == member
    assert entry.country == country
    assert f'"reason":"{reason.value}"' in entry.detail


def test_without_early_seals_intake_wakes_the_destinations_after_commit(
    make_intake: Callable[..., Intake], engine: Engine, wakes: list[set[str]]
) -> None:
    intake = make_intake(early=False)
    first = intake.submit(make_submission(url_in("DE"), hashes=["a"]))
    second = intake.submit(make_submission(url_in("US"), hashes=["b"]))
    assert wakes == [{first.decision.member}, {second.decision.member}]
    assert {r.destination for r in rows(engine, schema.outbox)} == {"de-eco", "us-ncmec"}


def test_outbox_row_is_in_the_same_transaction_as_the_report(
    intake: Intake, engine: Engine, writer: Writer, wakes: list[set[str]]
) -> None:
    with engine.begin() as conn:
        refuse_inserts(conn, "outbox", "outbox refused")
    before = table_counts(engine)
    # A constraint (here a trigger) refusing the row is a conflict, not an outage.
    with pytest.raises(ExchangeError, match="outbox refused") as refused:
        intake.submit(make_submission(url_in("DE")))
    assert refused.value.code == "storage-conflict"
    assert table_counts(engine) == before  # no report, no log entry
    assert wakes == []
    with engine.begin() as conn:
        allow_inserts(conn, "outbox")
    result = intake.submit(make_submission(url_in("DE")))
    (entry,) = rows(engine, schema.routing_log)
    assert entry.idx == 0
    assert entry.report_id == result.report_id
    assert len(rows(engine, schema.outbox)) == 1


# -- idempotency --------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["NL", "DE"])
def test_resubmission_is_a_duplicate_and_stores_nothing(
    intake: Intake, engine: Engine, clock: FakeClock, country: str
) -> None:
    first = intake.submit(make_submission(url_in(country), hashes=["a", "b"], client_ref="one"))
    before = table_counts(engine)
    clock.advance(60)
    again = intake.submit(make_submission(url_in(country), hashes=["a", "b"], client_ref="two"))
    assert again.duplicate is True
    assert again.report_id == first.report_id
    assert again.client_ref == "two"
    assert again.wire == first.wire
    assert again.decision.member == first.decision.member
    assert again.decision.local == first.decision.local
    assert again.items == first.items
    assert table_counts(engine) == before


def test_the_same_url_in_another_spelling_is_the_same_report(intake: Intake) -> None:
    first = intake.submit(make_submission("https://hosting-nl.example/a.jpg", hashes=["a"]))
    spelled = "HTTPS://Hosting-NL.example:443/x/../a.jpg#top"
    again = intake.submit(make_submission(spelled, hashes=["a"]))
    assert again.duplicate
    assert again.report_id == first.report_id


def test_other_items_make_another_report(intake: Intake, engine: Engine) -> None:
    first = intake.submit(make_submission(url_in("NL"), hashes=["a"]))
    other = intake.submit(make_submission(url_in("NL"), hashes=["a", "b"]))
    assert not other.duplicate
    assert other.report_id != first.report_id
    # Same URL at the responsible node: merged into the open case.
    members = {m.report_id: (m.outcome, m.new_items) for m in rows(engine, schema.case_reports)}
    assert members == {first.report_id: ("new-case", 1), other.report_id: ("merged", 1)}


def test_identical_submissions_in_one_batch(intake: Intake, engine: Engine, writer: Writer) -> None:
    submission = make_submission(url_in("NL"), hashes=["a"])
    commits = writer.commits
    with writer_held(writer):
        f1 = intake.submit_prepared(intake.prepare(submission))
        f2 = intake.submit_prepared(intake.prepare(submission))
    r1, r2 = f1.result(10), f2.result(10)
    assert writer.commits == commits + 2  # the holding job, then both in one transaction
    assert r1.report_id == r2.report_id
    assert (r1.duplicate, r2.duplicate) == (False, True)
    assert len(rows(engine, schema.reports)) == 1
    assert len(rows(engine, schema.case_reports)) == 1
    assert log_kinds(engine).count("intake") == 1


def test_concurrent_submissions_share_one_commit(
    intake: Intake, engine: Engine, writer: Writer
) -> None:
    commits = writer.commits
    countries = ["NL", "DE", "US", "JP", "GB"]
    with writer_held(writer):
        futures = [
            intake.submit_prepared(
                intake.prepare(make_submission(url_in(countries[i % 5], f"/{i}"), hashes=[str(i)]))
            )
            for i in range(40)
        ]
    results: list[IntakeResult] = [f.result(10) for f in futures]
    assert writer.commits == commits + 2
    assert len({r.report_id for r in results}) == 40
    assert len(rows(engine, schema.reports)) == 40
    assert len(rows(engine, schema.outbox)) == 32
    assert len(rows(engine, schema.cases)) == 8


# -- known content ------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["NL", "DE"])
def test_announced_content_is_marked_known(
    intake: Intake, engine: Engine, writer: Writer, country: str
) -> None:
    seen = make_announcement(
        "a",
        member="us-ncmec",
        case_id="c-" + "7" * 32,
        classification=Classification.NATIONAL,
        first_seen=T0 - timedelta(days=3),
        report_id="r-" + "7" * 32,
    )
    writer.execute(lambda tx: cases.record_announcements(tx, [seen]))
    result = intake.submit(make_submission(url_in(country), hashes=["b", "a"]))
    sighting = Sighting(
        seen.member, seen.case_id, seen.classification, seen.first_seen, seen.report_id
    )
    assert [s.known for s in result.items] == [None, sighting]
    items = rows(engine, schema.items, report_seq=report_place(engine, result.report_id))
    assert [i.known_member for i in items] == [None, "us-ncmec"]
    assert items[1].known_case == "c-" + "7" * 32
    assert items[1].known_classification == "national"
    assert items[1].known_first_seen == T0 - timedelta(days=3)
    # The first sighting stays the network's: the index entry is not taken over.
    (index,) = rows(engine, schema.hash_index, hex=content_hash("a").hex)
    assert index.member == "us-ncmec"
    # A duplicate answers with the same marks.
    assert intake.submit(make_submission(url_in(country), hashes=["b", "a"])).items == result.items


def test_content_first_seen_here_is_known_to_the_next_report(
    intake: Intake, engine: Engine
) -> None:
    first = intake.submit(make_submission(url_in("NL", "/one"), hashes=["a"]))
    second = intake.submit(make_submission(url_in("NL", "/two"), hashes=["a"]))
    (status,) = second.items
    assert status.known is not None
    assert status.known.member == "nl-eokm"
    assert status.known.report_id == first.report_id
    assert status.known.case_id == case_of(engine, first.report_id)


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("javascript:alert(1)", "scheme-not-allowed"),
        ("", "url-empty"),
        ("not a url", "url-unparseable"),
        ("file:///etc/passwd", "scheme-not-allowed"),
    ],
)
def test_bad_url_stores_nothing(
    intake: Intake, engine: Engine, wakes: list[set[str]], url: str, code: str
) -> None:
    before = table_counts(engine)
    with pytest.raises(InvalidUrl) as info:
        intake.submit(make_submission(url))
    assert info.value.code == code
    assert table_counts(engine) == before
    assert wakes == []


def test_other_members_intake_is_their_own(
    make_intake: Callable[..., Intake], engine: Engine
) -> None:
    de = make_intake("de-eco")
    result = de.submit(make_submission(url_in("DE"), hashes=["a"]))
    assert result.decision.local
    assert parse_report(result.wire).origin_member == "de-eco"
    nl = make_intake("nl-eokm").submit(make_submission(url_in("DE"), hashes=["a"]))
    assert nl.report_id != result.report_id


# -- the reporter's region, with consent ----------------------------------------------------------


def with_region(url: str, seed: str, region: str | None) -> Submission:
    return replace(make_submission(url, hashes=[seed]), reporter_region=region)


@pytest.mark.parametrize("country", ["NL", "DE"], ids=["local-case", "sent-to-de-eco"])
def test_a_consented_region_stays_in_the_report_row_only(
    intake: Intake, engine: Engine, country: str
) -> None:
    url = url_in(country, "/region.jpg")
    plain = intake.prepare(with_region(url, "region", None))
    regional = intake.prepare(with_region(url, "region", "NL-NH"))
    # the wire report — what is signed, sent, announced and served — is the same byte for byte
    assert regional.wire == plain.wire
    assert b"NL-NH" not in regional.wire

    result = intake.submit(with_region(url, "region", "NL-NH"))
    assert result.wire == plain.wire
    (report,) = rows(engine, schema.reports)
    assert report.reporter_region == "NL-NH"
    assert report.wire == plain.wire
    # nothing else the node keeps or sends holds it
    for table in (schema.outbox, schema.announcements, schema.routing_log, schema.cases):
        for row in rows(engine, table):
            assert "NL-NH" not in repr(tuple(row)), table.name
    if country == "DE":
        assert sent_bytes(engine, "de-eco") == [plain.wire]


def sent_bytes(engine: Engine, member: str) -> list[bytes]:
    """The bytes the sender to ``member`` would seal, as it reads them."""
    with engine.connect() as conn:
        return [p.payload for p in outbox.pending_reports(conn, member, limit=10)]


def test_no_region_without_it(intake: Intake, engine: Engine) -> None:
    intake.submit(with_region(url_in("NL", "/none.jpg"), "none", None))
    (report,) = rows(engine, schema.reports)
    assert report.reporter_region is None


def test_a_resubmission_keeps_the_first_region(intake: Intake, engine: Engine) -> None:
    url = url_in("NL", "/again.jpg")
    intake.submit(with_region(url, "again", "NL-NH"))
    again = intake.submit(with_region(url, "again", "NL-UT"))
    assert again.duplicate
    (report,) = rows(engine, schema.reports)
    assert report.reporter_region == "NL-NH"


def test_a_report_anonymised_under_retention_is_not_taken_again(
    intake: Intake, engine: Engine, writer: Writer
) -> None:
    old = make_submission(url_in("NL", "/retained.jpg"), hashes=["retained"])
    first = intake.submit(old)
    with engine.begin() as conn:
        (wire,) = conn.execute(
            select(schema.reports.c.wire).where(schema.reports.c.id == first.report_id)
        ).scalars()
        retention.anonymise_reports(conn, {first.report_id: anonymised_report(wire)}, T0)
    before = table_counts(engine)

    # the same submission again, coalesced with a new one: only the old one is refused
    with writer_held(writer):
        again = intake.submit_prepared(intake.prepare(old))
        other = intake.submit_prepared(intake.prepare(make_submission(url_in("NL", "/new.jpg"))))
    with pytest.raises(ExchangeError) as info:
        again.result(10)
    assert info.value.code == "report-anonymised"
    assert info.value.message.startswith(f"this node held the same report ({first.report_id}")
    assert "anonymised it on 2026-03-01 under the retention period" in info.value.message
    assert not other.result(10).duplicate
    after = table_counts(engine)
    assert after["reports"] == before["reports"] + 1
