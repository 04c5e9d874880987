"""Protobuf ⇄ domain conversion: the only module that knows both.

Decoding validates: enum values must be known, hashes well-formed, text within limits — a
message from a client or a peer becomes a domain object or an ``InvalidReport`` naming the field.
Encoding is straightforward and kept cheap because it runs once per report at intake.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from exchange.domain import (
    AgeGroup,
    CaseView,
    Classification,
    ContentHash,
    HashAlgorithm,
    Item,
    KnownContent,
    MediaType,
    NearSighting,
    Outcome,
    PayloadResult,
    Report,
    SiteType,
    Submission,
    check_items,
    is_case_id,
    is_report_id,
    make_facts,
    make_item,
    parse_hash,
    parse_region,
)
from exchange.errors import InvalidReport
from exchange.routing_log import Checkpoint, LogEntry
from exchange.times import to_micros
from exchange.version import VERSION
from exchange.wire.known_fields import require_exact
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import report_pb2 as pb
from ihx.v1 import routing_log_pb2 as lpb
from routing.decision import Decision, DecisionReason
from routing.geoip import GeoDatabaseInfo
from routing.trace import Trace

if TYPE_CHECKING:  # both import this module: a runtime import would be a cycle
    from exchange.intake import IntakeResult
    from exchange.wire.envelope import Limits

# -- enums: one table per enum, both directions ---------------------------------------------

_HASH = {
    HashAlgorithm.SHA256: pb.HASH_ALGORITHM_SHA256,
    HashAlgorithm.SHA1: pb.HASH_ALGORITHM_SHA1,
    HashAlgorithm.MD5: pb.HASH_ALGORITHM_MD5,
    HashAlgorithm.PDQ: pb.HASH_ALGORITHM_PDQ,
}
_CLASS = {
    Classification.BASELINE: pb.CLASSIFICATION_BASELINE,
    Classification.NATIONAL: pb.CLASSIFICATION_NATIONAL,
    Classification.NOT_ILLEGAL: pb.CLASSIFICATION_NOT_ILLEGAL,
    Classification.DOUBTFUL: pb.CLASSIFICATION_DOUBTFUL,
}
_MEDIA = {
    MediaType.IMAGE: pb.MEDIA_TYPE_IMAGE,
    MediaType.VIDEO: pb.MEDIA_TYPE_VIDEO,
    MediaType.FILE: pb.MEDIA_TYPE_FILE,
}
_AGE = {
    AgeGroup.INFANT: pb.AGE_GROUP_INFANT,
    AgeGroup.PREPUBESCENT: pb.AGE_GROUP_PREPUBESCENT,
    AgeGroup.PUBESCENT: pb.AGE_GROUP_PUBESCENT,
    AgeGroup.UNKNOWN: pb.AGE_GROUP_UNKNOWN,
}
_SITE = {
    SiteType.WEBSITE: pb.SITE_TYPE_WEBSITE,
    SiteType.IMAGE_HOST: pb.SITE_TYPE_IMAGE_HOST,
    SiteType.FILE_HOST: pb.SITE_TYPE_FILE_HOST,
    SiteType.FORUM: pb.SITE_TYPE_FORUM,
    SiteType.SOCIAL: pb.SITE_TYPE_SOCIAL,
    SiteType.OTHER: pb.SITE_TYPE_OTHER,
}
_REASON = {
    DecisionReason.SERVED_MEMBER: pb.DECISION_REASON_SERVED_MEMBER,
    DecisionReason.LOCAL: pb.DECISION_REASON_LOCAL,
    DecisionReason.ORPHAN_RULE: pb.DECISION_REASON_ORPHAN_RULE,
    DecisionReason.COORDINATOR_FALLBACK: pb.DECISION_REASON_COORDINATOR_FALLBACK,
    DecisionReason.UNTRACEABLE: pb.DECISION_REASON_UNTRACEABLE,
}
_OUTCOME = {
    Outcome.NEW_CASE: xpb.OUTCOME_NEW_CASE,
    Outcome.MERGED: xpb.OUTCOME_MERGED,
    Outcome.REJECTED: xpb.OUTCOME_REJECTED,
    Outcome.ACCEPTED: xpb.OUTCOME_ACCEPTED,
}


K = TypeVar("K")
V = TypeVar("V")


def _inverse(table: dict[K, V]) -> dict[V, K]:
    return {v: k for k, v in table.items()}


_HASH_IN = _inverse(_HASH)
_CLASS_IN = _inverse(_CLASS)
_MEDIA_IN = _inverse(_MEDIA)
_AGE_IN = _inverse(_AGE)
_SITE_IN = _inverse(_SITE)
_REASON_IN = _inverse(_REASON)
_OUTCOME_IN = _inverse(_OUTCOME)


def _enum_in(table: Mapping[Any, V], value: int, where: str, *, default: V | None = None) -> V:
    found = table.get(value)
    if found is not None:
        return found
    if value == 0 and default is not None:
        return default
    raise InvalidReport(f"{where}: missing or unknown value {value}", code="enum-invalid")


# -- time ----------------------------------------------------------------------------------


def timestamp(at: datetime) -> Timestamp:
    # Integer arithmetic: protobuf's FromDatetime goes through utctimetuple/timegm and was a
    # seventh of intake's CPU time (four timestamps per report).
    if at.tzinfo is None:
        raise ValueError("naive datetime: wire times must be timezone-aware")
    micros = to_micros(at)
    seconds, rest = divmod(micros, 1_000_000)
    return Timestamp(seconds=seconds, nanos=rest * 1000)


def _set_time(msg: Timestamp, at: datetime) -> None:
    """``timestamp(at)`` written into a message's own field (no message built and copied)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: wire times must be timezone-aware")
    seconds, rest = divmod(to_micros(at), 1_000_000)
    msg.SetInParent()  # present even at the epoch, as an assigned Timestamp is
    msg.seconds = seconds
    msg.nanos = rest * 1000


