"""exchange/lifecycle/rules.py: every transition the rules allow, and every one they refuse.

Table-driven: each row is (the item's state, the step, what must come of it). Allowed steps
check the whole next state (stage, clock times, dispute, counters); refused steps check that
``TransitionRefused`` names the item and the rule, and — since states are frozen — that the
caller's state is left as it was. ``apply`` and ``fold`` are checked for all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from exchange.domain import Classification
from exchange.errors import TransitionRefused
from exchange.lifecycle import rules
from exchange.lifecycle.model import (
    NOT_ILLEGAL_REASONS,
    UNAVAILABLE_REASONS,
    ActionKind,
    Assessment,
    EventKind,
    ItemState,
    ReasonCode,
    Stage,
)
from tests.exchange.factories import T0
from tests.exchange.lifecycle.factories import (
    action,
    assessed,
    assessment,
    make_event,
    make_ref,
    make_state,
    withdrawal,
)

B, N, NI, D = (
    Classification.BASELINE,
    Classification.NATIONAL,
    Classification.NOT_ILLEGAL,
    Classification.DOUBTFUL,
)
AT = T0 + timedelta(hours=2)
EARLIER = T0 + timedelta(minutes=5)


def actioned(
    kind: ActionKind = ActionKind.REPORTED_TO_LEA, classification: Classification = B
) -> ItemState:
    """An item assessed ``classification`` with one (non-final) action taken."""
    return replace(
        assessed(classification),
        stage=Stage.ACTIONED,
        actions=1,
        last_action=kind,
        lea_at=EARLIER if kind is ActionKind.REPORTED_TO_LEA else None,
        lea_partner="de-bka" if kind is ActionKind.REPORTED_TO_LEA else "",
        host_notice_at=EARLIER if kind is ActionKind.REPORTED_TO_HOST else None,
        host_recipient="abuse@hoster.example" if kind is ActionKind.REPORTED_TO_HOST else "",
    )


def closed(stage: Stage) -> ItemState:
    return replace(assessed(B), stage=stage, actions=1, closed_at=EARLIER)


# -- assessment -------------------------------------------------------------------------------

# (origin's classification, the holder's) → disputed?
DISPUTES = [
    (B, B, False),
    (B, N, True),
    (B, NI, True),
    (N, N, False),
    (N, B, True),
    (NI, NI, False),
    (NI, B, True),
    (D, B, False),  # a doubtful origin has no classification to differ from
    (D, N, False),
    (D, NI, False),
]


@pytest.mark.parametrize(("origin", "holder", "disputed"), DISPUTES)
def test_a_first_assessment_is_recorded_and_a_differing_one_disputed(
    origin: Classification, holder: Classification, disputed: bool
) -> None:
    state = make_state(origin_classification=origin)
    the = assessment(holder, analyst_ref="an-7")
    after = rules.assess(state, the, AT)
    assert after == replace(
        state, stage=Stage.ASSESSED, assessment=the, disputed=disputed, assessed_at=AT
    )
    assert rules.disputed(origin, holder) is disputed
    # the origin's own classification is kept on the ref beside the holder's
    assert after.ref.origin_classification is origin


# (the held classification, the new one) → allowed? Only a national assessment is overruled.
REASSESSMENTS = [
    (N, B, None),
    (N, NI, None),
    (N, N, None),
    (B, N, "baseline is locked: nobody re-classifies it"),
    (B, NI, "baseline is locked: nobody re-classifies it"),
    (B, B, "baseline is locked: nobody re-classifies it"),
    (NI, B, "only a national assessment can be overruled"),
    (NI, N, "only a national assessment can be overruled"),
]


@pytest.mark.parametrize(("held", "new", "refusal"), REASSESSMENTS)
def test_only_a_national_assessment_is_overruled(
    held: Classification, new: Classification, refusal: str | None
) -> None:
    state = assessed(held, origin_classification=B)
    if refusal is not None:
        refused(lambda: rules.assess(state, assessment(new), AT), refusal)
        return
    after = rules.assess(state, assessment(new), AT)
    assert after.assessment == assessment(new)
    assert after.stage is Stage.ASSESSED
    # the takedown clock's "time to assessment" is the first assessment, not the overrule
    assert after.assessed_at == EARLIER
    # the dispute follows the current assessment
    assert after.disputed is (new is not B)


@pytest.mark.parametrize(
    "state",
    [actioned(ActionKind.REPORTED_TO_LEA), actioned(ActionKind.REPORTED_TO_HOST)],
    ids=["after-lea", "after-host"],
)
def test_no_reassessment_after_an_action(state: ItemState) -> None:
    national = replace(state, assessment=assessment(N))  # even a national one
    refused(lambda: rules.assess(national, assessment(B), AT), "no re-assessment after an action")


CLOSED_STAGES = [Stage.REMOVED, Stage.UNAVAILABLE, Stage.NOT_ILLEGAL, Stage.MOVED, Stage.WITHDRAWN]


@pytest.mark.parametrize("stage", CLOSED_STAGES)
def test_a_closed_item_takes_no_assessment_and_no_action(stage: Stage) -> None:
    state = closed(stage)
    assert state.closed
    refused(lambda: rules.assess(state, assessment(B), AT), f"closed ({stage}); no further")
    for kind in ActionKind:
        reason = ReasonCode.SITE_DOWN if kind is ActionKind.UNAVAILABLE else None
        refused(lambda k=kind, r=reason: rules.act(state, action(k, r), AT), "closed")


# -- actions ------------------------------------------------------------------------------------

# (state, the action, the fields of the next state that change)
ALLOWED_ACTIONS: list[tuple[str, ItemState, object, dict[str, object]]] = [
    (
        "lea-on-baseline",
        assessed(B),
        action(ActionKind.REPORTED_TO_LEA),
        {"stage": Stage.ACTIONED, "lea_at": AT, "lea_partner": "de-bka"},
    ),
    (
        "lea-on-national",
        assessed(N),
        action(ActionKind.REPORTED_TO_LEA, partner="de-lka"),
        {"stage": Stage.ACTIONED, "lea_at": AT, "lea_partner": "de-lka"},
    ),
    (
        "lea-again-keeps-the-first-time-and-partner",
        actioned(ActionKind.REPORTED_TO_LEA),
        action(ActionKind.REPORTED_TO_LEA, partner="de-lka"),
        {"stage": Stage.ACTIONED},
    ),
    (
        "host-notice",
        assessed(B),
        action(ActionKind.REPORTED_TO_HOST),
        {"stage": Stage.ACTIONED, "host_notice_at": AT, "host_recipient": "abuse@hoster.example"},
    ),
    (
        "host-after-lea",
        actioned(ActionKind.REPORTED_TO_LEA),
        action(ActionKind.REPORTED_TO_HOST),
        {"stage": Stage.ACTIONED, "host_notice_at": AT, "host_recipient": "abuse@hoster.example"},
    ),
    (
        "removed-after-notice",
        actioned(ActionKind.REPORTED_TO_HOST),
        action(ActionKind.REMOVED),
        {"stage": Stage.REMOVED, "closed_at": AT},
    ),
    (
        "removed-straight-after-assessment",
        assessed(N),
        action(ActionKind.REMOVED),
        {"stage": Stage.REMOVED, "closed_at": AT},
    ),
    (
        "unavailable-unassessed",
        make_state(),
        action(ActionKind.UNAVAILABLE, ReasonCode.CONTENT_NOT_FOUND),
        {"stage": Stage.UNAVAILABLE, "closed_at": AT, "close_reason": ReasonCode.CONTENT_NOT_FOUND},
    ),
    (
        "unavailable-after-lea",
        actioned(ActionKind.REPORTED_TO_LEA),
        action(ActionKind.UNAVAILABLE, ReasonCode.SITE_DOWN),
        {"stage": Stage.UNAVAILABLE, "closed_at": AT, "close_reason": ReasonCode.SITE_DOWN},
    ),
    (
        "not-illegal-unassessed",
        make_state(),
        action(ActionKind.NOT_ILLEGAL, ReasonCode.ADULT_PORNOGRAPHY),
        {"stage": Stage.NOT_ILLEGAL, "closed_at": AT, "close_reason": ReasonCode.ADULT_PORNOGRAPHY},
    ),
    (
        "not-illegal-assessed-not-illegal",
        assessed(NI),
        action(ActionKind.NOT_ILLEGAL, ReasonCode.DOES_NOT_MEET_THRESHOLD),
        {
            "stage": Stage.NOT_ILLEGAL,
            "closed_at": AT,
            "close_reason": ReasonCode.DOES_NOT_MEET_THRESHOLD,
        },
    ),
    (
        "moved-unassessed",
        make_state(),
        action(ActionKind.MOVED),
        {
            "stage": Stage.MOVED,
            "closed_at": AT,
            "moved_to_country": "RO",
            "moved_to_member": "ro-safernet",
        },
    ),
    (
        "moved-after-lea",
        actioned(ActionKind.REPORTED_TO_LEA),
        action(ActionKind.MOVED, moved_to_country="JP", moved_to_member="us-ncmec"),
        {
            "stage": Stage.MOVED,
            "closed_at": AT,
            "moved_to_country": "JP",
            "moved_to_member": "us-ncmec",
        },
    ),
]


@pytest.mark.parametrize(
    ("state", "the_action", "changes"),
    [row[1:] for row in ALLOWED_ACTIONS],
    ids=[row[0] for row in ALLOWED_ACTIONS],
)
def test_allowed_actions(state: ItemState, the_action: object, changes: dict[str, object]) -> None:
    after = rules.act(state, the_action, AT)  # type: ignore[arg-type]
    kind = the_action.kind  # type: ignore[attr-defined]
    expected = replace(state, actions=state.actions + 1, last_action=kind, **changes)  # type: ignore[arg-type]
    assert after == expected
    assert after.closed is (kind not in (ActionKind.REPORTED_TO_LEA, ActionKind.REPORTED_TO_HOST))
    # nothing an action does touches the assessment or the clock's start
    assert (after.assessment, after.assessed_at, after.clock_started) == (
        state.assessment,
        state.assessed_at,
        state.clock_started,
    )


NEEDS_ILLEGAL = [ActionKind.REPORTED_TO_LEA, ActionKind.REPORTED_TO_HOST, ActionKind.REMOVED]

# (state, the action, the rule the refusal names)
REFUSED_ACTIONS: list[tuple[str, ItemState, object, str]] = [
    *[
        (f"{k}-unassessed", make_state(), action(k), f"{k} needs the item assessed illegal")
        for k in NEEDS_ILLEGAL
    ],
    *[
        (f"{k}-not-illegal", assessed(NI), action(k), f"{k} needs the item assessed illegal")
        for k in NEEDS_ILLEGAL
    ],
    (
        "unavailable-without-reason",
        assessed(B),
        action(ActionKind.UNAVAILABLE),
        "unavailable takes one of",
    ),
    *[
        (
            f"unavailable-{r}",
            assessed(B),
            action(ActionKind.UNAVAILABLE, r),
            "unavailable takes one of",
        )
        for r in sorted(NOT_ILLEGAL_REASONS)
    ],
    (
        "not-illegal-without-reason",
        make_state(),
        action(ActionKind.NOT_ILLEGAL),
        "not_illegal takes",
    ),
    *[
        (
            f"not-illegal-{r}",
            make_state(),
            action(ActionKind.NOT_ILLEGAL, r),
            "not_illegal takes one of",
        )
        for r in sorted(UNAVAILABLE_REASONS)
    ],
    (
        "not-illegal-on-baseline",
        assessed(B),
        action(ActionKind.NOT_ILLEGAL, ReasonCode.ADULT_PORNOGRAPHY),
        "baseline is locked: it is never declared not illegal",
    ),
    (
        "not-illegal-on-baseline-after-lea",
        actioned(ActionKind.REPORTED_TO_LEA),
        action(ActionKind.NOT_ILLEGAL, ReasonCode.ADULT_PORNOGRAPHY),
        "baseline is locked: it is never declared not illegal",
    ),
    (
        "not-illegal-on-national",
        assessed(N),
        action(ActionKind.NOT_ILLEGAL, ReasonCode.ADULT_PORNOGRAPHY),
        "assessed national: overrule the assessment before not_illegal",
    ),
]


@pytest.mark.parametrize(
    ("state", "the_action", "rule"),
    [row[1:] for row in REFUSED_ACTIONS],
    ids=[row[0] for row in REFUSED_ACTIONS],
)
def test_refused_actions_name_their_rule(state: ItemState, the_action: object, rule: str) -> None:
    refused(lambda: rules.act(state, the_action, AT), rule)  # type: ignore[arg-type]


def test_the_reason_codes_split_into_two_closed_sets() -> None:
    assert set(ReasonCode) == UNAVAILABLE_REASONS | NOT_ILLEGAL_REASONS
    assert not UNAVAILABLE_REASONS & NOT_ILLEGAL_REASONS


def test_a_national_item_is_overruled_then_declared_not_illegal() -> None:
    state = assessed(N, origin_classification=N)
    overruled = rules.assess(state, assessment(NI), AT)
    assert overruled.disputed  # the origin said national
    after = rules.act(
        overruled, action(ActionKind.NOT_ILLEGAL, ReasonCode.AGE_NOT_DETERMINABLE), AT
    )
    assert (after.stage, after.close_reason) == (Stage.NOT_ILLEGAL, ReasonCode.AGE_NOT_DETERMINABLE)


# -- withdrawal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [make_state(), assessed(B), actioned(ActionKind.REPORTED_TO_LEA)],
    ids=["unassessed", "assessed", "actioned"],
)
def test_withdrawal_closes_an_open_item(state: ItemState) -> None:
    after = rules.withdraw(state, AT)
    assert after == replace(state, stage=Stage.WITHDRAWN, closed_at=AT)
    assert after.closed


@pytest.mark.parametrize("stage", CLOSED_STAGES)
def test_withdrawal_leaves_a_closed_item_its_outcome(stage: Stage) -> None:
    state = closed(stage)
    assert rules.withdraw(state, AT) is state


# -- step, apply, fold --------------------------------------------------------------------------


def test_step_dispatches_on_the_event_kind() -> None:
    state = make_state()
    ref = (state.ref,)
    assert rules.step(state, make_event(assessment(B), refs=ref, at=AT)) == rules.assess(
        state, assessment(B), AT
    )
    lea = rules.assess(state, assessment(B), AT)
    assert rules.step(lea, make_event(action(ActionKind.REMOVED), refs=ref, at=AT)).stage is (
        Stage.REMOVED
    )
    confirmed = make_event(withdrawal(), refs=ref, at=AT, kind=EventKind.WITHDRAWN)
    assert rules.step(state, confirmed).stage is Stage.WITHDRAWN
    # the origin's request changes nothing until the holder confirms it
    asked = make_event(withdrawal(), refs=ref, at=AT, kind=EventKind.WITHDRAWAL, member="nl-eokm")
    assert rules.step(state, asked) is state


def two_items() -> dict[tuple[str, int], ItemState]:
    first, second = make_state(0), assessed(B)
    second = replace(second, ref=make_ref(1))
    return {first.ref.key: first, second.ref.key: second}


def test_apply_steps_every_named_item() -> None:
    states = two_items()
    refs = tuple(s.ref for s in states.values())
    out = rules.apply(
        states, make_event(action(ActionKind.UNAVAILABLE, ReasonCode.SITE_DOWN), refs=refs, at=AT)
    )
    assert set(out) == set(states)
    assert {s.stage for s in out.values()} == {Stage.UNAVAILABLE}


def test_apply_is_all_or_nothing() -> None:
    states = two_items()
    before = dict(states)
    refs = tuple(s.ref for s in states.values())
    # item 0 is unassessed: law enforcement needs it assessed illegal, so item 1 is not stepped
    with pytest.raises(TransitionRefused) as info:
        rules.apply(states, make_event(action(ActionKind.REPORTED_TO_LEA), refs=refs, at=AT))
    assert f"{refs[0].report_id}#0" in info.value.message
    assert states == before


def test_apply_refuses_an_item_not_in_the_case() -> None:
    states = two_items()
    stranger = make_ref(5, seed="other")
    event = make_event(assessment(B), refs=(make_ref(0), stranger), at=AT)
    with pytest.raises(TransitionRefused) as info:
        rules.apply(states, event)
    assert f"item {stranger.report_id}#5 is not in case {event.case_id}" == info.value.message


def test_fold_gives_the_same_states_as_stepping_one_by_one() -> None:
    start = {make_state().ref.key: make_state()}
    ref = (make_ref(),)
    events = [
        make_event(assessment(N), refs=ref, sequence=1, at=T0 + timedelta(minutes=1)),
        make_event(assessment(B), refs=ref, sequence=2, at=T0 + timedelta(minutes=2)),
        make_event(
            action(ActionKind.REPORTED_TO_LEA), refs=ref, sequence=3, at=T0 + timedelta(minutes=3)
        ),
        make_event(
            action(ActionKind.REPORTED_TO_HOST), refs=ref, sequence=4, at=T0 + timedelta(minutes=4)
        ),
        make_event(action(ActionKind.REMOVED), refs=ref, sequence=5, at=T0 + timedelta(minutes=5)),
    ]
    final = rules.fold(start, events)[ref[0].key]
    assert final.stage is Stage.REMOVED
    assert final.assessment == Assessment(B)
    assert not final.disputed  # national was disputed, the overrule to baseline agrees
    assert (final.assessed_at, final.lea_at, final.host_notice_at, final.closed_at) == tuple(
        T0 + timedelta(minutes=m) for m in (1, 3, 4, 5)
    )
    assert (final.actions, final.last_action) == (3, ActionKind.REMOVED)
    assert rules.fold(start, []) == start


def test_fold_stops_at_a_refused_event() -> None:
    start = {make_state().ref.key: make_state()}
    ref = (make_ref(),)
    events = [
        make_event(assessment(B), refs=ref, sequence=1),
        make_event(assessment(N), refs=ref, sequence=2),  # baseline is locked
    ]
    with pytest.raises(TransitionRefused, match="baseline is locked"):
        rules.fold(start, events)


@pytest.mark.parametrize(
    ("stages", "closed_case"),
    [
        ([], False),  # a case with no items yet is not closed
        ([Stage.UNASSESSED], False),
        ([Stage.REMOVED], True),
        ([Stage.REMOVED, Stage.ACTIONED], False),
        ([Stage.REMOVED, Stage.WITHDRAWN, Stage.MOVED, Stage.NOT_ILLEGAL, Stage.UNAVAILABLE], True),
        ([Stage.ASSESSED, Stage.ASSESSED], False),
    ],
)
def test_a_case_closes_when_all_its_items_are_closed(
    stages: list[Stage], closed_case: bool
) -> None:
    states = [make_state(i, stage=s) for i, s in enumerate(stages)]
    assert rules.case_closed(states) is closed_case
    assert rules.case_closed(iter(states)) is closed_case  # any iterable, read once


# -- helpers ------------------------------------------------------------------------------------


def refused(step: Callable[[], ItemState], rule: str) -> None:
    """``step`` raises TransitionRefused naming the item and containing ``rule``."""
    with pytest.raises(TransitionRefused) as info:
        step()
    assert rule in info.value.message
    assert info.value.message.startswith(f"item {make_ref().report_id}#0: ")
    assert info.value.code == "transition-refused"
