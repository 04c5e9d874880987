"""The lifecycle's rules as a pure state machine: ``step(state, event)`` → the next state.

INHOPE's rules as hotlines apply them in ICCAM, each refusal naming its rule:

* only the member assigned to the case assesses or acts on it (``NotAssigned``);
* a closed item (removed, unavailable, not illegal, moved, withdrawn) takes no further step;
* ``baseline`` is locked — nobody re-classifies it, and it is never declared not illegal;
* only a ``national`` assessment can be overruled; no re-assessment after an action;
* law enforcement, the host and removal need an item assessed illegal; ``unavailable`` and
  ``not_illegal`` need a reason of their own kind; a national item is overruled before it is
  declared not illegal.

A classification that differs from the origin's (a ``doubtful`` origin has none to differ from)
is a dispute: the item is marked, the origin's classification kept on its ref. The same fold
runs at the holder (which checks before it stores) and at every receiver, so all of them agree
on each item's stage and clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from exchange.domain import Classification
from exchange.errors import TransitionRefused
from exchange.lifecycle.model import (
    FINAL_ACTIONS,
    NOT_ILLEGAL_REASONS,
    UNAVAILABLE_REASONS,
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    ItemState,
    Stage,
)

NEEDS_ILLEGAL = frozenset(
    {ActionKind.REPORTED_TO_LEA, ActionKind.REPORTED_TO_HOST, ActionKind.REMOVED}
)


def _refuse(state: ItemState, rule: str) -> TransitionRefused:
    ref = state.ref
    return TransitionRefused(f"item {ref.report_id}#{ref.index}: {rule}")


def disputed(origin: Classification, assessed: Classification) -> bool:
    """The holder disagrees with the origin (which said baseline, national or not illegal)."""
    return origin is not Classification.DOUBTFUL and origin is not assessed


def assess(state: ItemState, assessment: Assessment, at: datetime) -> ItemState:
    if state.closed:
        raise _refuse(state, f"the item is closed ({state.stage}); no further assessment")
    if state.actions:
        raise _refuse(state, "no re-assessment after an action")
    held = state.assessment
    if held is not None:
        if held.classification is Classification.BASELINE:
            raise _refuse(state, "baseline is locked: nobody re-classifies it")
        if held.classification is not Classification.NATIONAL:
            raise _refuse(state, "only a national assessment can be overruled")
    return replace(
        state,
        stage=Stage.ASSESSED,
        assessment=assessment,
        disputed=disputed(state.ref.origin_classification, assessment.classification),
        assessed_at=state.assessed_at or at,
    )


def _check_action(state: ItemState, action: Action) -> None:
    if state.closed:
        raise _refuse(state, f"the item is closed ({state.stage}); no further action")
    held = state.assessment
    kind = action.kind
    if kind in NEEDS_ILLEGAL and (held is None or not held.illegal):
        raise _refuse(state, f"{kind} needs the item assessed illegal (baseline or national)")
    if kind is ActionKind.UNAVAILABLE and action.reason not in UNAVAILABLE_REASONS:
        raise _refuse(state, f"unavailable takes one of {_names(UNAVAILABLE_REASONS)}")
    if kind is ActionKind.NOT_ILLEGAL:
        if action.reason not in NOT_ILLEGAL_REASONS:
            raise _refuse(state, f"not_illegal takes one of {_names(NOT_ILLEGAL_REASONS)}")
        if held is not None and held.classification is Classification.BASELINE:
            raise _refuse(state, "baseline is locked: it is never declared not illegal")
        if held is not None and held.classification is Classification.NATIONAL:
            raise _refuse(state, "assessed national: overrule the assessment before not_illegal")


def act(state: ItemState, action: Action, at: datetime) -> ItemState:
    _check_action(state, action)
    kind = action.kind
    changes: dict[str, object] = {"actions": state.actions + 1, "last_action": kind}
    if kind is ActionKind.REPORTED_TO_LEA:
        changes.update(stage=Stage.ACTIONED, lea_at=state.lea_at or at)
        changes["lea_partner"] = state.lea_partner or action.partner
    elif kind is ActionKind.REPORTED_TO_HOST:
        changes.update(stage=Stage.ACTIONED, host_notice_at=state.host_notice_at or at)
        changes["host_recipient"] = action.recipient
    else:
        changes.update(stage=FINAL_ACTIONS[kind], closed_at=at, close_reason=action.reason)
        if kind is ActionKind.MOVED:
            changes.update(
                moved_to_country=action.moved_to_country, moved_to_member=action.moved_to_member
            )
    return replace(state, **changes)  # type: ignore[arg-type]


def withdraw(state: ItemState, at: datetime) -> ItemState:
    """The origin withdrew the report: an open item closes; a closed one keeps its outcome."""
    if state.closed:
        return state
    return replace(state, stage=Stage.WITHDRAWN, closed_at=at)


def step(state: ItemState, event: CaseEvent) -> ItemState:
    """The item's state after ``event`` (which names it); raises ``TransitionRefused``."""
    body = event.body
    if event.kind is EventKind.ASSESSMENT:
        assert isinstance(body, Assessment)
        return assess(state, body, event.at)
    if event.kind is EventKind.ACTION:
        assert isinstance(body, Action)
        return act(state, body, event.at)
    if event.kind is EventKind.WITHDRAWN:
        return withdraw(state, event.at)
    return state  # a withdrawal request changes nothing until the holder confirms it


def apply(
    states: Mapping[tuple[str, int], ItemState], event: CaseEvent
) -> dict[tuple[str, int], ItemState]:
    """Every item the event names, stepped; all or nothing (the first refusal raises)."""
    out: dict[tuple[str, int], ItemState] = {}
    for ref in event.items:
        state = out.get(ref.key) or states.get(ref.key)
        if state is None:
            raise TransitionRefused(
                f"item {ref.report_id}#{ref.index} is not in case {event.case_id}"
            )
        out[ref.key] = step(state, event)
    return out


def fold(
    states: Mapping[tuple[str, int], ItemState], events: Iterable[CaseEvent]
) -> dict[tuple[str, int], ItemState]:
    """The states after ``events`` in order (a receiver's view of a case)."""
    current = dict(states)
    for event in events:
        current.update(apply(current, event))
    return current


def case_closed(states: Iterable[ItemState]) -> bool:
    """A case closes when all its items are closed (and it has any)."""
    items = list(states)
    return bool(items) and all(s.closed for s in items)


def _names(reasons: frozenset[object]) -> str:
    return ", ".join(sorted(str(r) for r in reasons))
