"""Protobuf ⇄ domain for the case lifecycle: events, assessments, actions, states, views.

The lifecycle's half of the codec (``codec.py`` holds reports, receipts and the log), split
so each stays one concept. Decoding validates like the report codec — enums must be known,
ids in the forms ihx makes, text printable and capped — and raises ``InvalidEvent`` naming the
field; an event's bytes must be exactly the canonical encoding of known fields, since they
are signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from exchange.domain import (
    MAX_ITEMS,
    AgeGroup,
    CaseView,
    Classification,
    is_case_id,
    is_report_id,
)
from exchange.errors import InvalidEvent, InvalidReport
from exchange.lifecycle.model import (
    MAX_ITEMS_PER_EVENT,
    MAX_NOTE,
    MAX_REF,
    Action,
    ActionKind,
    Assessment,
    Body,
    CaseDetail,
    CaseEvent,
    CaseSummary,
    EventKind,
    Gender,
    ItemRef,
    ItemState,
    Move,
    Queue,
    ReasonCode,
    ReportStatus,
    Stage,
    TakeOver,
    Withdrawal,
    WithdrawalReason,
    is_event_id,
)
from exchange.wire.codec import (
    age_group_from_proto,
    age_group_to_proto,
    case_to_proto,
    classification_from_proto,
    classification_to_proto,
    from_timestamp,
    timestamp,
)
from exchange.wire.known_fields import require_exact
from exchange.wire.near_codec import item_pdq_from_proto, item_pdq_to_proto
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import lifecycle_pb2 as lpb
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import report_pb2 as pb

_GENDER = {
    Gender.FEMALE: lpb.GENDER_FEMALE,
    Gender.MALE: lpb.GENDER_MALE,
    Gender.BOTH: lpb.GENDER_BOTH,
    Gender.NOT_DETERMINED: lpb.GENDER_NOT_DETERMINED,
}
_ACTION = {
    ActionKind.REPORTED_TO_LEA: lpb.ACTION_KIND_REPORTED_TO_LEA,
    ActionKind.REPORTED_TO_HOST: lpb.ACTION_KIND_REPORTED_TO_HOST,
    ActionKind.REMOVED: lpb.ACTION_KIND_REMOVED,
    ActionKind.UNAVAILABLE: lpb.ACTION_KIND_UNAVAILABLE,
    ActionKind.NOT_ILLEGAL: lpb.ACTION_KIND_NOT_ILLEGAL,
    ActionKind.MOVED: lpb.ACTION_KIND_MOVED,
}
_REASON = {
    ReasonCode.CONTENT_NOT_FOUND: lpb.REASON_CODE_CONTENT_NOT_FOUND,
    ReasonCode.PASSWORD_PROTECTED: lpb.REASON_CODE_PASSWORD_PROTECTED,
    ReasonCode.SITE_DOWN: lpb.REASON_CODE_SITE_DOWN,
    ReasonCode.GEO_BLOCKED: lpb.REASON_CODE_GEO_BLOCKED,
    ReasonCode.ADULT_PORNOGRAPHY: lpb.REASON_CODE_ADULT_PORNOGRAPHY,
    ReasonCode.DOES_NOT_MEET_THRESHOLD: lpb.REASON_CODE_DOES_NOT_MEET_THRESHOLD,
    ReasonCode.AGE_NOT_DETERMINABLE: lpb.REASON_CODE_AGE_NOT_DETERMINABLE,
    ReasonCode.CHILD_MODELLING_LEGAL: lpb.REASON_CODE_CHILD_MODELLING_LEGAL,
    ReasonCode.NOT_CHILD_RELATED: lpb.REASON_CODE_NOT_CHILD_RELATED,
}
_WITHDRAWAL = {
    WithdrawalReason.MISREPORT: lpb.WITHDRAWAL_REASON_MISREPORT,
    WithdrawalReason.WRONG_URL: lpb.WITHDRAWAL_REASON_WRONG_URL,
    WithdrawalReason.DUPLICATE: lpb.WITHDRAWAL_REASON_DUPLICATE,
    WithdrawalReason.OTHER: lpb.WITHDRAWAL_REASON_OTHER,
}
_STAGE = {
    Stage.UNASSESSED: cpb.ITEM_STAGE_UNASSESSED,
    Stage.ASSESSED: cpb.ITEM_STAGE_ASSESSED,
    Stage.ACTIONED: cpb.ITEM_STAGE_ACTIONED,
    Stage.REMOVED: cpb.ITEM_STAGE_REMOVED,
    Stage.UNAVAILABLE: cpb.ITEM_STAGE_UNAVAILABLE,
    Stage.NOT_ILLEGAL: cpb.ITEM_STAGE_NOT_ILLEGAL,
    Stage.MOVED: cpb.ITEM_STAGE_MOVED,
    Stage.WITHDRAWN: cpb.ITEM_STAGE_WITHDRAWN,
}
_QUEUE = {
    Queue.UNASSESSED: cpb.QUEUE_UNASSESSED,
    Queue.UNACTIONED: cpb.QUEUE_UNACTIONED,
    Queue.OVERDUE: cpb.QUEUE_OVERDUE,
    Queue.ORPHANED: cpb.QUEUE_ORPHANED,
    Queue.RECENTLY_CLOSED: cpb.QUEUE_RECENTLY_CLOSED,
    Queue.DISPUTED: cpb.QUEUE_DISPUTED,
    Queue.NO_CONTACT: cpb.QUEUE_NO_CONTACT,
    Queue.CONFIRM_REMOVAL: cpb.QUEUE_CONFIRM_REMOVAL,
}


V = TypeVar("V")


def _enum_in(table: Mapping[V, int], value: int, where: str, default: V | None = None) -> V:
    for k, v in table.items():
        if v == value:
            return k
    if value == 0 and default is not None:
        return default
    raise InvalidEvent(f"{where}: missing or unknown value {value}")


_FEEDBACK = {
    "received": ppb.FEEDBACK_CODE_RECEIVED,
    "investigating": ppb.FEEDBACK_CODE_INVESTIGATING,
    "evidence_preserved": ppb.FEEDBACK_CODE_EVIDENCE_PRESERVED,
    "victim_identified": ppb.FEEDBACK_CODE_VICTIM_IDENTIFIED,
    "no_action": ppb.FEEDBACK_CODE_NO_ACTION,
    "out_of_jurisdiction": ppb.FEEDBACK_CODE_OUT_OF_JURISDICTION,
}
FEEDBACK_CODES = tuple(_FEEDBACK)


def feedback_code_from_proto(value: int) -> str:
    return _enum_in(_FEEDBACK, value, "code")


def queue_from_proto(value: int) -> Queue:
    return _enum_in(_QUEUE, value, "queue")


def withdrawal_reason_from_proto(value: int) -> WithdrawalReason:
    return _enum_in(_WITHDRAWAL, value, "reason")


def text(value: str, where: str, limit: int = MAX_REF) -> str:
    """Printable text within ``limit`` characters (newlines allowed only in notes)."""
    if len(value) > limit:
        raise InvalidEvent(f"{where}: at most {limit} characters")
    for ch in value:
        if not (ch.isprintable() or (limit == MAX_NOTE and ch in "\n\t")):
            raise InvalidEvent(f"{where}: control or format character U+{ord(ch):04X}")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidEvent(f"{where}: lone surrogate in text")
    return value


# -- parts ----------------------------------------------------------------------------------


def item_ref_to_proto(r: ItemRef) -> lpb.ItemRef:
    msg = lpb.ItemRef(
        report_id=r.report_id,
        index=r.index,
        origin_member=r.origin_member,
        origin_classification=classification_to_proto(r.origin_classification),
    )
    if r.clock_started is not None:
        msg.clock_started.CopyFrom(timestamp(r.clock_started))
    return msg


def item_ref_from_proto(msg: lpb.ItemRef, where: str) -> ItemRef:
    if not is_report_id(msg.report_id):
        raise InvalidEvent(f"{where}.report_id: not a report id (r- and 32 hex digits)")
    if msg.index >= MAX_ITEMS:
        raise InvalidEvent(f"{where}.index: {msg.index} is not an item of a report")
    try:
        origin = (
            classification_from_proto(msg.origin_classification)
            if msg.origin_classification
            else Classification.DOUBTFUL
        )
        clock = from_timestamp(msg.clock_started) if msg.HasField("clock_started") else None
    except InvalidReport as error:
        raise InvalidEvent(f"{where}: {error.message}") from None
    return ItemRef(
        msg.report_id,
        msg.index,
        text(msg.origin_member, f"{where}.origin_member", 64),
        origin,
        clock,
    )


def assessment_to_proto(a: Assessment) -> lpb.Assessment:
    return lpb.Assessment(
        classification=classification_to_proto(a.classification),
        age_group=age_group_to_proto(a.age_group),
        gender=_GENDER[a.gender],
        virtual=a.virtual,
        user_generated=a.user_generated,
        child_modelling=a.child_modelling,
        analyst_ref=a.analyst_ref,
    )


def assessment_from_proto(msg: lpb.Assessment, where: str = "assessment") -> Assessment:
    classes = {
        pb.CLASSIFICATION_BASELINE: Classification.BASELINE,
        pb.CLASSIFICATION_NATIONAL: Classification.NATIONAL,
        pb.CLASSIFICATION_NOT_ILLEGAL: Classification.NOT_ILLEGAL,
    }
    found = classes.get(msg.classification)
    if found is None:
        raise InvalidEvent(
            f"{where}.classification: baseline, national or not_illegal (got {msg.classification})"
        )
    return Assessment(
        classification=found,
        age_group=_age(msg.age_group, f"{where}.age_group"),
        gender=_enum_in(_GENDER, msg.gender, f"{where}.gender", Gender.NOT_DETERMINED),
        virtual=msg.virtual,
        user_generated=msg.user_generated,
        child_modelling=msg.child_modelling,
        analyst_ref=text(msg.analyst_ref, f"{where}.analyst_ref"),
    )


def _age(value: int, where: str) -> AgeGroup:
    try:
        return age_group_from_proto(value, where)
    except InvalidReport as error:
        raise InvalidEvent(error.message) from None


def action_to_proto(a: Action) -> lpb.Action:
    return lpb.Action(
        kind=_ACTION[a.kind],
        reason=_REASON[a.reason] if a.reason is not None else lpb.REASON_CODE_UNSPECIFIED,
        partner=a.partner,
        recipient=a.recipient,
        moved_to_country=a.moved_to_country,
        moved_to_member=a.moved_to_member,
        reference=a.reference,
        analyst_ref=a.analyst_ref,
    )


# Which of an action's fields each kind takes; the rest must stay empty, from a client or a
# member alike (an unused field is a place to carry text no one checks the meaning of).
ACTION_FIELDS: dict[ActionKind, frozenset[str]] = {
    ActionKind.REPORTED_TO_LEA: frozenset({"partner"}),
    ActionKind.REPORTED_TO_HOST: frozenset({"recipient"}),
    ActionKind.REMOVED: frozenset(),
    ActionKind.UNAVAILABLE: frozenset({"reason"}),
    ActionKind.NOT_ILLEGAL: frozenset({"reason"}),
    ActionKind.MOVED: frozenset({"moved_to_country", "moved_to_member"}),
}
_SPECIFIC = ("reason", "partner", "recipient", "moved_to_country", "moved_to_member")


def action_from_proto(msg: lpb.Action, where: str = "action") -> Action:
    kind = _enum_in(_ACTION, msg.kind, f"{where}.kind")
    reason = _enum_in(_REASON, msg.reason, f"{where}.reason") if msg.reason else None
    for name in _SPECIFIC:
        if name not in ACTION_FIELDS[kind] and getattr(msg, name):
            raise InvalidEvent(f"{where}.{name}: {kind} takes no {name}")
    country = msg.moved_to_country
    if country and not (len(country) == 2 and country.isascii() and country.isupper()):
        raise InvalidEvent(f"{where}.moved_to_country: ISO 3166-1 alpha-2, upper case")
    if kind is ActionKind.MOVED and not country:
        raise InvalidEvent(f"{where}.moved_to_country: a move names the new hosting country")
    if kind is ActionKind.REPORTED_TO_LEA and not msg.partner:
        raise InvalidEvent(f"{where}.partner: reported_to_lea names the partner")
    if kind is ActionKind.REPORTED_TO_HOST and not msg.recipient:
        raise InvalidEvent(f"{where}.recipient: reported_to_host names who was notified")
    return Action(
        kind=kind,
        reason=reason,
        partner=text(msg.partner, f"{where}.partner", 64),
        recipient=text(msg.recipient, f"{where}.recipient"),
        moved_to_country=country,
        moved_to_member=text(msg.moved_to_member, f"{where}.moved_to_member", 64),
        reference=text(msg.reference, f"{where}.reference"),
        analyst_ref=text(msg.analyst_ref, f"{where}.analyst_ref"),
    )


def withdrawal_to_proto(w: Withdrawal) -> lpb.Withdrawal:
    return lpb.Withdrawal(reason=_WITHDRAWAL[w.reason], note=w.note)


def withdrawal_from_proto(msg: lpb.Withdrawal, where: str = "withdrawal") -> Withdrawal:
    return Withdrawal(
        _enum_in(_WITHDRAWAL, msg.reason, f"{where}.reason"),
        text(msg.note, f"{where}.note", MAX_NOTE),
    )


def take_over_to_proto(t: TakeOver) -> lpb.TakeOver:
    return lpb.TakeOver(
        from_member=t.from_member,
        from_case=t.from_case,
        moved_event=t.moved_event,
        country=t.country,
    )


def take_over_from_proto(msg: lpb.TakeOver, where: str = "taken_over") -> TakeOver:
    if not msg.from_member:
        raise InvalidEvent(f"{where}.from_member: the member the items came from is required")
    if not is_case_id(msg.from_case):
        raise InvalidEvent(f"{where}.from_case: not a case id (c- and 32 hex digits)")
    if not is_event_id(msg.moved_event):
        raise InvalidEvent(f"{where}.moved_event: not an event id (e- and 32 hex digits)")
    country = msg.country
    if not (len(country) == 2 and country.isascii() and country.isupper()):
        raise InvalidEvent(f"{where}.country: ISO 3166-1 alpha-2, upper case")
    return TakeOver(
        text(msg.from_member, f"{where}.from_member", 64),
        msg.from_case,
        msg.moved_event,
        country,
    )


# -- events ---------------------------------------------------------------------------------


def event_to_proto(e: CaseEvent) -> lpb.CaseEvent:
    msg = lpb.CaseEvent(
        id=e.id,
        case_id=e.case_id,
        member=e.member,
        sequence=e.sequence,
        at=timestamp(e.at),
        items=[item_ref_to_proto(r) for r in e.items],
    )
    body = e.body
    if isinstance(body, Assessment):
        msg.assessment.CopyFrom(assessment_to_proto(body))
    elif isinstance(body, Action):
        msg.action.CopyFrom(action_to_proto(body))
    elif isinstance(body, TakeOver):
        msg.taken_over.CopyFrom(take_over_to_proto(body))
    elif e.kind is EventKind.WITHDRAWAL:
        msg.withdrawal.CopyFrom(withdrawal_to_proto(body))
    else:
        msg.withdrawn.CopyFrom(withdrawal_to_proto(body))
    return msg


def event_to_bytes(e: CaseEvent) -> bytes:
    return event_to_proto(e).SerializeToString(deterministic=True)


def _body(msg: lpb.CaseEvent) -> tuple[EventKind, Body]:
    which = msg.WhichOneof("body")
    if which == "assessment":
        return EventKind.ASSESSMENT, assessment_from_proto(msg.assessment)
    if which == "action":
        return EventKind.ACTION, action_from_proto(msg.action)
    if which == "withdrawal":
        return EventKind.WITHDRAWAL, withdrawal_from_proto(msg.withdrawal)
    if which == "withdrawn":
        return EventKind.WITHDRAWN, withdrawal_from_proto(msg.withdrawn, "withdrawn")
    if which == "taken_over":
        return EventKind.TAKEN_OVER, take_over_from_proto(msg.taken_over)
    raise InvalidEvent(
        "body: an assessment, action, withdrawal, withdrawn or taken_over is required"
    )


def _check_header(msg: lpb.CaseEvent) -> None:
    if not is_event_id(msg.id):
        raise InvalidEvent("id: not an event id (e- and 32 hex digits)")
    if msg.case_id and not is_case_id(msg.case_id):
        raise InvalidEvent("case_id: not a case id (c- and 32 hex digits)")
    if not msg.member or not 1 <= msg.sequence < 2**53:
        raise InvalidEvent("member and a sequence from 1 are required")
    if not msg.HasField("at"):
        raise InvalidEvent("at: the event's time is required")
    if not 1 <= len(msg.items) <= MAX_ITEMS_PER_EVENT:
        raise InvalidEvent(f"items: from 1 to {MAX_ITEMS_PER_EVENT} items")


def event_from_proto(msg: lpb.CaseEvent) -> CaseEvent:
    _check_header(msg)
    kind, body = _body(msg)
    if not msg.case_id and kind is not EventKind.WITHDRAWAL:
        raise InvalidEvent("case_id: required except on a withdrawal")
    try:
        at = from_timestamp(msg.at)
    except InvalidReport as error:
        raise InvalidEvent(f"at: {error.message}") from None
    refs = tuple(item_ref_from_proto(r, f"items[{i}]") for i, r in enumerate(msg.items))
    if len({r.key for r in refs}) != len(refs):
        raise InvalidEvent("items: an item is named twice")
    return CaseEvent(
        id=msg.id,
        case_id=msg.case_id,
        member=text(msg.member, "member", 64),
        sequence=msg.sequence,
        at=at,
        items=refs,
        kind=kind,
        body=body,
    )


def event_from_bytes(data: bytes) -> CaseEvent:
    """A signed event payload: valid protobuf, only known fields, canonical bytes, sane values."""
    msg = lpb.CaseEvent()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        raise InvalidEvent("payload is not a valid ihx.v1.CaseEvent") from None
    require_exact(msg, data, "case event")
    return event_from_proto(msg)


# -- views ----------------------------------------------------------------------------------


def item_state_to_proto(s: ItemState) -> cpb.ItemState:
    msg = cpb.ItemState(
        ref=item_ref_to_proto(s.ref),
        stage=_STAGE[s.stage],
        disputed=s.disputed,
        lea_partner=s.lea_partner,
        host_recipient=s.host_recipient,
        close_reason=(
            _REASON[s.close_reason] if s.close_reason is not None else lpb.REASON_CODE_UNSPECIFIED
        ),
        moved_to_country=s.moved_to_country,
        moved_to_member=s.moved_to_member,
    )
    if s.assessment is not None:
        msg.assessment.CopyFrom(assessment_to_proto(s.assessment))
    if s.last_action is not None:
        msg.last_action.kind = _ACTION[s.last_action]
    for name in ("clock_started", "assessed_at", "lea_at", "host_notice_at", "closed_at"):
        at = getattr(s, name)
        if at is not None:
            getattr(msg, name).CopyFrom(timestamp(at))
    return msg


def stage_from_proto(value: int) -> Stage:
    return _enum_in(_STAGE, value, "stage")


def move_to_proto(m: Move) -> cpb.CaseMove:
    msg = cpb.CaseMove(
        from_member=m.from_member,
        from_case=m.from_case,
        from_country=m.from_country,
        country=m.country,
        to_member=m.to_member,
        to_case=m.to_case,
        items=[item_state_to_proto(s) for s in m.items],
        timeline=[event_to_proto(e) for e in m.timeline],
        refusal=m.refusal,
    )
    if m.at is not None:
        msg.at.CopyFrom(timestamp(m.at))
    return msg


def case_detail_to_proto(d: CaseDetail) -> cpb.CaseDetail:
    msg = cpb.CaseDetail(
        id=d.id,
        holder=d.holder,
        url=d.url,
        hosting_country=d.hosting_country or "",
        open=d.open,
        reporting_members=list(d.reporting_members),
        items=[item_state_to_proto(s) for s in d.items],
        timeline=[event_to_proto(e) for e in d.timeline],
        decision_reason=d.decision_reason,
        anonymised=d.anonymised,
        feedback=[
            cpb.PartnerFeedback(partner=f.partner, code=f.code, note=f.note, at=timestamp(f.at))
            for f in d.feedback
        ],
    )
    if d.opened_at is not None:
        msg.opened_at.CopyFrom(timestamp(d.opened_at))
    if d.closed_at is not None:
        msg.closed_at.CopyFrom(timestamp(d.closed_at))
    if d.moved_from is not None:
        msg.moved_from.CopyFrom(move_to_proto(d.moved_from))
    msg.history.extend(event_to_proto(e) for e in d.history)
    msg.moved_to.extend(move_to_proto(m) for m in d.moved_to)
    msg.pdq.extend(item_pdq_to_proto(p) for p in d.pdq)
    msg.pdq_note = d.pdq_note
    return msg


def summaries_to_proto(rows: Sequence[CaseSummary], next_cursor: str) -> cpb.ListQueueResponse:
    out = cpb.ListQueueResponse(next_cursor=next_cursor)
    for r in rows:
        msg = out.cases.add(
            id=r.id,
            holder=r.holder,
            hosting_country=r.hosting_country or "",
            open=r.open_items > 0,
            items=r.items,
            open_items=r.open_items,
            disputed=r.disputed,
            cursor=r.cursor,
        )
        if r.opened_at is not None:
            msg.opened_at.CopyFrom(timestamp(r.opened_at))
    return out


def report_status_to_proto(s: ReportStatus) -> cpb.ReportStatus:
    msg = cpb.ReportStatus(
        report_id=s.report_id,
        destination=s.destination,
        case_id=s.case_id,
        delivery=s.delivery,
        withdrawn=s.withdrawn,
        items=[item_state_to_proto(i) for i in s.items],
        timeline=[event_to_proto(e) for e in s.timeline],
        rejection=s.rejection,
        moves=[move_to_proto(m) for m in s.moves],
    )
    if s.receipted_at is not None:
        msg.receipted_at.CopyFrom(timestamp(s.receipted_at))
    return msg


# -- requests and answers of the Cases service, as a client sees them -----------------------


def queue_to_proto(q: Queue) -> cpb.Queue.ValueType:
    return _QUEUE[q]


def item_key_to_proto(report_id: str, index: int) -> lpb.ItemRef:
    """An item named in a request: only its report and index (the node knows the rest)."""
    return lpb.ItemRef(report_id=report_id, index=index)


def _at(present: bool, ts: Timestamp) -> datetime | None:
    return from_timestamp(ts) if present else None


def item_state_from_proto(msg: cpb.ItemState, holder: str) -> ItemState:
    """An item's state as a node answered it (``actions`` is not on the wire: 0)."""
    return ItemState(
        ref=item_ref_from_proto(msg.ref, "ref"),
        holder=holder,
        clock_started=_at(msg.HasField("clock_started"), msg.clock_started),
        stage=stage_from_proto(msg.stage),
        assessment=assessment_from_proto(msg.assessment) if msg.HasField("assessment") else None,
        disputed=msg.disputed,
        last_action=(
            _enum_in(_ACTION, msg.last_action.kind, "last_action.kind")
            if msg.HasField("last_action")
            else None
        ),
        assessed_at=_at(msg.HasField("assessed_at"), msg.assessed_at),
        lea_at=_at(msg.HasField("lea_at"), msg.lea_at),
        lea_partner=msg.lea_partner,
        host_notice_at=_at(msg.HasField("host_notice_at"), msg.host_notice_at),
        host_recipient=msg.host_recipient,
        closed_at=_at(msg.HasField("closed_at"), msg.closed_at),
        close_reason=_enum_in(_REASON, msg.close_reason, "close_reason")
        if msg.close_reason
        else None,
        moved_to_country=msg.moved_to_country,
        moved_to_member=msg.moved_to_member,
    )


