"""The lifecycle's vocabulary as frozen dataclasses and closed enums — no gRPC, no SQL.

ICCAM's words, so hotlines recognise them: an item (one image, video or file of a report) is
*assessed* by the member that holds the case (classification, age group, gender, virtual,
user-generated, child modelling, an opaque analyst reference) and *actioned* (reported to law
enforcement, notice to the host, removed, unavailable or not illegal with a reason, moved).
Each step is a ``CaseEvent`` made by one member; the state of an item is the fold of its
events (``rules.fold``), the same at the holder, at every origin and at the coordinator.

An event's id is implied by who made it, where and its place: ``event_id_for(member, scope,
sequence)``, so a receiver recomputes it and a replay can never be a second event.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from exchange.domain import AgeGroup, Classification, ItemPdq

EVENT_ID_PREFIX = "e-"
MAX_REF = 128  # analyst references, notice recipients, message ids
MAX_NOTE = 1000  # withdrawal and feedback notes
MAX_ITEMS_PER_EVENT = 1000


class Gender(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    BOTH = "both"
    NOT_DETERMINED = "not_determined"


class ActionKind(enum.StrEnum):
    REPORTED_TO_LEA = "reported_to_lea"
    REPORTED_TO_HOST = "reported_to_host"
    REMOVED = "removed"
    UNAVAILABLE = "unavailable"
    NOT_ILLEGAL = "not_illegal"
    MOVED = "moved"


class ReasonCode(enum.StrEnum):
    # unavailable
    CONTENT_NOT_FOUND = "content_not_found"
    PASSWORD_PROTECTED = "password_protected"  # noqa: S105 (a reason code, not a secret)
    SITE_DOWN = "site_down"
    GEO_BLOCKED = "geo_blocked"
    # not illegal
    ADULT_PORNOGRAPHY = "adult_pornography"
    DOES_NOT_MEET_THRESHOLD = "does_not_meet_threshold"
    AGE_NOT_DETERMINABLE = "age_not_determinable"
    CHILD_MODELLING_LEGAL = "child_modelling_legal"
    NOT_CHILD_RELATED = "not_child_related"


UNAVAILABLE_REASONS = frozenset(
    {
        ReasonCode.CONTENT_NOT_FOUND,
        ReasonCode.PASSWORD_PROTECTED,
        ReasonCode.SITE_DOWN,
        ReasonCode.GEO_BLOCKED,
    }
)
NOT_ILLEGAL_REASONS = frozenset(set(ReasonCode) - UNAVAILABLE_REASONS)


class WithdrawalReason(enum.StrEnum):
    MISREPORT = "misreport"
    WRONG_URL = "wrong_url"
    DUPLICATE = "duplicate"
    OTHER = "other"


class Stage(enum.StrEnum):
    """Where an item stands. The last five are final: the item is closed."""

    UNASSESSED = "unassessed"
    ASSESSED = "assessed"
    ACTIONED = "actioned"  # law enforcement and/or the host told; still online
    REMOVED = "removed"
    UNAVAILABLE = "unavailable"
    NOT_ILLEGAL = "not_illegal"
    MOVED = "moved"
    WITHDRAWN = "withdrawn"

    @property
    def closed(self) -> bool:
        return self in CLOSED_STAGES


CLOSED_STAGES = frozenset(
    {Stage.REMOVED, Stage.UNAVAILABLE, Stage.NOT_ILLEGAL, Stage.MOVED, Stage.WITHDRAWN}
)
FINAL_ACTIONS = {
    ActionKind.REMOVED: Stage.REMOVED,
    ActionKind.UNAVAILABLE: Stage.UNAVAILABLE,
    ActionKind.NOT_ILLEGAL: Stage.NOT_ILLEGAL,
    ActionKind.MOVED: Stage.MOVED,
}


class Queue(enum.StrEnum):
    UNASSESSED = "unassessed"
    UNACTIONED = "unactioned"
    OVERDUE = "overdue"
    ORPHANED = "orphaned"
    RECENTLY_CLOSED = "recently_closed"
    DISPUTED = "disputed"
    NO_CONTACT = "no_contact"  # takedown: online, no abuse contact for its hoster
    CONFIRM_REMOVAL = "confirm_removal"  # takedown: re-checks found it gone, confirm it


class EventKind(enum.StrEnum):
    ASSESSMENT = "assessment"
    ACTION = "action"
    WITHDRAWAL = "withdrawal"  # the origin asks the holder
    WITHDRAWN = "withdrawn"  # the holder confirms to everyone
    TAKEN_OVER = "taken_over"  # the member a move named takes the moved items over


@dataclass(frozen=True, slots=True, order=True)
class ItemRef:
    """Item ``index`` of report ``report_id``, with the origin's own classification of it."""

    report_id: str
    index: int
    origin_member: str = field(default="", compare=False)
    origin_classification: Classification = field(default=Classification.DOUBTFUL, compare=False)
    clock_started: datetime | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.report_id, self.index)