# The range of protobuf's Timestamp (and of datetime): 0001-01-01 to 9999-12-31T23:59:59.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_MIN, _SECONDS_MAX = -62_135_596_800, 253_402_300_799


def from_timestamp(ts: Timestamp) -> datetime:
    """An aware UTC datetime; a time outside years 1-9999 (or bad nanos) is an ``InvalidReport``."""
    # Plain arithmetic, as ``timestamp``: protobuf's ToDatetime was a fifth of decoding an event.
    seconds, nanos = ts.seconds, ts.nanos
    if not (_SECONDS_MIN <= seconds <= _SECONDS_MAX and 0 <= nanos < 1_000_000_000):
        raise InvalidReport(
            f"timestamp {seconds}s {nanos}ns is outside the representable range",
            code="time-range",
        )
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


# -- items and hashes ----------------------------------------------------------------------


def hash_to_proto(h: ContentHash, *, with_quality: bool = True) -> pb.ContentHash:
    """``with_quality``: write the PDQ quality (field 3). Off for what other nodes parse while
    ``[pdq] send_quality`` is off: a node older than the field refuses the bytes for good
    (read-first/write-later, README "Protocol versions")."""
    msg = pb.ContentHash(algorithm=_HASH[h.algorithm], hex=h.hex)
    if h.quality is not None and with_quality:
        msg.quality = h.quality
    return msg


def hash_from_proto(msg: pb.ContentHash, where: str) -> ContentHash:
    """A hash; its quality only when the sender set it (an older sender's PDQ: unknown)."""
    algo = _HASH_IN.get(msg.algorithm)
    if algo is None:
        raise InvalidReport(f"{where}.algorithm: unknown hash algorithm", code="hash-algorithm")
    quality = msg.quality if msg.HasField("quality") else None
    return parse_hash(algo.value, msg.hex, where=where, quality=quality)


def item_to_proto(item: Item, *, with_quality: bool = True) -> pb.Item:
    return pb.Item(
        hashes=[hash_to_proto(h, with_quality=with_quality) for h in item.hashes],
        classification=_CLASS[item.classification],
        media_type=_MEDIA[item.media_type],
        age_group=_AGE[item.age_group],
    )


def item_from_proto(msg: pb.Item, where: str) -> Item:
    return make_item(
        (hash_from_proto(h, f"{where}.hashes[{i}]") for i, h in enumerate(msg.hashes)),
        _enum_in(_CLASS_IN, msg.classification, f"{where}.classification"),
        _enum_in(_MEDIA_IN, msg.media_type, f"{where}.media_type", default=MediaType.IMAGE),
        _enum_in(_AGE_IN, msg.age_group, f"{where}.age_group", default=AgeGroup.UNKNOWN),
        where=where,
    )


