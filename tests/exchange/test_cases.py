"""Cases at the responsible node (de-eco): open, merge by URL, idempotency, the hash index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, select, update

from exchange import cases
from exchange.domain import (
    Classification,
    HashAlgorithm,
    KnownContent,
    Outcome,
    Report,
    case_id_for,
)
from exchange.store import hash_index, schema
from exchange.store.reports import Incoming
from exchange.store.writer import Tx, Writer
from exchange.wire.codec import announcement_from_bytes
from tests.exchange.factories import (
    T0,
    content_hash,
    make_announcement,
    make_report,
    report_place,
    report_wire,
    table_counts,
)

ME = "de-eco"


def accept(
    writer: Writer, reports: Sequence[Report], *, now: datetime = T0, role: str = "received"
) -> cases.Accepted:
    incoming = [
        Incoming(r, report_wire(r), role, sender=r.origin_member, sequence=1, leaf_index=i)
        for i, r in enumerate(reports)
    ]
    return writer.execute(lambda tx: cases.accept(tx, incoming, self_member=ME, now=now))


def rows(engine: Engine, table: Table, **where: object) -> list[Any]:
    stmt = select(table)
    for name, value in where.items():
        stmt = stmt.where(table.c[name] == value)
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def test_first_report_opens_a_case(engine: Engine, writer: Writer) -> None:
    report = make_report(origin="nl-eokm", hashes=["a", "b"])
    (result,) = accept(writer, [report]).results
    assert result.outcome is Outcome.NEW_CASE
    assert result.case_id == case_id_for(report.id, T0)
    assert result.report_id == report.id
    assert result.index == 0
    (case,) = rows(engine, schema.cases)
    assert (case.id, case.url, case.url_key, case.status) == (
        result.case_id,
        report.url,
        report.url_key,
        "open",
    )
    assert case.hosting_country == "DE"
    (stored,) = rows(engine, schema.reports)
    assert stored.case_id == result.case_id
    assert stored.role == "received"
    assert stored.sender == "nl-eokm"
    assert len(rows(engine, schema.items, report_seq=report_place(engine, report.id))) == 2
    assert len(rows(engine, schema.item_hashes, report_seq=report_place(engine, report.id))) == 2


def test_a_second_origin_with_the_same_url_merges(engine: Engine, writer: Writer) -> None:
    nl = make_report(origin="nl-eokm", hashes=["a", "b"])
    first = accept(writer, [nl]).results[0]
    later = T0 + timedelta(minutes=5)
    us = make_report(origin="us-ncmec", hashes=["a", "c", "d"])
    assert us.url_key == nl.url_key
    (merged,) = accept(writer, [us], now=later).results
    assert merged.outcome is Outcome.MERGED
    assert merged.case_id == first.case_id

    members = {r.report_id: r for r in rows(engine, schema.case_reports)}
    assert set(members) == {nl.id, us.id}
    assert members[nl.id].reporting_member == "nl-eokm"
    assert members[nl.id].outcome == "new-case"
    assert members[nl.id].new_items == 2
    assert members[us.id].reporting_member == "us-ncmec"
    assert members[us.id].outcome == "merged"
    assert members[us.id].new_items == 2  # "a" was already in the case
    assert all(m.case_id == first.case_id for m in members.values())
    (case,) = rows(engine, schema.cases)
    assert case.opened_at == T0
    assert case.updated_at == later
    # The merged report's known item points at the first sighting, in this very case.
    items = rows(engine, schema.items, report_seq=report_place(engine, us.id))
    known = {i.idx: i.known_report for i in items}
    a_index = next(i for i, item in enumerate(us.items) if content_hash("a") in item.hashes)
    assert known[a_index] == nl.id
    assert sum(1 for v in known.values() if v is None) == 2


def test_two_origins_in_one_batch_make_one_case(engine: Engine, writer: Writer) -> None:
    nl = make_report(origin="nl-eokm", hashes=["a"])
    us = make_report(origin="us-ncmec", hashes=["a"])
    results = accept(writer, [nl, us]).results
    assert [r.outcome for r in results] == [Outcome.NEW_CASE, Outcome.MERGED]
    assert results[0].case_id == results[1].case_id
    assert len(rows(engine, schema.cases)) == 1
    reporting = {r.reporting_member for r in rows(engine, schema.case_reports)}
    assert reporting == {"nl-eokm", "us-ncmec"}


def test_another_url_opens_another_case(engine: Engine, writer: Writer) -> None:
    one = make_report(url="https://hosting-de.example/1", hashes=["a"])
    two = make_report(url="https://hosting-de.example/2", hashes=["a"])
    results = accept(writer, [one, two]).results
    assert [r.outcome for r in results] == [Outcome.NEW_CASE, Outcome.NEW_CASE]
    assert results[0].case_id != results[1].case_id


def test_cases_opened_later_have_ids_that_sort_after(engine: Engine, writer: Writer) -> None:
    """A new case's key is the largest yet, so it is written at the right edge of the indexes
    that lead with it, however random its report's id."""
    opened = []
    for i in range(20):
        report = make_report(url=f"https://hosting-de.example/{i}", hashes=[str(i)])
        (result,) = accept(writer, [report], now=T0 + timedelta(milliseconds=i)).results
        opened.append(result.case_id)
    assert sorted(opened) == opened
    with engine.connect() as conn:
        by_key = list(conn.execute(select(schema.cases.c.id).order_by(schema.cases.c.id)).scalars())
        by_opening = list(
            conn.execute(select(schema.cases.c.id).order_by(schema.cases.c.opened_at)).scalars()
        )
    assert by_key == opened == by_opening