def move_from_proto(msg: cpb.CaseMove) -> Move:
    return Move(
        from_member=msg.from_member,
        from_case=msg.from_case,
        country=msg.country,
        to_member=msg.to_member,
        to_case=msg.to_case,
        at=_at(msg.HasField("at"), msg.at),
        from_country=msg.from_country,
        items=tuple(item_state_from_proto(s, msg.to_member) for s in msg.items),
        timeline=tuple(event_from_proto(e) for e in msg.timeline),
        refusal=msg.refusal,
    )


def case_detail_from_proto(msg: cpb.CaseDetail) -> CaseDetail:
    return CaseDetail(
        id=msg.id,
        holder=msg.holder,
        url=msg.url,
        hosting_country=msg.hosting_country or None,
        opened_at=_at(msg.HasField("opened_at"), msg.opened_at),
        closed_at=_at(msg.HasField("closed_at"), msg.closed_at),
        reporting_members=tuple(msg.reporting_members),
        items=tuple(item_state_from_proto(s, msg.holder) for s in msg.items),
        timeline=tuple(event_from_proto(e) for e in msg.timeline),
        decision_reason=msg.decision_reason,
        anonymised=msg.anonymised,
        moved_from=move_from_proto(msg.moved_from) if msg.HasField("moved_from") else None,
        history=tuple(event_from_proto(e) for e in msg.history),
        moved_to=tuple(move_from_proto(m) for m in msg.moved_to),
        pdq=tuple(item_pdq_from_proto(p) for p in msg.pdq),
        pdq_note=msg.pdq_note,
    )


