"""Law-enforcement partners: assignment by rule, pull with visibility timeout, ack, isolation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from auth.manifest import Manifest
from exchange.domain import Classification
from exchange.intake import Intake
from exchange.partners import PartnerRule, Partners
from exchange.store import schema
from exchange.store.writer import Writer
from tests.exchange.factories import FakeClock, case_of, make_submission, url_in

TIMEOUT = timedelta(minutes=5)


@pytest.fixture
def partners(writer: Writer, manifest: Manifest, clock: FakeClock) -> Partners:
    rules = [
        PartnerRule(
            "nl-police",
            frozenset({"NL"}),
            frozenset({Classification.BASELINE, Classification.NATIONAL}),
        ),
        PartnerRule("europol", frozenset(), frozenset({Classification.BASELINE})),
    ]
    return Partners(
        self_member="nl-eokm",
        rules=rules,
        visibility_timeout=TIMEOUT,
        writer=writer,
        manifest=lambda: manifest,
        clock=clock,
    )


@pytest.fixture
def local_intake(
    partners: Partners, make_intake: Callable[..., Intake], tracer, manifest, writer, clock, wakes
) -> Intake:
    return Intake(
        self_member="nl-eokm",
        tracer=tracer,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        wake=wakes.append,
        on_cases=partners.assign,
    )


def assigned(engine: Engine) -> set[tuple[str, str]]:
    pc = schema.partner_cases
    with engine.connect() as conn:
        return {(r.partner, r.case_id) for r in conn.execute(select(pc.c.partner, pc.c.case_id))}


def test_rules_decide_which_partner_gets_a_case(local_intake: Intake, engine: Engine) -> None:
    baseline = local_intake.submit(make_submission(url_in("NL", "/1.jpg"), hashes=["a"]))
    doubtful = local_intake.submit(
        make_submission(
            url_in("NL", "/2.jpg"), hashes=["b"], classification=Classification.DOUBTFUL
        )
    )
    case_a = case_of(engine, baseline.report_id)
    assert assigned(engine) == {("nl-police", case_a), ("europol", case_a)}
    assert doubtful.report_id  # stored, but no partner receives a doubtful-only case


def test_pull_hides_cases_until_the_visibility_timeout(
    local_intake: Intake, partners: Partners, clock: FakeClock
) -> None:
    for i in range(3):
        local_intake.submit(make_submission(url_in("NL", f"/{i}.jpg"), hashes=[f"h{i}"]))
    first = partners.pull("nl-police", 0, 10)
    assert len(first) == 3
    assert [v.cursor for v in first] == sorted(v.cursor for v in first)
    assert partners.pull("nl-police", 0, 10) == []  # invisible while being worked on
    clock.advance(TIMEOUT.total_seconds() + 1)
    again = partners.pull("nl-police", 0, 10)
    assert {v.id for v in again} == {v.id for v in first}  # unacknowledged: they come again


def test_ack_removes_cases_and_pages_follow_the_cursor(
    local_intake: Intake, partners: Partners, clock: FakeClock
) -> None:
    for i in range(5):
        local_intake.submit(make_submission(url_in("NL", f"/{i}.jpg"), hashes=[f"h{i}"]))
    page1 = partners.pull("nl-police", 0, 2)
    page2 = partners.pull("nl-police", page1[-1].cursor, 2)
    assert len(page1) == 2
    assert len(page2) == 2
    assert not {v.id for v in page1} & {v.id for v in page2}
    acked, unknown = partners.ack("nl-police", [v.id for v in page1] + ["c-nope"])
    assert (acked, unknown) == (2, ["c-nope"])
    clock.advance(TIMEOUT.total_seconds() + 1)
    rest = partners.pull("nl-police", 0, 10)
    # The three unacknowledged cases come again (visibility timeout passed); the acked never.
    assert len(rest) == 3
    assert {v.id for v in page2} <= {v.id for v in rest}
    assert not {v.id for v in rest} & {v.id for v in page1}


def test_a_partner_cannot_ack_or_see_another_partners_case(
    local_intake: Intake, partners: Partners
) -> None:
    local_intake.submit(
        make_submission(
            url_in("NL", "/n.jpg"), hashes=["n"], classification=Classification.NATIONAL
        )
    )
    (case,) = partners.pull("nl-police", 0, 10)
    assert partners.pull("europol", 0, 10) == []  # national-only: not europol's
    acked, unknown = partners.ack("europol", [case.id])
    assert (acked, unknown) == (0, [case.id])  # answered exactly like an unknown id


def test_every_pull_is_recorded_in_the_routing_log(
    local_intake: Intake, partners: Partners, engine: Engine
) -> None:
    local_intake.submit(make_submission(url_in("NL", "/p.jpg"), hashes=["p"]))
    (case,) = partners.pull("nl-police", 0, 10)
    log_t = schema.routing_log
    with engine.connect() as conn:
        pulled = conn.execute(select(log_t).where(log_t.c.kind == "pulled")).all()
    assert len(pulled) == 1
    assert pulled[0].member == "nl-police"
    assert case.id in pulled[0].detail


def test_case_view_carries_the_report_wire_and_members(
    local_intake: Intake, partners: Partners
) -> None:
    result = local_intake.submit(make_submission(url_in("NL", "/v.jpg"), hashes=["v"]))
    (case,) = partners.pull("nl-police", 0, 10)
    assert case.reporting_members == ("nl-eokm",)
    assert case.reports[0].report_id == result.report_id
    assert case.reports[0].wire == result.wire
    assert case.hosting_country == "NL"


def test_an_ack_of_ids_in_no_case_form_answers_unknown_without_a_query(
    local_intake: Intake, partners: Partners
) -> None:
    local_intake.submit(make_submission(url_in("NL", "/form.jpg"), hashes=["form"]))
    (case,) = partners.pull("nl-police", 0, 10)
    # A NUL is refused by PostgreSQL in any text parameter: such ids never reach the database.
    weird = ["c-\x00", "'; DROP TABLE partner_cases; --", "x" * 500]
    acked, unknown = partners.ack("nl-police", [case.id, *weird])
    assert (acked, sorted(unknown)) == (1, sorted(weird))