def _plain_item(msg: pb.Item) -> Item | None:
    """The item of the common case — one known-algorithm hash without a quality, known enum
    values — as ``item_from_proto`` would give it, without its error-message strings (built
    for every field there, though only an error uses one); None for anything else, which then
    takes the full path with its messages."""
    if len(msg.hashes) != 1:
        return None
    h = msg.hashes[0]
    algo = _HASH_IN.get(h.algorithm)
    classification = _CLASS_IN.get(msg.classification)
    media = _MEDIA_IN.get(msg.media_type)
    if media is None and msg.media_type == 0:
        media = MediaType.IMAGE
    age = _AGE_IN.get(msg.age_group)
    if age is None and msg.age_group == 0:
        age = AgeGroup.UNKNOWN
    if algo is None or classification is None or media is None or age is None:
        return None
    if h.HasField("quality"):
        return None
    try:
        hashed = parse_hash(algo.value, h.hex)
    except InvalidReport:
        return None  # the full path raises it again, naming the field
    return Item((hashed,), classification, media, age)


def items_from_proto(msgs: Sequence[pb.Item]) -> tuple[Item, ...]:
    return check_items(
        [_plain_item(m) or item_from_proto(m, f"items[{i}]") for i, m in enumerate(msgs)]
    )


# -- intake --------------------------------------------------------------------------------


def submission_from_proto(req: ipb.SubmitReportRequest) -> Submission:
    if not req.url:
        raise InvalidReport("url: required", code="url-empty")
    facts = make_facts(
        _enum_in(_SITE_IN, req.site_type, "site_type", default=SiteType.WEBSITE),
        req.commercial,
        list(req.payment_methods),
        req.notes,
    )
    region = parse_region(req.reporter_region, req.region_consent)
    return Submission(req.url, facts, items_from_proto(req.items), req.client_ref[:200], region)


def submission_to_proto(s: Submission) -> ipb.SubmitReportRequest:
    return ipb.SubmitReportRequest(
        url=s.url,
        site_type=_SITE[s.facts.site_type],
        commercial=s.facts.commercial,
        payment_methods=list(s.facts.payment_methods),
        notes=s.facts.notes,
        items=[item_to_proto(i) for i in s.items],
        client_ref=s.client_ref,
        reporter_region=s.reporter_region or "",
        region_consent=s.reporter_region is not None,
    )


# -- trace and decision --------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _geo_db(info: GeoDatabaseInfo) -> pb.GeoDatabase:
    # Databases are immutable for a node's lifetime: build each message once (never mutated;
    # callers CopyFrom it).
    return pb.GeoDatabase(
        database_type=info.database_type, build_time=timestamp(info.build_time), layout=info.layout
    )


def trace_to_proto(trace: Trace) -> pb.Trace:
    msg = pb.Trace()
    _fill_trace(msg, trace)
    return msg


def _fill_trace(msg: pb.Trace, trace: Trace) -> None:
    # Filled in place (a report's own field): building it apart and copying it in cost as much
    # again.
    msg.host = trace.canonical.host
    msg.flags.extend(sorted(trace.canonical.flags))
    for a in trace.addresses:
        msg.addresses.add(
            address=a.address,
            country=a.country or "",
            asn=a.asn or 0,
            as_organization=a.as_organization or "",
            special=a.special or "",
            note=a.note or "",
        )
    msg.country = trace.country or ""
    msg.tied_countries.extend(trace.tied_countries)
    msg.country_database.CopyFrom(_geo_db(trace.country_database))
    _set_time(msg.traced_at, trace.traced_at)
    msg.resolver_error = trace.resolver_error or ""
    if trace.asn_database is not None:
        msg.asn_database.CopyFrom(_geo_db(trace.asn_database))


def decision_from_proto(msg: pb.Decision, self_member: str | None) -> Decision:
    return Decision(
        member=msg.member,
        reason=_enum_in(_REASON_IN, msg.reason, "decision.reason"),
        country=msg.country or None,
        explanation=msg.explanation,
        manifest_epoch=msg.manifest_epoch,
        local=msg.member == self_member,
    )