@dataclass(frozen=True, slots=True)
class Assessment:
    classification: Classification
    age_group: AgeGroup = AgeGroup.UNKNOWN
    gender: Gender = Gender.NOT_DETERMINED
    virtual: bool = False
    user_generated: bool = False
    child_modelling: bool = False
    analyst_ref: str = ""

    @property
    def illegal(self) -> bool:
        return self.classification in (Classification.BASELINE, Classification.NATIONAL)


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    reason: ReasonCode | None = None
    partner: str = ""
    recipient: str = ""
    moved_to_country: str = ""
    moved_to_member: str = ""
    reference: str = ""
    analyst_ref: str = ""


@dataclass(frozen=True, slots=True)
class Withdrawal:
    reason: WithdrawalReason
    note: str = ""


@dataclass(frozen=True, slots=True)
class TakeOver:
    """The new holder's first step on items moved to it: which move it answers.

    Its scope is the move and the report (``take_over_scope``), so it is sequence 1 there and
    stands outside the case's own sequence of steps."""

    from_member: str
    from_case: str
    moved_event: str
    country: str


Body = Assessment | Action | Withdrawal | TakeOver


def take_over_scope(moved_event: str, report_id: str) -> str:
    """A take-over is one per move and report: its id is implied by both."""
    return f"{moved_event}/{report_id}"


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One step, made by ``member``; ``kind`` tells a withdrawal request from its confirmation
    (both carry a ``Withdrawal``)."""

    id: str
    case_id: str
    member: str
    sequence: int
    at: datetime
    items: tuple[ItemRef, ...]
    kind: EventKind
    body: Body


def event_id_for(member: str, scope: str, sequence: int) -> str:
    """The id implied by the event's author, its scope (case, or report for a withdrawal) and
    its place in that scope."""
    digest = hashlib.sha256(f"{member}\x00{scope}\x00{sequence}".encode()).hexdigest()
    return EVENT_ID_PREFIX + digest[:32]


_HEX = frozenset("0123456789abcdef")


def is_event_id(text: str) -> bool:
    """``e-`` and 32 lower-case hex digits: the form ``event_id_for`` gives."""
    return len(text) == 34 and text.startswith(EVENT_ID_PREFIX) and _HEX.issuperset(text[2:])


@dataclass(frozen=True, slots=True)
class ItemState:
    """One item's fold: stage, current assessment, dispute, and its takedown clock."""

    ref: ItemRef
    holder: str
    clock_started: datetime | None
    stage: Stage = Stage.UNASSESSED
    assessment: Assessment | None = None
    disputed: bool = False
    actions: int = 0
    last_action: ActionKind | None = None
    assessed_at: datetime | None = None
    lea_at: datetime | None = None
    lea_partner: str = ""
    host_notice_at: datetime | None = None
    host_recipient: str = ""
    closed_at: datetime | None = None
    close_reason: ReasonCode | None = None
    moved_to_country: str = ""
    moved_to_member: str = ""

    @property
    def closed(self) -> bool:
        return self.stage.closed


# -- what people read -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """An event as this node holds it: its place in this node's feed (``cursor``)."""

    cursor: int
    event: CaseEvent


@dataclass(frozen=True, slots=True)
class PartnerFeedback:
    """A law-enforcement partner's own feedback on a case assigned to it (audited)."""

    partner: str
    code: str  # received, investigating, evidence_preserved, …
    note: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Move:
    """Items moved from one holder to the member serving their new hosting country, as this
    node knows it: ``to_case`` is empty until the new holder took them over; ``items`` and
    ``timeline`` are the new holder's (shown in a report's status)."""

    from_member: str
    from_case: str
    country: str
    to_member: str
    to_case: str
    at: datetime | None
    from_country: str = ""
    items: tuple[ItemState, ...] = ()
    timeline: tuple[CaseEvent, ...] = ()
    refusal: str = ""  # the new holder refused the transfer (its reason, from its receipt)


@dataclass(frozen=True, slots=True)
class CaseDetail:
    """A case with every item's state and its timeline, as this node knows it (the holder
    also shows its partners' feedback)."""

    id: str
    holder: str
    url: str
    hosting_country: str | None
    opened_at: datetime | None
    closed_at: datetime | None
    reporting_members: tuple[str, ...]
    items: tuple[ItemState, ...]
    timeline: tuple[CaseEvent, ...]
    decision_reason: str = ""
    anonymised: bool = False
    feedback: tuple[PartnerFeedback, ...] = ()
    moved_from: Move | None = None  # the case came here by a move
    history: tuple[CaseEvent, ...] = ()  # the old holder's steps before it: read-only
    moved_to: tuple[Move, ...] = ()  # items of this case moved on
    pdq: tuple[ItemPdq, ...] = ()  # PDQ items' known and near-known content, read when asked
    pdq_note: str = ""  # why ``pdq`` is empty though items may have PDQ hashes

    @property
    def open(self) -> bool:
        return not self.items or any(not s.closed for s in self.items)


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """One line of a work queue."""

    id: str
    holder: str
    hosting_country: str | None
    opened_at: datetime | None
    items: int
    open_items: int
    disputed: bool
    cursor: str


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """A report as its origin sees it: delivery, then every lifecycle step of its items."""

    report_id: str
    destination: str
    case_id: str
    receipted_at: datetime | None
    delivery: str
    withdrawn: bool
    items: tuple[ItemState, ...]
    timeline: tuple[CaseEvent, ...]
    rejection: str = ""
    moves: tuple[Move, ...] = ()  # where its items moved, and what the new holder did