def test_reports_whose_ids_share_80_bits_still_open_cases_of_their_own(
    engine: Engine, writer: Writer
) -> None:
    """Only a member grinding hashes gets two such ids; its batch must not fail on the key."""
    shared = "r-" + "ab" * 10
    one = make_report(url="https://hosting-de.example/1", hashes=["a"], report_id=shared + "0" * 12)
    two = make_report(url="https://hosting-de.example/2", hashes=["b"], report_id=shared + "1" * 12)
    assert case_id_for(one.id, T0) == case_id_for(two.id, T0)
    results = accept(writer, [one, two]).results
    assert [r.outcome for r in results] == [Outcome.NEW_CASE, Outcome.NEW_CASE]
    assert results[0].case_id == case_id_for(one.id, T0)
    assert results[1].case_id == case_id_for(two.id, T0 + timedelta(milliseconds=1))
    assert {c.id for c in rows(engine, schema.cases)} == {r.case_id for r in results}


def test_a_case_id_already_held_here_is_stepped_past_in_a_later_batch(
    engine: Engine, writer: Writer
) -> None:
    """The same millisecond in another job of the writer's group (or a clock that stands
    still) finds the id in the table, not in its own batch: it steps on all the same."""
    shared = "r-" + "cd" * 10
    reports = [
        make_report(url=f"https://hosting-de.example/{i}", hashes=[str(i)], report_id=shared + d)
        for i, d in enumerate(("0" * 12, "1" * 12, "2" * 12))
    ]
    inc = [
        Incoming(r, report_wire(r), "received", sender=r.origin_member, sequence=1)
        for r in reports[:2]
    ]

    def one_group(tx: Tx) -> list[str]:  # two jobs of one group: one transaction
        first = cases.accept(tx, inc[:1], self_member=ME, now=T0).results
        second = cases.accept(tx, inc[1:], self_member=ME, now=T0).results
        return [first[0].case_id, second[0].case_id]

    opened = writer.execute(one_group)
    (later,) = accept(writer, reports[2:]).results  # a later transaction, the same millisecond
    step = timedelta(milliseconds=1)
    assert opened == [case_id_for(reports[0].id, T0), case_id_for(reports[1].id, T0 + step)]
    assert later.case_id == case_id_for(reports[2].id, T0 + 2 * step)
    assert later.outcome is Outcome.NEW_CASE
    assert len(rows(engine, schema.cases)) == 3


def test_a_closed_case_is_not_merged_into(engine: Engine, writer: Writer) -> None:
    old = make_report(origin="nl-eokm", hashes=["a"])
    first = accept(writer, [old]).results[0]
    with engine.begin() as conn:
        conn.execute(update(schema.cases).values(status="closed"))
    new = make_report(origin="us-ncmec", hashes=["a"])
    (again,) = accept(writer, [new]).results
    assert again.outcome is Outcome.NEW_CASE
    assert again.case_id != first.case_id


def test_a_report_already_held_gets_its_earlier_outcome(engine: Engine, writer: Writer) -> None:
    nl = make_report(origin="nl-eokm", hashes=["a"])
    us = make_report(origin="us-ncmec", hashes=["b"])
    accept(writer, [nl])
    merged = accept(writer, [us]).results[0]
    before = table_counts(engine)
    replay = accept(writer, [us, nl], now=T0 + timedelta(hours=1)).results
    assert [(r.outcome, r.case_id) for r in replay] == [
        (Outcome.MERGED, merged.case_id),
        (Outcome.NEW_CASE, merged.case_id),
    ]
    assert [r.index for r in replay] == [0, 1]
    assert table_counts(engine) == before


def test_the_same_report_twice_in_one_batch(engine: Engine, writer: Writer) -> None:
    report = make_report(hashes=["a"])
    results = accept(writer, [report, report]).results
    assert [r.outcome for r in results] == [Outcome.NEW_CASE, Outcome.NEW_CASE]
    assert results[0].case_id == results[1].case_id
    assert [r.index for r in results] == [0, 1]
    assert len(rows(engine, schema.reports)) == 1
    assert len(rows(engine, schema.case_reports)) == 1


# -- the network hash index ---------------------------------------------------------------------