# -- intake results and node info -----------------------------------------------------------

SOFTWARE_VERSION = f"ihx/{VERSION}"  # the installed package's (exchange/version.py)
# Wire schema versions this node speaks. Unknown fields are refused (wire/known_fields.py), so a
# schema change ships as a new package (ihx.v2) beside the old one, used only with peers that list
# it in NodeInfo.protocols.
PROTOCOLS = ("ihx.v1",)


def near_to_proto(n: NearSighting) -> ipb.NearSighting:
    s = n.sighting
    return ipb.NearSighting(
        hex=n.hex,
        distance=n.distance,
        member=s.member,
        case_id=s.case_id,
        classification=_CLASS[s.classification],
        first_seen=timestamp(s.first_seen),
    )


def result_to_proto(result: IntakeResult, *, with_trace: bool) -> ipb.SubmitReportResponse:
    """Intake's answer to one submission; the trace (from the stored wire bytes) on request."""
    msg = ipb.SubmitReportResponse()
    fill_result(msg, result, with_trace=with_trace)
    return msg


def fill_result(msg: ipb.SubmitReportResponse, result: IntakeResult, *, with_trace: bool) -> None:
    """``result_to_proto`` into ``msg``: a bulk answer's entry filled in place (``add``), as a
    message built apart and appended is copied — a fifth of the answer's cost per report."""
    msg.report_id = result.report_id
    msg.canonical_url = result.canonical_url
    _fill_decision(msg.decision, result.decision)
    msg.duplicate = result.duplicate
    msg.client_ref = result.client_ref
    for status in result.items:
        item = msg.items.add(index=status.index, known_content=status.known is not None)
        if status.known is not None:
            item.first_seen_member = status.known.member
            item.first_seen_case = status.known.case_id
            item.first_classification = _CLASS[status.known.classification]
        item.pdq_not_matched = status.pdq_not_matched
        item.near.extend(near_to_proto(n) for n in status.near)
    if with_trace:
        msg.trace.CopyFrom(parse_report(result.wire).trace)


def node_info(member: str, epoch: int, key_ids: list[str], limits: Limits) -> xpb.NodeInfo:
    """What GetNodeInfo tells a peer: who we are, our keys, limits and wire versions."""
    return xpb.NodeInfo(
        member=member,
        manifest_epoch=epoch,
        software_version=SOFTWARE_VERSION,
        key_ids=key_ids,
        max_batch_reports=limits.max_payloads,
        max_message_bytes=limits.max_envelope_bytes,
        protocols=PROTOCOLS,
    )


# -- reports -------------------------------------------------------------------------------


def report_to_proto(
    report: Report, trace: Trace | None, decision: Decision, *, with_quality: bool = False
) -> pb.Report:
    """The wire report; PDQ qualities only ``with_quality`` (``[pdq] send_quality``).

    Runs once per report at intake: sub-messages are filled in place (``add``, ``_fill_*``)
    rather than built apart and copied in — the same fields, so the same bytes."""
    facts = report.facts
    msg = pb.Report(
        id=report.id,
        url=report.url,
        url_key=report.url_key,
        origin_member=report.origin_member,
        site_type=_SITE[facts.site_type],
        commercial=facts.commercial,
        payment_methods=facts.payment_methods,
        notes=facts.notes,
    )
    _set_time(msg.received_at, report.received_at)
    for item in report.items:
        _fill_item(msg.items.add(), item, with_quality)
    _fill_decision(msg.decision, decision)
    if trace is not None:
        msg.trace.SetInParent()
        _fill_trace(msg.trace, trace)
    return msg


def _fill_item(msg: pb.Item, item: Item, with_quality: bool) -> None:
    for h in item.hashes:
        added = msg.hashes.add(algorithm=_HASH[h.algorithm], hex=h.hex)
        if h.quality is not None and with_quality:
            added.quality = h.quality
    msg.classification = _CLASS[item.classification]
    msg.media_type = _MEDIA[item.media_type]
    msg.age_group = _AGE[item.age_group]


