"""Protobuf ⇄ domain: lossless round trips, and validation that names the offending field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.domain import (
    MAX_NOTES_CHARS,
    MAX_PAYMENT_METHOD_CHARS,
    AgeGroup,
    Classification,
    ContentHash,
    HashAlgorithm,
    Item,
    KnownContent,
    MediaType,
    Outcome,
    PayloadResult,
    SiteType,
    Submission,
    make_facts,
    make_item,
    parse_region,
)
from exchange.errors import InvalidReport
from exchange.wire.codec import (
    announcement_from_bytes,
    announcement_to_proto,
    anonymised_report,
    classification_from_proto,
    classification_to_proto,
    item_from_proto,
    item_to_proto,
    outcome_from_proto,
    outcome_to_proto,
    parse_report,
    report_from_proto,
    report_to_proto,
    submission_from_proto,
    submission_to_proto,
)
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb
from routing.decision import DecisionReason
from tests.exchange.factories import (
    announcement_bytes,
    content_hash,
    make_announcement,
    make_decision,
    make_report,
    make_submission,
    make_test_item,
    report_wire,
)

# -- strategies ---------------------------------------------------------------------------------

_FORBIDDEN = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
safe_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=_FORBIDDEN),
    max_size=40,
)


def hashes_of(algorithm: HashAlgorithm) -> st.SearchStrategy[ContentHash]:
    n = algorithm.hex_length
    return st.text(alphabet="0123456789abcdef", min_size=n, max_size=n).map(
        lambda hex_: ContentHash(algorithm, hex_)
    )


@st.composite
def items(draw: st.DrawFn) -> Item:
    algorithms = draw(st.sets(st.sampled_from(list(HashAlgorithm)), min_size=1))
    return make_item(
        [draw(hashes_of(a)) for a in sorted(algorithms)],
        draw(st.sampled_from(list(Classification))),
        draw(st.sampled_from(list(MediaType))),
        draw(st.sampled_from(list(AgeGroup))),
    )


def _distinct(its: list[Item]) -> bool:
    hashes = [h for i in its for h in i.hashes]
    return len(hashes) == len(set(hashes))


item_lists = st.lists(items(), min_size=1, max_size=6).filter(_distinct)
payment_methods = st.lists(
    safe_text.filter(lambda m: m == m.strip() and 0 < len(m) <= MAX_PAYMENT_METHOD_CHARS),
    max_size=4,
)
notes = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=_FORBIDDEN)
    | st.sampled_from("\n\t"),
    max_size=MAX_NOTES_CHARS,
)


@st.composite
def submissions(draw: st.DrawFn) -> Submission:
    facts = make_facts(
        draw(st.sampled_from(list(SiteType))),
        draw(st.booleans()),
        draw(payment_methods),
        draw(notes),
    )
    return Submission(
        url=draw(safe_text.filter(bool)),
        facts=facts,
        items=tuple(draw(item_lists)),
        client_ref=draw(st.text(max_size=200)),
        reporter_region=draw(st.none() | st.from_regex(r"[A-Z]{2}-[A-Z0-9]{1,3}", fullmatch=True)),
    )


times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def announcements(draw: st.DrawFn) -> KnownContent:
    algorithm = draw(st.sampled_from(list(HashAlgorithm)))
    return KnownContent(
        hash=draw(hashes_of(algorithm)),
        member=draw(st.from_regex(r"[a-z][a-z0-9-]{1,20}", fullmatch=True)),
        case_id="c-" + draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        classification=draw(st.sampled_from(list(Classification))),
        first_seen=draw(times),
        report_id="r-" + draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        retracted=draw(st.booleans()),
    )


payload_results = st.builds(
    PayloadResult,
    index=st.integers(min_value=0, max_value=2**32 - 1),
    report_id=st.text(max_size=40),
    outcome=st.sampled_from(list(Outcome)),
    case_id=st.text(max_size=40),
    reason=st.text(max_size=300),
)

# -- round trips --------------------------------------------------------------------------------


@given(items())
def test_item_round_trip(item: Item) -> None:
    msg = pb.Item.FromString(item_to_proto(item).SerializeToString())
    assert item_from_proto(msg, "items[0]") == item


@settings(max_examples=150)
@given(submissions())
def test_submission_round_trip(submission: Submission) -> None:
    wire = submission_to_proto(submission).SerializeToString()
    assert submission_from_proto(ipb.SubmitReportRequest.FromString(wire)) == submission


@given(announcements())
def test_announcement_round_trip(k: KnownContent) -> None:
    assert announcement_from_bytes(announcement_bytes(k)) == k


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("case_id", "c-late", "case-id"),
        ("case_id", "c-" + "A" * 32, "case-id"),
        ("case_id", "r-" + "0" * 32, "case-id"),
        ("report_id", "", "report-id"),
        ("report_id", "r-" + "0" * 31 + "\n", "report-id"),
    ],
)
def test_announcement_ids_must_have_their_form(field: str, value: str, code: str) -> None:
    msg = announcement_to_proto(make_announcement("a"))
    setattr(msg, field, value)
    with pytest.raises(InvalidReport) as refused:
        announcement_from_bytes(msg.SerializeToString())
    assert refused.value.code == code


@given(payload_results)
def test_outcome_round_trip(r: PayloadResult) -> None:
    wire = outcome_to_proto(r).SerializeToString()
    assert outcome_from_proto(xpb.PayloadOutcome.FromString(wire)) == r


@pytest.mark.parametrize("c", list(Classification))
def test_classification_round_trip(c: Classification) -> None:
    assert classification_from_proto(classification_to_proto(c)) is c


def test_report_round_trip() -> None:
    report = make_report(
        hashes=["a", "b"], decision_member="us-ncmec", decision_reason=DecisionReason.ORPHAN_RULE
    )
    assert report_from_proto(parse_report(report_wire(report))) == report


def test_unset_media_type_and_age_group_take_defaults() -> None:
    msg = item_to_proto(make_test_item("a"))
    msg.ClearField("media_type")
    msg.ClearField("age_group")
    item = item_from_proto(msg, "items[0]")
    assert item.media_type is MediaType.IMAGE
    assert item.age_group is AgeGroup.UNKNOWN


def test_unset_site_type_is_website() -> None:
    req = submission_to_proto(make_submission())
    req.ClearField("site_type")
    assert submission_from_proto(req).facts.site_type is SiteType.WEBSITE


# -- unknown enum values ------------------------------------------------------------------------


def _request(**item_fields: int) -> ipb.SubmitReportRequest:
    req = submission_to_proto(make_submission(hashes=["a", "b"]))
    for name, value in item_fields.items():
        setattr(req.items[1], name, value)
    return req


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("classification", 99, "items[1].classification"),
        ("classification", 0, "items[1].classification"),  # required: no default
        ("media_type", 42, "items[1].media_type"),
        ("age_group", 17, "items[1].age_group"),
    ],
)
def test_unknown_item_enum_names_the_field(field: str, value: int, where: str) -> None:
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(_request(**{field: value}))
    assert info.value.code == "enum-invalid"
    assert info.value.message.startswith(where + ":")


@pytest.mark.parametrize("value", [0, 5, 1000])
def test_unknown_hash_algorithm_names_the_field(value: int) -> None:
    req = _request()
    req.items[1].hashes[0].algorithm = value  # type: ignore[assignment]
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(req)
    assert info.value.code == "hash-algorithm"
    assert info.value.message.startswith("items[1].hashes[0].algorithm:")


def test_bad_hash_hex_names_the_field() -> None:
    req = _request()
    req.items[0].hashes[0].hex = "zz" * 32
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(req)
    assert info.value.code == "hash-not-hex"
    assert "items[0].hashes[0]" in info.value.message


def test_unknown_site_type_names_the_field() -> None:
    req = _request()
    req.site_type = 66  # type: ignore[assignment]
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(req)
    assert info.value.message.startswith("site_type:")


def test_submission_needs_a_url() -> None:
    req = _request()
    req.url = ""
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(req)
    assert info.value.code == "url-empty"


def test_submission_items_are_checked_together() -> None:
    req = submission_to_proto(make_submission(hashes=["a"]))
    req.items.append(req.items[0])
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(req)
    assert info.value.code == "report-duplicate-item"


def test_client_ref_is_capped() -> None:
    req = _request()
    req.client_ref = "r" * 500
    assert submission_from_proto(req).client_ref == "r" * 200


@pytest.mark.parametrize("value", [0, 9])
def test_unknown_outcome_names_the_field(value: int) -> None:
    msg = xpb.PayloadOutcome(index=0, outcome=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidReport) as info:
        outcome_from_proto(msg)
    assert info.value.message.startswith("outcome:")


def test_unknown_announcement_classification_names_the_field() -> None:
    msg = announcement_to_proto(make_announcement())
    msg.classification = 12  # type: ignore[assignment]
    with pytest.raises(InvalidReport) as info:
        announcement_from_bytes(msg.SerializeToString())
    assert info.value.message.startswith("classification:")


@pytest.mark.parametrize("missing", ["first_seen", "case_id", "member"])
def test_announcement_requires_its_fields(missing: str) -> None:
    msg = announcement_to_proto(make_announcement())
    msg.ClearField(missing)  # type: ignore[arg-type]
    with pytest.raises(InvalidReport) as info:
        announcement_from_bytes(msg.SerializeToString())
    assert info.value.code == "announcement"


def test_malformed_announcement_bytes() -> None:
    with pytest.raises(InvalidReport) as info:
        announcement_from_bytes(b"\xff\xff\xff")
    assert info.value.code == "announcement-malformed"


# -- report_from_proto --------------------------------------------------------------------------


def _report_msg() -> pb.Report:
    return parse_report(report_wire(make_report(hashes=["a", "b"])))


def test_report_from_proto_accepts_a_valid_report() -> None:
    report = report_from_proto(_report_msg())
    assert report.decision_member == "de-eco"
    assert report.hosting_country == "DE"
    assert report.decision_reason == DecisionReason.SERVED_MEMBER.value


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda m: setattr(m, "id", "x-" + "0" * 32), "report-id"),
        (lambda m: setattr(m, "id", m.id[:-1]), "report-id"),
        (lambda m: setattr(m, "id", ""), "report-id"),
        (lambda m: setattr(m, "url_key", m.url_key[:31]), "url-key"),
        (lambda m: setattr(m, "url_key", b""), "url-key"),
        (lambda m: m.ClearField("received_at"), "report-time"),
        (lambda m: m.ClearField("decision"), "report-decision"),
        (lambda m: setattr(m.decision, "reason", 0), "enum-invalid"),
        (lambda m: setattr(m.decision, "reason", 42), "enum-invalid"),
        (lambda m: setattr(m, "notes", "x" * (MAX_NOTES_CHARS + 1)), "notes-too-long"),
        (lambda m: setattr(m, "notes", "hidden \u202e text"), "text-bidi"),
        (lambda m: setattr(m, "site_type", 99), "enum-invalid"),
        (lambda m: m.ClearField("items"), "report-no-items"),
        (lambda m: setattr(m.items[0], "classification", 0), "enum-invalid"),
        (lambda m: setattr(m.items[1].hashes[0], "hex", "abc"), "hash-length"),
        (lambda m: m.items.append(m.items[0]), "report-duplicate-item"),
    ],
)
def test_report_from_proto_validates(mutate: object, code: str) -> None:
    msg = _report_msg()
    mutate(msg)  # type: ignore[operator]
    with pytest.raises(InvalidReport) as info:
        report_from_proto(msg)
    assert info.value.code == code


def test_report_from_proto_names_the_decision_reason_field() -> None:
    msg = _report_msg()
    msg.decision.reason = 42  # type: ignore[assignment]
    with pytest.raises(InvalidReport) as info:
        report_from_proto(msg)
    assert info.value.message.startswith("decision.reason:")


def test_parse_report_refuses_garbage() -> None:
    with pytest.raises(InvalidReport) as info:
        parse_report(b"\x0a\xff\xff\xff\xff")
    assert info.value.code == "report-malformed"


def test_report_carries_decision_and_trace_free_wire() -> None:
    report = make_report()
    msg = report_to_proto(report, None, make_decision("de-eco"))
    assert not msg.HasField("trace")
    assert msg.decision.member == "de-eco"
    assert msg.decision.manifest_epoch == 1


# -- the reporter's region ----------------------------------------------------------------------


def test_a_region_is_sent_with_its_consent_and_read_only_with_it() -> None:
    submission = replace(make_submission(), reporter_region="GB-LND")
    req = submission_to_proto(submission)
    assert (req.reporter_region, req.region_consent) == ("GB-LND", True)
    assert submission_from_proto(req) == submission
    plain = submission_to_proto(make_submission())
    assert (plain.reporter_region, plain.region_consent) == ("", False)
    plain.region_consent = True  # consent alone records nothing
    assert submission_from_proto(plain).reporter_region is None


@pytest.mark.parametrize(
    ("region", "consent", "code"),
    [
        ("NL-NH", False, "region-without-consent"),
        ("NL-nh", True, "region-invalid"),
        ("N1-NH", True, "region-invalid"),
        ("NL-", True, "region-invalid"),
        ("NL-ABCD", True, "region-invalid"),
        (" NL-NH", True, "region-invalid"),
        ("NL-NH\n", True, "region-invalid"),
    ],
)
def test_a_region_without_consent_or_out_of_form_is_invalid(
    region: str, consent: bool, code: str
) -> None:
    req = submission_to_proto(make_submission())
    req.reporter_region, req.region_consent = region, consent
    with pytest.raises(InvalidReport) as info:
        submission_from_proto(req)
    assert info.value.code == code
    assert info.value.message.startswith("reporter_region: ")


@pytest.mark.parametrize("region", ["NL-NH", "FR-75", "GB-LND", "US-CA", "DE-9"])
def test_iso_3166_2_codes_are_regions(region: str) -> None:
    assert parse_region(region, True) == region
    assert parse_region("", False) is None


# -- retention ----------------------------------------------------------------------------------


def test_an_anonymised_report_keeps_the_figures_and_nothing_that_leads_back() -> None:
    report = make_report(hashes=["a", "b"], facts=make_facts(SiteType.FORUM, notes="see x.example"))
    msg = parse_report(report_wire(report))
    msg.trace.CopyFrom(
        pb.Trace(
            host="hosting-de.example",
            flags=["idn"],
            addresses=[
                pb.TracedAddress(
                    address="192.0.2.7", country="DE", asn=24940, as_organization="Hetzner"
                ),
                pb.TracedAddress(address="2001:db8::7", country="DE", note="nat64"),
            ],
            country="DE",
            resolver_error="SERVFAIL for hosting-de.example",
        )
    )
    msg.decision.explanation = "untraceable (hosting-de.example): sent to coordinator"
    data = msg.SerializeToString(deterministic=True)

    gone = parse_report(anonymised_report(data))
    assert (gone.url, gone.url_key, gone.notes) == ("", b"", "")
    assert [list(i.hashes) for i in gone.items] == [[], []]
    assert (gone.trace.host, gone.trace.resolver_error, gone.decision.explanation) == ("", "", "")
    assert [(a.address, a.note) for a in gone.trace.addresses] == [("", ""), ("", "")]
    # kept: ids, times, facts, classifications, countries, the hoster, the decision
    assert (gone.id, gone.origin_member, gone.received_at) == (
        msg.id,
        msg.origin_member,
        msg.received_at,
    )
    assert (gone.site_type, gone.trace.country, list(gone.trace.flags)) == (
        pb.SITE_TYPE_FORUM,
        "DE",
        ["idn"],
    )
    assert [i.classification for i in gone.items] == [i.classification for i in msg.items]
    assert [(a.country, a.asn, a.as_organization) for a in gone.trace.addresses] == [
        ("DE", 24940, "Hetzner"),
        ("DE", 0, ""),
    ]
    assert (gone.decision.member, gone.decision.reason) == (
        msg.decision.member,
        msg.decision.reason,
    )
    for secret in (
        b"hosting-de.example",
        b"192.0.2.7",
        b"x.example",
        content_hash("a").hex.encode(),
    ):
        assert secret not in anonymised_report(data)


def test_anonymising_adds_no_trace_a_report_did_not_have() -> None:
    data = report_wire(make_report())
    assert not parse_report(data).HasField("trace")
    assert not parse_report(anonymised_report(data)).HasField("trace")
