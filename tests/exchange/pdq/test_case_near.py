"""A case's PDQ items as the case shows them (``CaseNear``), over a real database and the real
matcher: known content apart from near-known content, the case's own sightings never counted
(the hash's next sighting named instead), a note while the index is not open."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from exchange import cases
from exchange.domain import ContentHash, HashAlgorithm, Report, case_id_for
from exchange.pdq.case_near import OPENING, CaseNear
from exchange.pdq.matcher import PdqMatcher
from exchange.store.reports import Incoming
from exchange.store.writer import Writer
from tests.exchange.factories import (
    T0,
    make_announcement,
    make_report,
    make_test_item,
    report_wire,
    url_in,
)

BASE = "5a" * 32


def pdq(flips: int, quality: int | None = 90) -> ContentHash:
    value = int(BASE, 16)
    for i in range(flips):
        value ^= 1 << (7 * i % 256)
    return ContentHash(HashAlgorithm.PDQ, f"{value:064x}", quality)


def accept(writer: Writer, report: Report) -> str:
    inc = Incoming(report, report_wire(report), "received", sender="nl-eokm", sequence=1)
    writer.execute(lambda tx: cases.accept(tx, [inc], self_member="de-eco", now=T0))
    return case_id_for(report.id)


def reported(writer: Writer, path: str, *hashes: ContentHash) -> tuple[str, Report]:
    items = [make_test_item(h) for h in hashes]
    report = make_report(url=url_in("DE", path), items=items)
    return accept(writer, report), report


def keys(report: Report) -> Sequence[tuple[str, int]]:
    return [(report.id, i) for i in range(len(report.items))]


def test_known_apart_from_near_and_never_the_case_itself(engine: Engine, writer: Writer) -> None:
    case_a, _ = reported(writer, "/a.jpg", pdq(0))
    # Items 0 and 1 are 2 bits apart; item 2 is case A's very hash; item 3 has no quality.
    case_b, b = reported(writer, "/b.jpg", pdq(3), pdq(5), pdq(0), pdq(9, None))
    m = PdqMatcher(engine, max_distance=31, min_quality=50, path=None)
    near = CaseNear(m, engine)
    assert near.of_case(case_b, keys(b)) == ((), OPENING)
    m.open()

    items, note = near.of_case(case_b, keys(b))
    assert note == ""
    first, second, same, unknown = items
    assert [(p.report_id, p.index, p.hex) for p in items] == [
        (b.id, i, h.hex) for i, h in enumerate((pdq(3), pdq(5), pdq(0), pdq(9)))
    ]
    assert first.known is None
    assert [(n.hex, n.distance, n.sighting.case_id) for n in first.near] == [
        (pdq(0).hex, 3, case_a)  # not item 1 (2 bits away): that is the case's own
    ]
    assert [(n.distance, n.sighting.case_id) for n in second.near] == [(5, case_a)]
    assert same.known is not None
    assert same.known.case_id == case_a  # known content, not near
    assert same.near == ()  # pdq(3) and pdq(5) are its own case's
    assert (unknown.near, unknown.not_matched) == ((), "pdq quality unknown: not matched")

    # Another member sights item 1's hash later, in its own case: item 0 now has it as near,
    # that member's sighting named (the case's own first sighting passed over).
    writer.execute(
        lambda tx: cases.record_announcements(
            tx, [make_announcement(pdq(5), member="be-childfocus", case_id="c-" + "7" * 32)]
        )
    )
    (first, *_), _ = near.of_case(case_b, keys(b))
    assert [(n.distance, n.sighting.member) for n in first.near] == [
        (2, "be-childfocus"),
        (3, "de-eco"),
    ]


def test_a_case_without_a_pdq_item_needs_no_index(engine: Engine, writer: Writer) -> None:
    case, report = reported(writer, "/plain.jpg", ContentHash(HashAlgorithm.SHA256, "ab" * 32))
    near = CaseNear(PdqMatcher(engine, max_distance=31, min_quality=50, path=None), engine)
    assert near.of_case(case, keys(report)) == ((), "")
