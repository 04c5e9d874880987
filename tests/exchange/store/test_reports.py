"""store/reports.py on a real migrated database: insert with marks, existing ids, stored answers."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, Engine, select

from exchange.domain import ContentHash, HashAlgorithm, Report, ReportRole
from exchange.store import reports, schema
from exchange.store.reports import Incoming
from exchange.trace_review import GeoCheck
from tests.exchange.factories import (
    T0,
    content_hash,
    make_announcement,
    make_report,
    report_wire,
)
from tests.exchange.store.plans import sqlite_plans

PDQ = HashAlgorithm.PDQ


def test_insert_stores_reports_items_hashes_and_marks(engine: Engine) -> None:
    report = make_report(hashes=["a", "b"])
    known = make_announcement("a", member="us-ncmec")
    inc = Incoming(report, report_wire(report), ReportRole.RECEIVED, sender="nl-eokm", sequence=3)
    with engine.begin() as conn:
        reports.insert(conn, [inc], ["c-1"], [(known, None)], T0)
    with engine.connect() as conn:
        row = conn.execute(select(schema.reports)).one()
        items = conn.execute(select(schema.items).order_by(schema.items.c.idx)).all()
        hashes = conn.execute(select(schema.item_hashes)).all()
    assert (row.id, row.role, row.case_id, row.envelope_sequence) == (
        report.id,
        "received",
        "c-1",
        3,
    )
    assert row.wire == inc.wire
    assert [i.known_member for i in items] == ["us-ncmec", None]
    assert len(hashes) == 2


def test_role_is_stored_as_its_text_and_geo_beside_it(engine: Engine) -> None:
    report = make_report()
    geo = GeoCheck(country="FR", agrees=False, reroute_to="fr-pointdecontact")
    inc = Incoming(report, b"w", ReportRole.ORIGIN, geo=geo)
    with engine.begin() as conn:
        reports.insert(conn, [inc], [None], [(None,)], T0)
    with engine.connect() as conn:
        row = conn.execute(select(schema.reports)).one()
    assert (row.role, row.geo_country, row.geo_agrees, row.reroute_to) == (
        "origin",
        "FR",
        False,
        "fr-pointdecontact",
    )


def test_existing_maps_held_ids_to_their_case(engine: Engine) -> None:
    a, b = make_report(hashes=["a"]), make_report(hashes=["b"])
    with engine.begin() as conn:
        reports.insert(
            conn,
            [Incoming(a, b"a", ReportRole.ORIGIN), Incoming(b, b"b", ReportRole.ORIGIN)],
            ["c-a", None],
            [(None,), (None,)],
            T0,
        )
    with engine.connect() as conn:
        assert reports.existing(conn, [a.id, b.id, "r-unknown", a.id]) == {a.id: "c-a", b.id: None}


def test_stored_answers_with_the_items_marks(engine: Engine) -> None:
    report = make_report(hashes=["a", "b"])
    known = replace(make_announcement("b", member="de-eco"), case_id="c-9")
    with engine.begin() as conn:
        reports.insert(
            conn, [Incoming(report, b"wire", ReportRole.ORIGIN)], [None], [(None, known)], T0
        )
    with engine.connect() as conn:
        got = reports.stored(conn, [report.id])[report.id]
        assert reports.stored(conn, []) == {}
    assert (got.url, got.wire) == (report.url, b"wire")
    assert got.items[0].known is None
    assert got.items[1].known == known.sighting()


def test_origins_name_the_envelope_a_report_came_in(engine: Engine) -> None:
    local, received = make_report(hashes=["a"]), make_report(hashes=["b"])
    with engine.begin() as conn:
        reports.insert(
            conn,
            [
                Incoming(local, b"l", ReportRole.ORIGIN),
                Incoming(received, b"r", ReportRole.RECEIVED, sender="de-eco", sequence=7),
            ],
            [None, None],
            [(None,), (None,)],
            T0,
        )
    with engine.connect() as conn:
        got = reports.origins(conn, [local.id, received.id])
    assert got[local.id] == reports.ReportOrigin(b"l", None, None)
    assert got[received.id] == reports.ReportOrigin(b"r", "de-eco", 7)


def test_region_counts_are_of_reports_entered_here_with_a_region(engine: Engine) -> None:
    def incoming(seed: str, region: str | None, role: ReportRole = ReportRole.ORIGIN) -> Incoming:
        report = make_report(hashes=[seed])
        return Incoming(report, report_wire(report), role, reporter_region=region)

    batch = [
        incoming("a", "NL-NH"),
        incoming("b", "NL-NH"),
        incoming("c", "NL-UT"),
        incoming("d", None),
        # a received report never has one; were a row to hold one, it is not this node's intake
        incoming("e", "DE-BY", ReportRole.RECEIVED),
    ]
    with engine.begin() as conn:
        assert reports.region_counts(conn) == {}
        reports.insert(conn, batch, [None] * len(batch), [(None,)] * len(batch), T0)
    with engine.connect() as conn:
        assert reports.region_counts(conn) == {"NL-NH": 2, "NL-UT": 1}


def _held(conn: Connection, report: Report, case_id: str | None) -> None:
    marks = [(None,) * len(report.items)]
    reports.insert(conn, [Incoming(report, b"w", ReportRole.RECEIVED)], [case_id], marks, T0)


def test_carried_elsewhere_names_the_hashes_another_live_report_in_a_case_carries(
    engine: Engine,
) -> None:
    shared, own, pdq = content_hash("shared"), content_hash("own"), content_hash("p", PDQ)
    gone, loose = content_hash("gone"), content_hash("loose")
    # A PDQ hash and a SHA-256 are both 64 hex digits: the same digits under another
    # algorithm are another hash, and only the PDQ one is carried elsewhere.
    sha_twin = content_hash("twin")
    pdq_twin = ContentHash(PDQ, sha_twin.hex)
    leaving = make_report(hashes=[shared, own, pdq, gone, loose, sha_twin])
    with engine.begin() as conn:
        _held(conn, leaving, "c-1")
        _held(conn, make_report(hashes=[shared], url="https://a.example/1"), "c-2")
        _held(conn, make_report(hashes=[pdq, pdq_twin], url="https://a.example/2"), "c-1")
        withdrawn = make_report(hashes=[gone], url="https://a.example/3")
        _held(conn, withdrawn, "c-3")
        reports.mark_withdrawn(conn, withdrawn.id, "error", T0)
        _held(conn, make_report(hashes=[loose], url="https://a.example/4"), None)  # no case
    asked = [shared, own, pdq, gone, loose, sha_twin]
    with engine.connect() as conn:
        assert reports.carried_elsewhere(conn, asked, leaving.id) == {shared, pdq}


def test_carried_elsewhere_searches_the_hash_index_per_algorithm(sqlite_engine: Engine) -> None:
    """A withdrawal a member sends runs this in the writer: a scan of every item hash held
    here would hold every other write up for as long as the node is large. SQLite's plan is
    what is checked, so on a SQLite file whatever database the suite runs on."""
    hashes = [content_hash(str(i)) for i in range(5)] + [content_hash("p", PDQ)]
    plans = sqlite_plans(
        sqlite_engine, "item_hashes", lambda c: reports.carried_elsewhere(c, hashes, "r-x")
    )
    assert len(plans) == 2  # one statement per algorithm asked
    for plan in plans:
        assert "USING INDEX ix_item_hashes_held_algorithm_hex (algorithm=? AND hex=?)" in plan, plan


def test_only_held_contents_hashes_are_marked_held(engine: Engine) -> None:
    """The partial index covers the hashes of reports in a case held here: a report sent on
    has none in it until it joins a case here (it came back by a move)."""
    in_case, sent_on = make_report(hashes=["a", "b"]), make_report(hashes=["c"])
    with engine.begin() as conn:
        _held(conn, in_case, "c-1")
        _held(conn, sent_on, None)

    def marks() -> dict[str, bool]:
        h = schema.item_hashes
        with engine.connect() as conn:
            rows = conn.execute(select(h.c.hex, h.c.held))
            return {r.hex: bool(r.held) for r in rows}

    a, b, c = (content_hash(s).hex for s in "abc")
    assert marks() == {a: True, b: True, c: False}
    with engine.begin() as conn:
        assert reports.carried_elsewhere(conn, [content_hash("c")], in_case.id) == set()
        reports.set_case(conn, sent_on.id, "c-2")
    assert marks() == {a: True, b: True, c: True}
    with engine.connect() as conn:
        assert reports.carried_elsewhere(conn, [content_hash("c")], in_case.id) == {
            content_hash("c")
        }
