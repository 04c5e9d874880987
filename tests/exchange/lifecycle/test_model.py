"""exchange/lifecycle/model.py: event ids, the closed stages, item refs and a case's openness."""

from __future__ import annotations

import hashlib
import string

import pytest

from exchange.domain import Classification
from exchange.lifecycle.model import (
    CLOSED_STAGES,
    FINAL_ACTIONS,
    ActionKind,
    CaseDetail,
    ItemRef,
    Stage,
    event_id_for,
    is_event_id,
)
from tests.exchange.factories import T0
from tests.exchange.lifecycle.factories import case_id, make_state, report_id


def test_an_event_id_is_implied_by_member_scope_and_sequence() -> None:
    event_id = event_id_for("de-eco", case_id(), 3)
    digest = hashlib.sha256(f"de-eco\x00{case_id()}\x003".encode()).hexdigest()
    assert event_id == "e-" + digest[:32]
    assert is_event_id(event_id)
    # the same three facts give the same id: a replay can never be a second event
    assert event_id_for("de-eco", case_id(), 3) == event_id


@pytest.mark.parametrize(
    ("member", "scope", "sequence"),
    [
        ("nl-eokm", case_id(), 3),  # another member
        ("de-eco", case_id("b"), 3),  # another case
        ("de-eco", case_id(), 4),  # another place
        ("de-eco", report_id(), 3),  # a withdrawal's scope is its report
    ],
)
def test_any_other_author_scope_or_place_is_another_id(
    member: str, scope: str, sequence: int
) -> None:
    assert event_id_for(member, scope, sequence) != event_id_for("de-eco", case_id(), 3)


def test_the_separator_keeps_fields_apart() -> None:
    # "ab" + "c" and "a" + "bc" must not collide
    assert event_id_for("ab", "c", 1) != event_id_for("a", "bc", 1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "e-",
        "e-" + "0" * 31,  # too short
        "e-" + "0" * 33,  # too long
        "E-" + "0" * 32,
        "r-" + "0" * 32,  # a report id
        "c-" + "0" * 32,  # a case id
        "e-" + "A" * 32,  # upper-case hex
        "e-" + "g" * 32,
        "e-" + "0" * 31 + " ",
        "e_" + "0" * 32,
        "e-" + "٠" * 32,  # Arabic-Indic zeros: digits to str.isdigit, not hex here
    ],
)
def test_is_event_id_refuses_every_other_form(text: str) -> None:
    assert not is_event_id(text)


def test_is_event_id_takes_every_lower_hex_digit() -> None:
    assert is_event_id("e-" + string.hexdigits[:16] * 2)


def test_the_closed_stages_are_the_final_ones() -> None:
    assert {s for s in Stage if s.closed} == CLOSED_STAGES
    assert set(FINAL_ACTIONS.values()) | {Stage.WITHDRAWN} == CLOSED_STAGES
    assert set(FINAL_ACTIONS) == set(ActionKind) - {
        ActionKind.REPORTED_TO_LEA,
        ActionKind.REPORTED_TO_HOST,
    }
    for stage in (Stage.UNASSESSED, Stage.ASSESSED, Stage.ACTIONED):
        assert not stage.closed
        assert not make_state(stage=stage).closed


def test_an_item_ref_is_its_report_and_index() -> None:
    a = ItemRef(report_id(), 1, "nl-eokm", Classification.BASELINE, T0)
    b = ItemRef(report_id(), 1, "us-ncmec", Classification.NATIONAL, None)
    assert a == b  # who sent it and how they classified it do not make another item
    assert a.key == (report_id(), 1)
    assert sorted([ItemRef(report_id(), 2), a]) == [a, ItemRef(report_id(), 2)]


def _detail(*stages: Stage) -> CaseDetail:
    return CaseDetail(
        id=case_id(),
        holder="de-eco",
        url="",
        hosting_country="DE",
        opened_at=T0,
        closed_at=None,
        reporting_members=("nl-eokm",),
        items=tuple(make_state(i, stage=s) for i, s in enumerate(stages)),
        timeline=(),
    )


def test_a_case_is_open_until_every_item_is_closed() -> None:
    assert _detail().open  # no items yet (a merge in flight): still open
    assert _detail(Stage.ASSESSED, Stage.REMOVED).open
    assert not _detail(Stage.REMOVED, Stage.WITHDRAWN).open