def _fill_decision(msg: pb.Decision, decision: Decision) -> None:
    msg.SetInParent()  # present even with every field at its default, as an assigned one is
    msg.member = decision.member
    msg.reason = _REASON[decision.reason]
    msg.country = decision.country or ""
    msg.explanation = decision.explanation
    msg.manifest_epoch = decision.manifest_epoch


def parse_report(data: bytes) -> pb.Report:
    """Parse signed report bytes: valid, and holding nothing but the schema's own fields."""
    msg = pb.Report()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        raise InvalidReport(
            "payload is not a valid ihx.v1.Report", code="report-malformed"
        ) from None
    require_exact(msg, data, "report")
    return msg


def anonymised_report(data: bytes) -> bytes:
    """The stored report after retention: what could lead to the content or the site is gone.

    Cleared: the URL and its key, the notes, every item's hashes, the traced host, every
    address (and its note), the resolver's error and the decision's explanation (either may
    name the host). Kept, for statistics: the id, origin, times, site type, commercial flag,
    payment methods, each item's classification, media type and age group, the hosting
    country, each address's country, ASN and AS organisation (the hoster), the GeoIP
    databases and the decision. The bytes are no longer what was signed: the row says so
    (``anonymised_at``) and ``ihx verify-report`` answers "anonymised".
    """
    msg = parse_report(data)
    msg.url = ""
    msg.url_key = b""
    msg.notes = ""
    for item in msg.items:
        del item.hashes[:]
    if msg.HasField("trace"):  # (touching an absent one would add it)
        trace = msg.trace
        trace.host = ""
        trace.resolver_error = ""
        for address in trace.addresses:
            address.address = ""
            address.note = ""
    if msg.HasField("decision"):
        msg.decision.explanation = ""
    return msg.SerializeToString(deterministic=True)


def report_from_proto(msg: pb.Report) -> Report:
    """Decode and validate a report received from a peer (not yet checked against the URL)."""
    if not is_report_id(msg.id):
        raise InvalidReport("id: not a report id", code="report-id")
    if len(msg.url_key) != 32:
        raise InvalidReport("url_key: must be 32 bytes", code="url-key")
    if not msg.HasField("received_at"):
        raise InvalidReport("received_at: required", code="report-time")
    if not msg.HasField("decision"):
        raise InvalidReport("decision: required", code="report-decision")
    facts = make_facts(
        _enum_in(_SITE_IN, msg.site_type, "site_type", default=SiteType.WEBSITE),
        msg.commercial,
        list(msg.payment_methods),
        msg.notes,
    )
    decision_reason = _enum_in(_REASON_IN, msg.decision.reason, "decision.reason")
    return Report(
        id=msg.id,
        origin_member=msg.origin_member,
        url=msg.url,
        url_key=msg.url_key,
        received_at=from_timestamp(msg.received_at),
        facts=facts,
        items=items_from_proto(msg.items),
        hosting_country=msg.decision.country or None,
        decision_member=msg.decision.member,
        decision_reason=decision_reason.value,
    )


# -- announcements and receipts --------------------------------------------------------------


def announcement_to_proto(k: KnownContent, *, with_quality: bool = False) -> xpb.HashAnnouncement:
    """The announcement; the PDQ quality only ``with_quality`` (``[pdq] send_quality``)."""
    return xpb.HashAnnouncement(
        hash=hash_to_proto(k.hash, with_quality=with_quality),
        case_id=k.case_id,
        member=k.member,
        classification=_CLASS[k.classification],
        first_seen=timestamp(k.first_seen),
        report_id=k.report_id,
        retracted=k.retracted,
    )


def announcement_bytes(k: KnownContent, *, with_quality: bool = False) -> bytes:
    return announcement_to_proto(k, with_quality=with_quality).SerializeToString()


def announcement_from_bytes(data: bytes) -> KnownContent:
    msg = xpb.HashAnnouncement()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        raise InvalidReport(
            "payload is not a valid ihx.v1.HashAnnouncement", code="announcement-malformed"
        ) from None
    require_exact(msg, data, "announcement")
    if not msg.HasField("first_seen") or not msg.case_id or not msg.member:
        raise InvalidReport(
            "announcement: hash, case, member and time required", code="announcement"
        )
    # Ids are shown to analysts and stored: only the forms ihx itself makes.
    if not is_case_id(msg.case_id):
        raise InvalidReport("case_id: not a case id (c- and 32 hex digits)", code="case-id")
    if not is_report_id(msg.report_id):
        raise InvalidReport("report_id: not a report id (r- and 32 hex digits)", code="report-id")
    return KnownContent(
        hash=hash_from_proto(msg.hash, "hash"),
        member=msg.member,
        case_id=msg.case_id,
        classification=_enum_in(_CLASS_IN, msg.classification, "classification"),
        first_seen=from_timestamp(msg.first_seen),
        report_id=msg.report_id,
        retracted=msg.retracted,
    )


