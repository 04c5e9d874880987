"""store/cases.py on a real migrated database: open cases by URL, links and earlier outcomes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from exchange.domain import Classification, Outcome, ReportRole
from exchange.store import cases, reports, schema
from exchange.store.cases import CaseLink
from exchange.store.reports import Incoming
from tests.exchange.factories import T0, make_report, make_test_item
from tests.exchange.store.plans import sqlite_plans


def test_open_cases_are_found_by_url_key(engine: Engine) -> None:
    a, b = make_report(hashes=["a"]), make_report(hashes=["b"], url="https://other.example/x")
    with engine.begin() as conn:
        cases.open_cases(conn, [("c-a", a)], T0)
    with engine.connect() as conn:
        assert cases.open_by_url(conn, [a.url_key, b.url_key, a.url_key]) == {a.url_key: "c-a"}
        row = conn.execute(select(schema.cases)).one()
    assert (row.status, row.first_report_id, row.url) == ("open", a.id, a.url)


def test_a_case_not_open_is_not_found(engine: Engine) -> None:
    a = make_report()
    with engine.begin() as conn:
        cases.open_cases(conn, [("c-a", a)], T0)
        conn.execute(schema.cases.update().values(status="closed"))
    with engine.connect() as conn:
        assert cases.open_by_url(conn, [a.url_key]) == {}


def test_open_cases_are_looked_up_by_the_partial_index(engine: Engine) -> None:
    """A batch's URLs are searched in the index of open cases, not found by walking every open
    case (what SQLite's planner otherwise picks for a list of keys)."""
    keys = [make_report(hashes=[str(i)], url=f"https://x.example/{i}").url_key for i in range(50)]
    plans = sqlite_plans(engine, "cases", lambda c: cases.open_by_url(c, keys))
    for plan in plans:
        assert "USING INDEX uq_cases_open_url_key (url_key=?)" in plan, plan


def test_touch_moves_updated_at(engine: Engine) -> None:
    a = make_report()
    later = T0 + timedelta(minutes=5)
    with engine.begin() as conn:
        cases.open_cases(conn, [("c-a", a)], T0)
        cases.touch(conn, ["c-a", "c-a"], later)
        cases.touch(conn, [], later)  # nothing to do
    with engine.connect() as conn:
        row = conn.execute(select(schema.cases)).one()
    assert row.updated_at.replace(tzinfo=None) == later.replace(tzinfo=None)


def test_links_give_earlier_outcomes_and_members_in_order(engine: Engine) -> None:
    with engine.begin() as conn:
        cases.link(
            conn,
            [
                CaseLink("c-a", "r-1", "nl-eokm", Outcome.NEW_CASE, 1, T0),
                CaseLink("c-a", "r-2", "de-eco", Outcome.MERGED, 0, T0 + timedelta(seconds=1)),
            ],
        )
    with engine.connect() as conn:
        assert cases.earlier_outcomes(conn, ["r-1", "r-2", "r-3"]) == {
            "r-1": (Outcome.NEW_CASE, "c-a"),
            "r-2": (Outcome.MERGED, "c-a"),
        }
        assert cases.members(conn, ["c-a"]) == {"c-a": [("r-1", "nl-eokm"), ("r-2", "de-eco")]}


def test_partner_facts_collect_country_and_classifications(engine: Engine) -> None:
    r = make_report(
        items=[
            make_test_item("a"),
            make_test_item("b", classification=Classification.NATIONAL),
        ],
        country="NL",
    )
    with engine.begin() as conn:
        cases.open_cases(conn, [("c-a", r)], T0)
        reports.insert(conn, [Incoming(r, b"w", ReportRole.ORIGIN)], ["c-a"], [(None, None)], T0)
        cases.link(conn, [CaseLink("c-a", r.id, r.origin_member, Outcome.NEW_CASE, 2, T0)])
    with engine.connect() as conn:
        assert cases.partner_facts(conn, ["c-a"]) == {"c-a": ("NL", {"baseline", "national"})}
        header = cases.headers(conn, ["c-a"])["c-a"]
    assert (header.url, header.hosting_country) == (r.url, "NL")
