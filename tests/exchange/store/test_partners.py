"""store/partners.py: assignment is idempotent, taking hides and counts, acks are per partner."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from exchange.store import partners, schema
from exchange.store.partners import Assignment
from tests.exchange.factories import T0

LATER = T0 + timedelta(minutes=5)


def seed(engine: Engine, *assignments: Assignment) -> None:
    with engine.begin() as conn:
        partners.assign(conn, list(assignments), T0)


def test_assigning_twice_keeps_one_row(engine: Engine) -> None:
    seed(engine, Assignment("nl-police", "c-1"))
    seed(engine, Assignment("nl-police", "c-1"), Assignment("europol", "c-1"))
    with engine.connect() as conn:
        rows = conn.execute(select(schema.partner_cases.c.partner)).all()
    assert sorted(r.partner for r in rows) == ["europol", "nl-police"]


def test_taking_hides_cases_until_the_deadline_and_counts_pulls(engine: Engine) -> None:
    seed(engine, Assignment("nl-police", "c-1"), Assignment("nl-police", "c-2"))
    with engine.begin() as conn:
        taken = partners.take_visible(
            conn, "nl-police", after=0, limit=10, now=T0, hide_until=LATER
        )
        assert set(taken) == {"c-1", "c-2"}
        assert taken["c-1"] < taken["c-2"]  # cursors follow assignment order
        hidden = partners.take_visible(
            conn, "nl-police", after=0, limit=10, now=T0, hide_until=LATER
        )
        assert hidden == {}
        again = partners.take_visible(
            conn, "nl-police", after=0, limit=1, now=LATER, hide_until=LATER
        )
        assert list(again) == ["c-1"]
        pc = schema.partner_cases
        pulls = {r.case_id: r.pulls for r in conn.execute(select(pc.c.case_id, pc.c.pulls))}
    assert pulls == {"c-1": 2, "c-2": 1}


def test_a_partner_takes_only_its_own_cases_after_the_cursor(engine: Engine) -> None:
    seed(engine, Assignment("nl-police", "c-1"), Assignment("europol", "c-2"))
    with engine.begin() as conn:
        first = partners.take_visible(conn, "europol", after=0, limit=10, now=T0, hide_until=T0)
        assert list(first) == ["c-2"]
        past = partners.take_visible(
            conn, "europol", after=first["c-2"], limit=10, now=T0, hide_until=T0
        )
    assert past == {}


def test_acks_are_recorded_per_partner(engine: Engine) -> None:
    seed(engine, Assignment("nl-police", "c-1"), Assignment("europol", "c-1"))
    with engine.begin() as conn:
        assert partners.ack_state(conn, "nl-police", ["c-1", "c-9"]) == {"c-1": None}
        partners.mark_acked(conn, "nl-police", ["c-1"], LATER)
        partners.mark_acked(conn, "nl-police", [], LATER)  # nothing to do
        state = partners.ack_state(conn, "nl-police", ["c-1"])
        assert state["c-1"] is not None
        assert partners.ack_state(conn, "europol", ["c-1"]) == {"c-1": None}
        # An acknowledged case is never taken again.
        taken = partners.take_visible(
            conn, "nl-police", after=0, limit=10, now=LATER, hide_until=LATER
        )
    assert taken == {}