def outcome_to_proto(r: PayloadResult) -> xpb.PayloadOutcome:
    return xpb.PayloadOutcome(
        index=r.index,
        report_id=r.report_id,
        outcome=_OUTCOME[r.outcome],
        case_id=r.case_id,
        reason=r.reason,
    )


def outcome_from_proto(msg: xpb.PayloadOutcome) -> PayloadResult:
    return PayloadResult(
        index=msg.index,
        report_id=msg.report_id,
        outcome=_enum_in(_OUTCOME_IN, msg.outcome, "outcome"),
        case_id=msg.case_id,
        reason=msg.reason,
    )


def age_group_to_proto(a: AgeGroup) -> pb.AgeGroup.ValueType:
    return _AGE[a]


def age_group_from_proto(value: int, where: str) -> AgeGroup:
    """An age group; unset is ``unknown`` (not determined)."""
    return _enum_in(_AGE_IN, value, where, default=AgeGroup.UNKNOWN)


def classification_to_proto(c: Classification) -> pb.Classification.ValueType:
    return _CLASS[c]


def classification_from_proto(value: int) -> Classification:
    return _enum_in(_CLASS_IN, value, "classification")


def receipt_key_and_time(body: bytes) -> tuple[str, datetime]:
    """The signing key id and receipt time of a stored receipt body."""
    msg = xpb.ReceiptBody()
    msg.ParseFromString(body)
    return msg.key_id, from_timestamp(msg.received_at)


# -- partner cases, routing-log entries and checkpoints (partner_service.py, log_service.py) --


def case_to_proto(view: CaseView) -> ppb.Case:
    msg = ppb.Case(
        id=view.id,
        cursor=str(view.cursor),
        url=view.url,
        hosting_country=view.hosting_country or "",
        reporting_members=list(view.reporting_members),
        opened_at=timestamp(view.opened_at),
    )
    started = view.takedown_clock_started
    if started is not None:
        msg.takedown_clock_started.CopyFrom(timestamp(started))
    for part in view.reports:
        item = msg.reports.add(
            reporting_member=part.reporting_member, receipt_verified=part.receipt_verified
        )
        # Stored bytes were validated on the way in: parse them straight into the answer.
        item.report.MergeFromString(part.wire)
        if part.receipt_body is not None and part.receipt_signature is not None:
            item.receipt.CopyFrom(
                xpb.SignedReceipt(body=part.receipt_body, signature=part.receipt_signature)
            )
    return msg


def entry_to_proto(e: LogEntry) -> lpb.LogEntry:
    return lpb.LogEntry(
        index=e.idx,
        at=timestamp(e.at),
        kind=e.kind,
        report_id=e.report_id or "",
        member=e.member or "",
        country=e.country or "",
        detail_json=e.detail,
        previous_hash=e.previous_hash,
        entry_hash=e.entry_hash,
    )


def entry_from_proto(m: lpb.LogEntry) -> LogEntry:
    return LogEntry(
        m.index,
        from_timestamp(m.at),
        m.kind,
        m.report_id or None,
        m.member or None,
        m.country or None,
        m.detail_json,
        m.previous_hash,
        m.entry_hash,
    )


def checkpoint_to_proto(cp: Checkpoint) -> lpb.Checkpoint:
    return lpb.Checkpoint(
        member=cp.member,
        size=cp.size,
        head_hash=cp.head_hash,
        at=timestamp(cp.at),
        key_id=cp.key_id,
        signature=cp.signature,
    )


def checkpoint_from_proto(m: lpb.Checkpoint) -> Checkpoint:
    return Checkpoint(m.member, m.size, m.head_hash, from_timestamp(m.at), m.key_id, m.signature)
