"""What a person reads of a case: the takedown clock of an item, and one line per lifecycle step.

Shared by ``ihx case`` / ``ihx report`` (exchange/cli/casework.py), ``ihx demo`` and the web
view's case page, so all say the same thing the same way. A PDQ item's exact known content and
its near-known content are told apart in words: "known content" is the very hash sighted in
another case, "near" another hash within the threshold, with its distance. The takedown clock
starts at the holder's signed receipt (``clock_started``); the durations are INHOPE's headline
figures per item: time to assessment, to law enforcement, to the notice to the host, and to
removal. Pure functions of the domain views; no gRPC, no database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exchange.domain import ItemPdq, NearSighting, Sighting
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    ItemState,
    Move,
    Stage,
    TakeOver,
    Withdrawal,
)

CLOCK_STEPS = ("assessment", "lea", "host_notice", "removal")
CLOCK_LABELS = {
    "assessment": "to assessment",
    "lea": "to law enforcement",
    "host_notice": "to host notice",
    "removal": "to removal",
}


def takedown_clock(state: ItemState) -> dict[str, timedelta | None]:
    """Each step's time since the clock started (None: not reached, or no clock yet)."""
    removed = state.closed_at if state.stage is Stage.REMOVED else None
    reached = {
        "assessment": state.assessed_at,
        "lea": state.lea_at,
        "host_notice": state.host_notice_at,
        "removal": removed,
    }
    start = state.clock_started
    return {
        k: (at - start if at is not None and start is not None else None)
        for k, at in reached.items()
    }


def duration_text(span: timedelta | None) -> str:
    """A duration as a person reads it: ``0.25 s``, ``42 s``, ``12 min 5 s``, ``3 h 20 min``,
    ``2 d 4 h``; ``—`` when there is none."""
    if span is None:
        return "—"
    seconds = span.total_seconds()
    if seconds < 10:
        return f"{max(seconds, 0.0):.2f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def item_name(report_id: str, index: int) -> str:
    return f"{report_id}#{index}"


def assessment_text(a: Assessment) -> str:
    parts = [str(a.classification), f"age {a.age_group}", f"gender {a.gender}"]
    parts += [flag for flag, on in _flags(a) if on]
    if a.analyst_ref:
        parts.append(f"analyst {a.analyst_ref}")
    return ", ".join(parts)


def _flags(a: Assessment) -> list[tuple[str, bool]]:
    return [
        ("virtual", a.virtual),
        ("user-generated", a.user_generated),
        ("child modelling", a.child_modelling),
    ]


def action_text(a: Action) -> str:
    if a.kind is ActionKind.REPORTED_TO_LEA:
        text = f"reported to law enforcement ({a.partner})"
    elif a.kind is ActionKind.REPORTED_TO_HOST:
        text = f"notice sent to the host ({a.recipient})"
    elif a.kind is ActionKind.MOVED:
        text = f"moved to {a.moved_to_country} ({a.moved_to_member})"
    elif a.reason is not None:
        text = f"{a.kind.replace('_', ' ')}: {a.reason}"
    else:
        text = a.kind.replace("_", " ")
    return text + (f", ref {a.reference}" if a.reference else "")


def event_text(e: CaseEvent) -> str:
    """One step, in words: what was done (the member and time are shown beside it)."""
    body = e.body
    if isinstance(body, Assessment):
        return "assessed " + assessment_text(body)
    if isinstance(body, Action):
        return action_text(body)
    if isinstance(body, TakeOver):
        return f"taken over from {body.from_member}'s case {body.from_case} ({body.country})"
    assert isinstance(body, Withdrawal)
    said = "withdrawal asked" if e.kind is EventKind.WITHDRAWAL else "withdrawn"
    return f"{said}: {body.reason}" + (f" ({body.note})" if body.note else "")


def items_text(e: CaseEvent) -> str:
    """The items a step names: one by name, several by count."""
    if len(e.items) == 1:
        return item_name(e.items[0].report_id, e.items[0].index)
    return f"{len(e.items)} items"


def move_text(m: Move) -> str:
    """A move in words: from where to where, and who holds the items now."""
    route = f"{m.from_country}→{m.country}" if m.from_country else f"to {m.country}"
    if m.refusal:
        return f"moved {route}, refused by {m.to_member}: {m.refusal}"
    if m.to_case:
        return f"moved {route}, now held by {m.to_member} as case {m.to_case}"
    return f"moved {route}, not taken over by {m.to_member} yet"


def moved_from_text(m: Move) -> str:
    """Where a case held here came from."""
    return f"{m.from_member}, case {m.from_case} (moved to {m.country})"


def _second(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def sighting_text(s: Sighting) -> str:
    """A first sighting in the network: who, in which case, classified how, since when."""
    return f"{s.member}, case {s.case_id}, {s.classification}, first seen {_second(s.first_seen)}"


def known_text(p: ItemPdq) -> str:
    """The exact known content of a PDQ item (the same hash in another case), or that none."""
    if p.known is None:
        return "not sighted in another case"
    return sighting_text(p.known)


def near_text(n: NearSighting) -> str:
    """One near-known sighting: its distance first (nearest is listed first)."""
    return f"distance {n.distance}: {sighting_text(n.sighting)}"


def near_summary(p: ItemPdq) -> str:
    """What the near-known content of a PDQ item comes to, in one phrase."""
    if p.not_matched:
        return p.not_matched
    if not p.near:
        return "none within the threshold"
    return f"{len(p.near)} sighting(s), nearest first"
