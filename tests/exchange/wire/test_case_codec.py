"""exchange/wire/case_codec.py: lifecycle events round-trip exactly; bad ones name the field.

Every event kind and every action kind goes to bytes and back unchanged. Each validation the
decoder makes is one row of a table: a valid event's message with one thing broken, and the
words the ``InvalidEvent`` must say. Signed payloads (``event_from_bytes``) must also be the
canonical encoding of known fields only. The view converters (item states, a case, a queue
page, a report's status) carry every field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from exchange.domain import AgeGroup, CaseView, Classification
from exchange.errors import ExchangeError, InvalidEvent, UnknownFields
from exchange.lifecycle.model import (
    MAX_ITEMS_PER_EVENT,
    MAX_NOTE,
    MAX_REF,
    ActionKind,
    CaseDetail,
    CaseEvent,
    CaseSummary,
    EventKind,
    Gender,
    ItemState,
    PartnerFeedback,
    Queue,
    ReasonCode,
    ReportStatus,
    Stage,
    WithdrawalReason,
)
from exchange.wire import case_codec as codec
from exchange.wire.case_codec import (
    FEEDBACK_CODES,
    event_from_bytes,
    event_from_proto,
    event_to_bytes,
    event_to_proto,
)
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import lifecycle_pb2 as lpb
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import T0, length_delimited
from tests.exchange.lifecycle.factories import (
    action,
    assessment,
    case_id,
    make_event,
    make_ref,
    make_state,
    report_id,
    withdrawal,
)

AT = T0 + timedelta(minutes=3)


def full_assessment() -> CaseEvent:
    """An assessment with every field set, of two items (one without a clock)."""
    body = assessment(
        Classification.NATIONAL,
        age_group=AgeGroup.PUBESCENT,
        gender=Gender.BOTH,
        virtual=True,
        user_generated=True,
        child_modelling=True,
        analyst_ref="analyst-42",
    )
    refs = (
        make_ref(0),
        make_ref(1, origin_classification=Classification.DOUBTFUL, clock_started=None),
    )
    return make_event(body, refs=refs, sequence=7, at=AT)


EVENTS: dict[str, CaseEvent] = {
    "assessment": full_assessment(),
    "assessment-defaults": make_event(assessment(Classification.NOT_ILLEGAL)),
    **{
        f"action-{kind}": make_event(
            action(
                kind,
                ReasonCode.SITE_DOWN
                if kind is ActionKind.UNAVAILABLE
                else ReasonCode.ADULT_PORNOGRAPHY
                if kind is ActionKind.NOT_ILLEGAL
                else None,
                reference="msg-1",
                analyst_ref="an-1",
            ),
            sequence=2,
        )
        for kind in ActionKind
    },
    "withdrawal-before-the-receipt": make_event(
        withdrawal(WithdrawalReason.WRONG_URL, "typo in the\nURL\tsorry"),
        kind=EventKind.WITHDRAWAL,
        member="nl-eokm",
        case="",
    ),
    "withdrawal": make_event(withdrawal(), kind=EventKind.WITHDRAWAL, member="nl-eokm"),
    "withdrawn": make_event(withdrawal(WithdrawalReason.DUPLICATE), kind=EventKind.WITHDRAWN),
}


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_every_event_round_trips_through_its_bytes(event: CaseEvent) -> None:
    data = event_to_bytes(event)
    assert event_from_bytes(data) == event
    assert event_from_proto(event_to_proto(event)) == event
    # deterministic: the same event is the same signed bytes every time
    assert event_to_bytes(event) == data


def test_the_body_oneof_tells_a_withdrawal_from_its_confirmation() -> None:
    asked = event_to_proto(EVENTS["withdrawal"])
    confirmed = event_to_proto(EVENTS["withdrawn"])
    assert (asked.WhichOneof("body"), confirmed.WhichOneof("body")) == ("withdrawal", "withdrawn")


# -- validation: one broken thing per row -----------------------------------------------------

Mutation = Callable[[lpb.CaseEvent], object]


def _set(path: str, value: object) -> Mutation:
    """Set the field at dotted ``path`` (``items.0.index``) of the message."""

    def mutate(msg: lpb.CaseEvent) -> None:
        *parents, last = path.split(".")
        target: object = msg
        for part in parents:
            target = target[int(part)] if part.isdigit() else getattr(target, part)  # type: ignore[index]
        setattr(target, last, value)

    return mutate


def _action(**fields: object) -> Mutation:
    def mutate(msg: lpb.CaseEvent) -> None:
        msg.action.CopyFrom(lpb.Action(**fields))  # type: ignore[arg-type]

    return mutate


def _more_items(n: int) -> Mutation:
    def mutate(msg: lpb.CaseEvent) -> None:
        msg.items.extend(lpb.ItemRef(report_id=report_id(), index=i) for i in range(1, n + 1))

    return mutate


ASSESS = event_to_proto(EVENTS["assessment"])
ACT = event_to_proto(EVENTS[f"action-{ActionKind.REPORTED_TO_LEA}"])
NOTICE = event_to_proto(EVENTS[f"action-{ActionKind.REPORTED_TO_HOST}"])
WITHDRAW = event_to_proto(EVENTS["withdrawal"])

# (the valid message, the break, words of the error)
INVALID: dict[str, tuple[lpb.CaseEvent, Mutation, str]] = {
    # ids in the forms ihx makes
    "id-empty": (ASSESS, _set("id", ""), "id: not an event id"),
    "id-a-report-id": (ASSESS, _set("id", report_id()), "id: not an event id"),
    "id-upper-case": (ASSESS, _set("id", "e-" + "A" * 32), "id: not an event id"),
    "case-id-malformed": (ASSESS, _set("case_id", "c-nope"), "case_id: not a case id"),
    "case-id-a-report-id": (ASSESS, _set("case_id", report_id()), "case_id: not a case id"),
    "case-id-missing": (ASSESS, _set("case_id", ""), "case_id: required except on a withdrawal"),
    "report-id-malformed": (
        ASSESS,
        _set("items.0.report_id", "r-123"),
        "items[0].report_id: not a report id",
    ),
    "report-id-a-case-id": (
        ASSESS,
        _set("items.1.report_id", case_id()),
        "items[1].report_id: not a report id",
    ),
    "index-out-of-range": (ASSESS, _set("items.0.index", 256), "items[0].index: 256 is not"),
    "member-missing": (ASSESS, _set("member", ""), "member and a sequence from 1 are required"),
    "sequence-zero": (ASSESS, _set("sequence", 0), "member and a sequence from 1 are required"),
    "sequence-too-large": (ASSESS, _set("sequence", 2**53), "a sequence from 1"),
    "at-missing": (ASSESS, lambda m: m.ClearField("at"), "at: the event's time is required"),
    "at-out-of-range": (ASSESS, _set("at.seconds", 2**62), "at: timestamp"),
    "clock-out-of-range": (
        ASSESS,
        _set("items.0.clock_started.nanos", 2_000_000_000),
        "items[0]: timestamp",
    ),
    "no-items": (ASSESS, lambda m: m.ClearField("items"), "items: from 1 to 1000 items"),
    "too-many-items": (ASSESS, _more_items(MAX_ITEMS_PER_EVENT), "items: from 1 to 1000 items"),
    "item-twice": (
        ASSESS,
        lambda m: m.items.add().CopyFrom(m.items[0]),
        "items: an item is named twice",
    ),
    # enums must be known
    "classification-unspecified": (
        ASSESS,
        _set("assessment.classification", 0),
        "assessment.classification: baseline, national or not_illegal (got 0)",
    ),
    "classification-doubtful": (
        ASSESS,
        _set("assessment.classification", pb.CLASSIFICATION_DOUBTFUL),
        "assessment.classification: baseline, national or not_illegal",
    ),
    "classification-unknown": (
        ASSESS,
        _set("assessment.classification", 99),
        "assessment.classification: baseline, national or not_illegal (got 99)",
    ),
    "gender-unknown": (
        ASSESS,
        _set("assessment.gender", 99),
        "assessment.gender: missing or unknown value 99",
    ),
    "age-group-unknown": (
        ASSESS,
        _set("assessment.age_group", 77),
        "assessment.age_group: missing or unknown value 77",
    ),
    "origin-classification-unknown": (
        ASSESS,
        _set("items.0.origin_classification", 42),
        "items[0]: classification",
    ),
    "action-kind-unspecified": (
        ACT,
        _set("action.kind", 0),
        "action.kind: missing or unknown value 0",
    ),
    "action-kind-unknown": (
        ACT,
        _set("action.kind", 99),
        "action.kind: missing or unknown value 99",
    ),
    "reason-unknown": (
        ACT,
        _set("action.reason", 99),
        "action.reason: missing or unknown value 99",
    ),
    "withdrawal-reason-unspecified": (
        WITHDRAW,
        _set("withdrawal.reason", 0),
        "withdrawal.reason: missing or unknown value 0",
    ),
    "withdrawal-reason-unknown": (
        WITHDRAW,
        _set("withdrawal.reason", 9),
        "withdrawal.reason: missing or unknown value 9",
    ),
    # an action names what its kind needs
    "lea-without-partner": (
        ACT,
        _action(kind=lpb.ACTION_KIND_REPORTED_TO_LEA),
        "action.partner: reported_to_lea names the partner",
    ),
    "host-without-recipient": (
        ACT,
        _action(kind=lpb.ACTION_KIND_REPORTED_TO_HOST),
        "action.recipient: reported_to_host names who was notified",
    ),
    "moved-without-country": (
        ACT,
        _action(kind=lpb.ACTION_KIND_MOVED),
        "action.moved_to_country: a move names the new hosting country",
    ),
    "moved-lower-case-country": (
        ACT,
        _action(kind=lpb.ACTION_KIND_MOVED, moved_to_country="ro"),
        "action.moved_to_country: ISO 3166-1 alpha-2, upper case",
    ),
    "moved-three-letter-country": (
        ACT,
        _action(kind=lpb.ACTION_KIND_MOVED, moved_to_country="ROU"),
        "action.moved_to_country: ISO 3166-1 alpha-2",
    ),
    # text: printable and capped
    "analyst-ref-too-long": (
        ASSESS,
        _set("assessment.analyst_ref", "x" * (MAX_REF + 1)),
        f"assessment.analyst_ref: at most {MAX_REF} characters",
    ),
    "analyst-ref-newline": (
        ASSESS,
        _set("assessment.analyst_ref", "a\nb"),
        "assessment.analyst_ref: control or format character U+000A",
    ),
    "partner-too-long": (ACT, _set("action.partner", "p" * 65), "action.partner: at most 64"),
    "recipient-control": (
        NOTICE,
        _set("action.recipient", "abuse\x1b[31m"),
        "action.recipient: control or format character U+001B",
    ),
    "a field the action's kind does not take": (
        ACT,
        _set("action.recipient", "a name"),
        "action.recipient: reported_to_lea takes no recipient",
    ),
    "reference-format-character": (
        ACT,
        _set("action.reference", "abc\u202edef"),
        "action.reference: control or format character U+202E",
    ),
    "moved-to-member-too-long": (
        ACT,
        _action(kind=lpb.ACTION_KIND_MOVED, moved_to_country="RO", moved_to_member="m" * 65),
        "action.moved_to_member: at most 64",
    ),
    "note-too-long": (
        WITHDRAW,
        _set("withdrawal.note", "n" * (MAX_NOTE + 1)),
        f"withdrawal.note: at most {MAX_NOTE} characters",
    ),
    "note-nul": (
        WITHDRAW,
        _set("withdrawal.note", "a\x00b"),
        "withdrawal.note: control or format character U+0000",
    ),
    "member-too-long": (ASSESS, _set("member", "m" * 65), "member: at most 64"),
    "origin-member-control": (
        ASSESS,
        _set("items.0.origin_member", "nl\teokm"),
        "items[0].origin_member: control or format character U+0009",
    ),
    # a body is required
    "no-body": (
        ASSESS,
        lambda m: m.ClearField("assessment"),
        "body: an assessment, action, withdrawal",
    ),
}


@pytest.mark.parametrize(("valid", "mutate", "words"), INVALID.values(), ids=INVALID.keys())
def test_a_broken_event_is_refused_naming_the_field(
    valid: lpb.CaseEvent, mutate: Mutation, words: str
) -> None:
    msg = lpb.CaseEvent()
    msg.CopyFrom(valid)
    event_from_proto(msg)  # the row starts from a valid event …
    mutate(msg)
    with pytest.raises(InvalidEvent) as info:
        event_from_proto(msg)
    assert words in info.value.message
    assert info.value.code == "invalid-event"
    # … and signed bytes are refused the same way
    with pytest.raises(InvalidEvent) as again:
        event_from_bytes(msg.SerializeToString(deterministic=True))
    assert again.value.message == info.value.message


def test_notes_may_hold_newlines_and_tabs_other_text_not() -> None:
    event = EVENTS["withdrawal-before-the-receipt"]
    assert "\n" in event.body.note  # type: ignore[union-attr]
    assert event_from_bytes(event_to_bytes(event)) == event
    assert codec.text("a\tb\nc", "note", MAX_NOTE) == "a\tb\nc"
    with pytest.raises(InvalidEvent, match="U\\+0009"):
        codec.text("a\tb", "reference")


def test_text_takes_printable_unicode_up_to_the_limit() -> None:
    assert codec.text("Zoë — ✓", "reference") == "Zoë — ✓"
    assert codec.text("x" * MAX_REF, "reference") == "x" * MAX_REF


# -- signed bytes: valid protobuf, known fields, canonical ------------------------------------


def test_bytes_that_are_no_event_are_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"payload is not a valid ihx\.v1\.CaseEvent"):
        event_from_bytes(b"\xff\xff\xff")


@pytest.mark.parametrize(
    "extra",
    [
        length_delimited(99, b"\xff\xd8\xff\xe0 a JPEG header"),  # on the event
        length_delimited(6, length_delimited(42, b"smuggled")),  # inside a new item ref
    ],
    ids=["top-level", "nested"],
)
def test_unknown_fields_are_refused(extra: bytes) -> None:
    data = event_to_bytes(EVENTS["assessment"]) + extra
    with pytest.raises(UnknownFields) as info:
        event_from_bytes(data)
    assert "which the ihx.v1 schema does not define" in info.value.message


def test_bytes_that_are_not_the_canonical_encoding_are_refused() -> None:
    event = EVENTS["assessment"]
    data = event_to_bytes(event)
    # the member field written twice: parses to the same event, but holds bytes nobody signed for
    member = event_to_proto(event).member.encode()
    doubled = data + length_delimited(3, member)
    assert event_from_proto(_parse(doubled)) == event
    with pytest.raises(UnknownFields) as info:
        event_from_bytes(doubled)
    assert info.value.code == "not-canonical"
    # fields out of order (the id last instead of first)
    msg = event_to_proto(event)
    head = lpb.CaseEvent(id=msg.id).SerializeToString()
    msg.ClearField("id")
    with pytest.raises(UnknownFields, match="not in canonical protobuf encoding"):
        event_from_bytes(msg.SerializeToString(deterministic=True) + head)


def _parse(data: bytes) -> lpb.CaseEvent:
    msg = lpb.CaseEvent()
    msg.ParseFromString(data)
    return msg


# -- enums of the requests ------------------------------------------------------------------


def test_request_enums_decode_or_name_the_field() -> None:
    assert codec.queue_from_proto(cpb.QUEUE_DISPUTED) is Queue.DISPUTED
    assert {codec.queue_from_proto(v) for v in range(1, 9)} == set(Queue)
    assert codec.withdrawal_reason_from_proto(lpb.WITHDRAWAL_REASON_OTHER) is WithdrawalReason.OTHER
    assert {codec.stage_from_proto(v) for v in range(1, 9)} == set(Stage)
    for decode, where in (
        (codec.queue_from_proto, "queue"),
        (codec.withdrawal_reason_from_proto, "reason"),
        (codec.stage_from_proto, "stage"),
        (codec.feedback_code_from_proto, "code"),
    ):
        for bad in (0, 99):
            with pytest.raises(InvalidEvent, match=f"^{where}: missing or unknown value {bad}$"):
                decode(bad)


def test_every_feedback_code_of_the_wire_is_known() -> None:
    decoded = [codec.feedback_code_from_proto(v) for v in ppb.FeedbackCode.values() if v]
    assert sorted(decoded) == sorted(FEEDBACK_CODES)


# -- views ------------------------------------------------------------------------------------


def closed_state() -> ItemState:
    return make_state(
        1,
        stage=Stage.UNAVAILABLE,
        assessment=assessment(Classification.BASELINE, gender=Gender.FEMALE),
        disputed=True,
        actions=3,
        last_action=ActionKind.UNAVAILABLE,
        assessed_at=T0 + timedelta(minutes=1),
        lea_at=T0 + timedelta(minutes=2),
        lea_partner="de-bka",
        host_notice_at=T0 + timedelta(minutes=3),
        host_recipient="abuse@hoster.example",
        closed_at=T0 + timedelta(minutes=4),
        close_reason=ReasonCode.SITE_DOWN,
    )


def test_an_item_state_carries_every_field() -> None:
    msg = codec.item_state_to_proto(closed_state())
    assert msg.ref.report_id == report_id()
    assert msg.ref.index == 1
    assert msg.stage == cpb.ITEM_STAGE_UNAVAILABLE
    assert msg.assessment.gender == lpb.GENDER_FEMALE
    assert msg.disputed
    assert msg.last_action.kind == lpb.ACTION_KIND_UNAVAILABLE
    assert [getattr(msg, f).ToDatetime() for f in ("clock_started", "assessed_at", "lea_at")] == [
        (T0 + timedelta(minutes=m)).replace(tzinfo=None) for m in (0, 1, 2)
    ]
    assert msg.host_notice_at.ToDatetime() == (T0 + timedelta(minutes=3)).replace(tzinfo=None)
    assert msg.closed_at.ToDatetime() == (T0 + timedelta(minutes=4)).replace(tzinfo=None)
    assert (msg.lea_partner, msg.host_recipient) == ("de-bka", "abuse@hoster.example")
    assert msg.close_reason == lpb.REASON_CODE_SITE_DOWN
    assert codec.stage_from_proto(msg.stage) is Stage.UNAVAILABLE

    fresh = codec.item_state_to_proto(make_state())
    assert fresh.stage == cpb.ITEM_STAGE_UNASSESSED
    for name in ("assessment", "last_action", "assessed_at", "lea_at", "closed_at"):
        assert not fresh.HasField(name)
    assert fresh.close_reason == lpb.REASON_CODE_UNSPECIFIED


def test_a_moved_item_says_where_to() -> None:
    moved = make_state(stage=Stage.MOVED, moved_to_country="RO", moved_to_member="ro-safernet")
    msg = codec.item_state_to_proto(moved)
    assert (msg.moved_to_country, msg.moved_to_member) == ("RO", "ro-safernet")


def test_a_case_detail_carries_items_timeline_and_openness() -> None:
    events = (EVENTS["assessment"], EVENTS["withdrawn"])
    detail = CaseDetail(
        id=case_id(),
        holder="de-eco",
        url="https://hosting-de.example/a.jpg",
        hosting_country="DE",
        opened_at=T0,
        closed_at=None,
        reporting_members=("nl-eokm", "us-ncmec"),
        items=(make_state(0), closed_state()),
        timeline=events,
        decision_reason="served-member",
    )
    msg = codec.case_detail_to_proto(detail)
    assert (msg.id, msg.holder, msg.url, msg.hosting_country) == (
        case_id(),
        "de-eco",
        detail.url,
        "DE",
    )
    assert msg.open
    assert not msg.anonymised
    assert list(msg.reporting_members) == ["nl-eokm", "us-ncmec"]
    assert [s.stage for s in msg.items] == [cpb.ITEM_STAGE_UNASSESSED, cpb.ITEM_STAGE_UNAVAILABLE]
    assert [event_from_proto(e) for e in msg.timeline] == list(events)
    assert msg.HasField("opened_at")
    assert not msg.HasField("closed_at")
    assert msg.decision_reason == "served-member"

    assert list(msg.feedback) == []
    with_feedback = codec.case_detail_to_proto(
        replace(detail, feedback=(PartnerFeedback("de-bka", "investigating", "file 17", AT),))
    )
    (shown,) = with_feedback.feedback
    assert (shown.partner, shown.code, shown.note) == ("de-bka", "investigating", "file 17")
    assert shown.at.ToDatetime() == AT.replace(tzinfo=None)

    gone = replace(
        detail, url="", hosting_country=None, closed_at=AT, items=(closed_state(),), anonymised=True
    )
    msg = codec.case_detail_to_proto(gone)
    assert not msg.open
    assert msg.anonymised
    assert msg.url == ""
    assert msg.hosting_country == ""
    assert msg.closed_at.ToDatetime() == AT.replace(tzinfo=None)


def test_a_queue_page_carries_its_cursor() -> None:
    rows = [
        CaseSummary(case_id("a"), "de-eco", "DE", T0, 2, 1, True, "1/c-a"),
        CaseSummary(case_id("b"), "de-eco", None, None, 1, 0, False, "2/c-b"),
    ]
    msg = codec.summaries_to_proto(rows, "2/c-b")
    assert msg.next_cursor == "2/c-b"
    first, second = msg.cases
    assert (first.id, first.open, first.items, first.open_items, first.disputed) == (
        case_id("a"),
        True,
        2,
        1,
        True,
    )
    assert first.HasField("opened_at")
    assert first.cursor == "1/c-a"
    assert (second.open, second.hosting_country, second.HasField("opened_at")) == (False, "", False)


def test_a_report_status_carries_delivery_items_and_timeline() -> None:
    status = ReportStatus(
        report_id=report_id(),
        destination="de-eco",
        case_id=case_id(),
        receipted_at=T0,
        delivery="new-case",
        withdrawn=True,
        items=(closed_state(),),
        timeline=(EVENTS["withdrawal"],),
        rejection="",
    )
    msg = codec.report_status_to_proto(status)
    assert (msg.report_id, msg.destination, msg.case_id, msg.delivery) == (
        report_id(),
        "de-eco",
        case_id(),
        "new-case",
    )
    assert msg.withdrawn
    assert msg.receipted_at.ToDatetime() == T0.replace(tzinfo=None)
    assert [event_from_proto(e) for e in msg.timeline] == [EVENTS["withdrawal"]]
    queued = codec.report_status_to_proto(
        replace(status, receipted_at=None, delivery="rejected", rejection="url-invalid: x")
    )
    assert not queued.HasField("receipted_at")
    assert queued.rejection == "url-invalid: x"


def test_every_decoding_error_is_an_exchange_error() -> None:
    # the edge maps ExchangeError subclasses to gRPC statuses; nothing else may escape
    for valid, mutate, _ in INVALID.values():
        msg = lpb.CaseEvent()
        msg.CopyFrom(valid)
        mutate(msg)
        with pytest.raises(ExchangeError):
            event_from_bytes(msg.SerializeToString(deterministic=True))


def test_a_partner_case_carries_its_lifecycle() -> None:
    view = CaseView(
        id=case_id(),
        cursor=7,
        url="https://hosting-de.example/a.jpg",
        hosting_country="DE",
        opened_at=T0,
        reports=(),
        items=(make_state(0), closed_state()),
        timeline=(EVENTS["assessment"],),
    )
    msg = codec.partner_case_to_proto(view)
    assert (msg.id, msg.cursor, msg.url, msg.hosting_country) == (
        case_id(),
        "7",
        view.url,
        "DE",
    )
    assert msg.open
    assert not msg.withdrawn
    assert [s.stage for s in msg.items] == [cpb.ITEM_STAGE_UNASSESSED, cpb.ITEM_STAGE_UNAVAILABLE]
    assert [event_from_proto(e) for e in msg.timeline] == [EVENTS["assessment"]]

    gone = codec.partner_case_to_proto(
        replace(view, items=(closed_state(),), timeline=(), withdrawn=True)
    )
    assert not gone.open
    assert gone.withdrawn
    assert list(gone.timeline) == []
    # a case whose items this node has not recorded yet is open, with nothing to show
    assert codec.partner_case_to_proto(replace(view, items=())).open
