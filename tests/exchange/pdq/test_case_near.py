"""A case's PDQ items as the case shows them (``CaseNear``), over a real database and the real
matcher: known content apart from near-known content, the case's own sightings never counted
(the hash's next sighting named instead), a note while the index is not open."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import OperationalError

from exchange import cases
from exchange.domain import ContentHash, HashAlgorithm, Report
from exchange.pdq.case_near import NOT_KEPT, OPENING, UNAVAILABLE, CaseNear
from exchange.pdq.codes import hex_distance
from exchange.pdq.matcher import MAX_NEAR, PdqMatcher
from exchange.store import hash_index
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
    accepted = writer.execute(lambda tx: cases.accept(tx, [inc], self_member="de-eco", now=T0))
    return accepted.results[0].case_id


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


def test_a_case_view_reads_the_sightings_of_its_nearest_hits_only(
    engine: Engine, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member plants 200 hashes near a case's item: the case view shows the MAX_NEAR nearest
    and reads the sightings of a bounded few hashes, not of every hit within the distance."""
    rng = random.Random(7)
    planted: set[str] = set()
    while len(planted) < 200:
        value = int(BASE, 16)
        for bit in rng.sample(range(256), rng.randint(1, 31)):
            value ^= 1 << bit
        planted.add(f"{value:064x}")
    flood = [
        make_announcement(ContentHash(HashAlgorithm.PDQ, hx, 90), member="be-childfocus")
        for hx in sorted(planted)
    ]
    writer.execute(lambda tx: cases.record_announcements(tx, flood))
    case, report = reported(writer, "/flooded.jpg", pdq(0))
    m = PdqMatcher(engine, max_distance=31, min_quality=50, path=None)
    m.open()
    read: list[str] = []
    real = hash_index.pdq_sightings

    def counting(conn: Connection, hexes: Sequence[str], q: int | None) -> Any:
        read.extend(hexes)
        return real(conn, hexes, q)

    monkeypatch.setattr(hash_index, "pdq_sightings", counting)
    (item,), _ = CaseNear(m, engine).of_case(case, keys(report))
    assert len(item.near) == MAX_NEAR
    nearest = sorted(hex_distance(hx, pdq(0).hex) for hx in planted)[:MAX_NEAR]
    assert [n.distance for n in item.near] == nearest  # ties in the index's order
    assert all(hex_distance(n.hex, pdq(0).hex) == n.distance for n in item.near)
    assert {n.hex for n in item.near} <= planted
    # The item's own hash (known content) once, then at most MAX_NEAR + 2 hits.
    assert len(read) <= 1 + MAX_NEAR + 2


def test_a_view_without_an_index_or_whose_index_failed_says_so(
    engine: Engine, writer: Writer, tmp_path: Path
) -> None:
    """``[web] pdq_index = false``: no index, the case points to ``ihx case show``. An index
    whose open failed (here its database cannot be opened) says "not available", not that it
    is still opening — it never will without a restart."""
    case, report = reported(writer, "/kept.jpg", pdq(0))
    assert CaseNear(None, engine).of_case(case, keys(report)) == ((), NOT_KEPT)
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'node.db'}")
    m = PdqMatcher(broken, max_distance=31, min_quality=50, path=None)
    near = CaseNear(m, engine)
    assert near.of_case(case, keys(report)) == ((), OPENING)
    with pytest.raises(OperationalError):
        m.open()
    assert near.of_case(case, keys(report)) == ((), UNAVAILABLE)
    plain, other = reported(writer, "/plain.jpg", ContentHash(HashAlgorithm.SHA256, "cd" * 32))
    assert CaseNear(None, engine).of_case(plain, keys(other)) == ((), "")


def test_an_items_own_quality_decides_as_at_intake(engine: Engine, writer: Writer) -> None:
    """The item came with quality 30 (below 50): intake did not match it, and neither does
    the case view — though another member sighted the same hash at quality 90."""
    writer.execute(
        lambda tx: cases.record_announcements(
            tx, [make_announcement(pdq(4, quality=90), member="be-childfocus")]
        )
    )
    reported(writer, "/near.jpg", pdq(0))
    case, report = reported(writer, "/low.jpg", pdq(4, quality=30))
    m = PdqMatcher(engine, max_distance=31, min_quality=50, path=None)
    m.open()
    (item,), _ = CaseNear(m, engine).of_case(case, keys(report))
    assert item.known is not None
    assert item.known.member == "be-childfocus"
    assert (item.near, item.not_matched) == ((), "pdq quality 30 below 50: not matched")