def summaries_from_proto(msg: cpb.ListQueueResponse) -> tuple[list[CaseSummary], str]:
    rows = [
        CaseSummary(
            id=c.id,
            holder=c.holder,
            hosting_country=c.hosting_country or None,
            opened_at=from_timestamp(c.opened_at) if c.HasField("opened_at") else None,
            items=c.items,
            open_items=c.open_items,
            disputed=c.disputed,
            cursor=c.cursor,
        )
        for c in msg.cases
    ]
    return rows, msg.next_cursor


def report_status_from_proto(msg: cpb.ReportStatus) -> ReportStatus:
    return ReportStatus(
        report_id=msg.report_id,
        destination=msg.destination,
        case_id=msg.case_id,
        receipted_at=_at(msg.HasField("receipted_at"), msg.receipted_at),
        delivery=msg.delivery,
        withdrawn=msg.withdrawn,
        items=tuple(item_state_from_proto(s, msg.destination) for s in msg.items),
        timeline=tuple(event_from_proto(e) for e in msg.timeline),
        rejection=msg.rejection,
        moves=tuple(move_from_proto(m) for m in msg.moves),
    )


def partner_case_to_proto(view: CaseView) -> ppb.Case:
    """A case as a partner pulls it: the reports and receipts (``codec.case_to_proto``) and
    where its lifecycle stands."""
    msg = case_to_proto(view)
    msg.open = view.open
    msg.withdrawn = view.withdrawn
    msg.items.extend(item_state_to_proto(s) for s in view.items)
    msg.timeline.extend(event_to_proto(e) for e in view.timeline)
    return msg