def test_new_content_is_indexed_and_announced(engine: Engine, writer: Writer) -> None:
    report = make_report(hashes=["a", "b"], received_at=T0 - timedelta(minutes=1))
    (result,) = accept(writer, [report]).results
    index = {r.hex: r for r in rows(engine, schema.hash_index)}
    assert set(index) == {content_hash("a").hex, content_hash("b").hex}
    for row in index.values():
        assert row.member == ME
        assert row.case_id == result.case_id
        assert row.report_id == report.id
        assert row.first_seen == report.received_at
    announced = [announcement_from_bytes(r.payload) for r in rows(engine, schema.announcements)]
    assert {k.hash for k in announced} == {content_hash("a"), content_hash("b")}
    assert {(k.member, k.case_id, k.report_id) for k in announced} == {
        (ME, result.case_id, report.id)
    }
    kinds = [r.kind for r in rows(engine, schema.routing_log)]
    assert kinds == ["new-case", "announced"]


def test_known_content_is_marked_and_not_announced_again(engine: Engine, writer: Writer) -> None:
    earlier = make_announcement(
        "a",
        member="us-ncmec",
        case_id="c-" + "5" * 32,
        classification=Classification.DOUBTFUL,
        first_seen=T0 - timedelta(days=1),
        report_id="r-" + "5" * 32,
    )
    writer.execute(lambda tx: cases.record_announcements(tx, [earlier]))
    report = make_report(hashes=["a", "b"])
    accepted = accept(writer, [report])
    marks = accepted.marks[report.id]
    by_hash = {item.hashes[0]: mark for item, mark in zip(report.items, marks, strict=True)}
    assert by_hash[content_hash("a")] == earlier
    assert by_hash[content_hash("b")] is None
    announced = [announcement_from_bytes(r.payload) for r in rows(engine, schema.announcements)]
    assert [k.hash for k in announced] == [content_hash("b")]
    (a_row,) = rows(engine, schema.hash_index, hex=content_hash("a").hex)
    assert a_row.member == "us-ncmec"
    # Known elsewhere, but new to this case.
    (member,) = rows(engine, schema.case_reports)
    assert member.new_items == 2


def test_earliest_announcement_wins(engine: Engine, writer: Writer) -> None:
    def record(first_seen: datetime, member: str) -> None:
        k = make_announcement("a", member=member, first_seen=first_seen)
        writer.execute(lambda tx: cases.record_announcements(tx, [k]))

    record(T0, "nl-eokm")
    record(T0 - timedelta(hours=1), "us-ncmec")
    record(T0 + timedelta(hours=1), "ro-safernet")
    # Each member keeps its own sighting; the first in the network is derived from them.
    assert {r.member for r in rows(engine, schema.hash_index)} == {
        "nl-eokm",
        "us-ncmec",
        "ro-safernet",
    }
    with engine.connect() as conn:
        first = hash_index.known_content(conn, [content_hash("a")])[content_hash("a")]
    assert first.member == "us-ncmec"
    assert first.first_seen == T0 - timedelta(hours=1)


def test_a_member_updates_only_its_own_sighting(engine: Engine, writer: Writer) -> None:
    def record(k: KnownContent) -> None:
        writer.execute(lambda tx: cases.record_announcements(tx, [k]))

    record(make_announcement("a", member="us-ncmec", first_seen=T0 - timedelta(days=2)))
    # nl-eokm claims an earlier time and another classification: only its own row changes.
    record(
        make_announcement(
            "a",
            member="nl-eokm",
            classification=Classification.NOT_ILLEGAL,
            first_seen=T0 - timedelta(days=3),
        )
    )
    by_member = {r.member: r for r in rows(engine, schema.hash_index)}
    assert by_member["us-ncmec"].first_seen == T0 - timedelta(days=2)
    assert by_member["us-ncmec"].classification == "baseline"
    # A later re-announcement keeps the earlier time but takes the new classification.
    record(make_announcement("a", member="nl-eokm", first_seen=T0))
    by_member = {r.member: r for r in rows(engine, schema.hash_index)}
    assert by_member["nl-eokm"].first_seen == T0 - timedelta(days=3)
    assert by_member["nl-eokm"].classification == "baseline"
    # Retracting removes the member's own sighting and nothing else.
    record(replace(make_announcement("a", member="nl-eokm"), retracted=True))
    assert {r.member for r in rows(engine, schema.hash_index)} == {"us-ncmec"}
    with engine.connect() as conn:
        first = hash_index.known_content(conn, [content_hash("a")])[content_hash("a")]
    assert first.member == "us-ncmec"


def test_known_content_lookup_respects_the_algorithm(writer: Writer, engine: Engine) -> None:
    sha = content_hash("a")
    pdq = type(sha)(HashAlgorithm.PDQ, sha.hex)  # same hex, other algorithm
    writer.execute(lambda tx: cases.record_announcements(tx, [make_announcement(pdq)]))
    with engine.connect() as conn:
        assert hash_index.known_content(conn, [sha]) == {}
        assert set(hash_index.known_content(conn, [sha, pdq])) == {pdq}
