"""Factories for the lifecycle tests: item refs, item states and events, deterministic.

Ids come from seeds (``report_id("a")`` is the same ``r-…`` in every run), the holder is de-eco
and the origin nl-eokm unless a test says otherwise, times count from ``factories.T0``. An
event built here carries the id ``event_id_for`` implies, so it passes every check a receiver
makes of ids; tests that need a broken event change one field with ``dataclasses.replace``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from exchange.domain import Classification, case_id_for
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    Body,
    CaseEvent,
    EventKind,
    ItemRef,
    ItemState,
    ReasonCode,
    Stage,
    Withdrawal,
    WithdrawalReason,
    event_id_for,
)
from tests.exchange.factories import T0

HOLDER = "de-eco"
ORIGIN = "nl-eokm"

__all__ = [
    "HOLDER",
    "ORIGIN",
    "action",
    "assessed",
    "assessment",
    "case_id",
    "make_event",
    "make_ref",
    "make_state",
    "report_id",
    "withdrawal",
]


def report_id(seed: str = "a") -> str:
    """A well-formed report id derived from ``seed``."""
    return "r-" + hashlib.sha256(f"report:{seed}".encode()).hexdigest()[:32]


def case_id(seed: str = "a") -> str:
    """The id of the case the report of ``seed`` opened."""
    return case_id_for(report_id(seed), T0)


def make_ref(
    index: int = 0,
    *,
    seed: str = "a",
    origin: str = ORIGIN,
    origin_classification: Classification = Classification.BASELINE,
    clock_started: datetime | None = T0,
) -> ItemRef:
    return ItemRef(report_id(seed), index, origin, origin_classification, clock_started)


def make_state(
    index: int = 0,
    *,
    seed: str = "a",
    origin_classification: Classification = Classification.BASELINE,
    holder: str = HOLDER,
    **changes: object,
) -> ItemState:
    """A fresh item (unassessed, clock started at T0), with ``changes`` applied."""
    ref = make_ref(index, seed=seed, origin_classification=origin_classification)
    state = ItemState(ref=ref, holder=holder, clock_started=ref.clock_started)
    return replace(state, **changes) if changes else state  # type: ignore[arg-type]


def assessment(
    classification: Classification = Classification.BASELINE, **fields: object
) -> Assessment:
    return Assessment(classification, **fields)  # type: ignore[arg-type]


def action(kind: ActionKind, reason: ReasonCode | None = None, **fields: object) -> Action:
    """An action with the fields its kind needs filled in (partner, recipient, country)."""
    defaults: dict[str, object] = {}
    if kind is ActionKind.REPORTED_TO_LEA:
        defaults["partner"] = "de-bka"
    elif kind is ActionKind.REPORTED_TO_HOST:
        defaults["recipient"] = "abuse@hoster.example"
    elif kind is ActionKind.MOVED:
        defaults.update(moved_to_country="RO", moved_to_member="ro-safernet")
    return Action(kind, reason, **{**defaults, **fields})  # type: ignore[arg-type]


def withdrawal(reason: WithdrawalReason = WithdrawalReason.MISREPORT, note: str = "") -> Withdrawal:
    return Withdrawal(reason, note)


def assessed(
    classification: Classification = Classification.BASELINE,
    *,
    origin_classification: Classification = Classification.BASELINE,
    at: datetime = T0 + timedelta(minutes=5),
    **changes: object,
) -> ItemState:
    """An item the holder assessed as ``classification``."""
    return make_state(
        origin_classification=origin_classification,
        stage=Stage.ASSESSED,
        assessment=Assessment(classification),
        assessed_at=at,
        disputed=origin_classification not in (Classification.DOUBTFUL, classification),
        **changes,
    )


_KIND_OF = {Assessment: EventKind.ASSESSMENT, Action: EventKind.ACTION}


def make_event(
    body: Body,
    *,
    refs: Sequence[ItemRef] | None = None,
    member: str = HOLDER,
    sequence: int = 1,
    at: datetime = T0 + timedelta(minutes=1),
    kind: EventKind | None = None,
    case: str | None = None,
) -> CaseEvent:
    """An event with the id its maker, scope and sequence imply.

    ``kind`` is needed only for a ``Withdrawal`` body: ``WITHDRAWN`` (the holder confirms) by
    default, ``WITHDRAWAL`` (the origin asks; its scope is the report and its sequence 1).
    """
    items = tuple(refs) if refs is not None else (make_ref(),)
    the_kind = kind or _KIND_OF.get(type(body), EventKind.WITHDRAWN)
    the_case = case if case is not None else case_id_for(items[0].report_id, T0)
    scope = items[0].report_id if the_kind is EventKind.WITHDRAWAL else the_case
    return CaseEvent(
        id=event_id_for(member, scope, sequence),
        case_id=the_case,
        member=member,
        sequence=sequence,
        at=at,
        items=items,
        kind=the_kind,
        body=body,
    )
