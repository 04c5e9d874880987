"""The domain model of a node: reports, items, content hashes, cases, outcomes.

Pure frozen dataclasses and enums — nothing of gRPC or SQLAlchemy. The codec converts to and from
protobuf; the store persists them. Validation that does not need the outside world (hash shapes,
sizes, enum values) happens here, in constructors named ``parse_*``, so every entry point (gRPC,
CLI, import files, envelopes from peers) applies the same rules and raises the same typed errors.

There is deliberately no field that can hold media bytes or a reporter's identity.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from exchange.errors import InvalidReport

if TYPE_CHECKING:  # the lifecycle's model builds on this one; only its names are needed here
    from exchange.lifecycle.model import CaseEvent, ItemState

MAX_NOTES_CHARS = 2000
MAX_ITEMS = 256
MAX_HASHES_PER_ITEM = 8
MAX_PAYMENT_METHODS = 16
MAX_PAYMENT_METHOD_CHARS = 64


class HashAlgorithm(enum.StrEnum):
    SHA256 = "sha256"
    SHA1 = "sha1"
    MD5 = "md5"
    PDQ = "pdq"

    @property
    def hex_length(self) -> int:
        return _HEX_LENGTH[self]


_HEX_LENGTH = {
    HashAlgorithm.SHA256: 64,
    HashAlgorithm.SHA1: 40,
    HashAlgorithm.MD5: 32,
    HashAlgorithm.PDQ: 64,
}
_HEX_DIGITS = frozenset("0123456789abcdef")
_REGION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}", re.ASCII)


class Classification(enum.StrEnum):
    BASELINE = "baseline"
    NATIONAL = "national"
    NOT_ILLEGAL = "not_illegal"
    DOUBTFUL = "doubtful"


class MediaType(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    FILE = "file"


class AgeGroup(enum.StrEnum):
    INFANT = "infant"
    PREPUBESCENT = "prepubescent"
    PUBESCENT = "pubescent"
    UNKNOWN = "unknown"


class SiteType(enum.StrEnum):
    WEBSITE = "website"
    IMAGE_HOST = "image_host"
    FILE_HOST = "file_host"
    FORUM = "forum"
    SOCIAL = "social"
    OTHER = "other"


class Outcome(enum.StrEnum):
    NEW_CASE = "new-case"
    MERGED = "merged"
    REJECTED = "rejected"
    ACCEPTED = "accepted"


class ReportRole(enum.StrEnum):
    """How a stored report reached this node: from its own intake, or from a peer's envelope."""

    ORIGIN = "origin"
    RECEIVED = "received"


class LogKind(enum.StrEnum):
    """What a routing-log entry records; the value is the ``kind`` stored and hashed."""

    INTAKE = "intake"  # a report entered through this node's intake, with its decision
    NEW_CASE = "new-case"  # a report this node is responsible for opened a case
    MERGED = "merged"  # ... or joined the open case for its URL
    REJECTED = "rejected"  # a payload refused in a receipt (given or received)
    SENT = "sent"  # a report left in a signed batch
    RECEIPTED = "receipted"  # the responsible peer's signed receipt came back
    ANNOUNCED = "announced"  # first sightings queued for the network's hash index
    GEO_DISAGREEMENT = "geo-disagreement"  # this node's GeoIP places the hosting elsewhere
    PULLED = "pulled"  # a partner pulled a case
    ACKED = "acked"  # a partner acknowledged a case
    ASSESSED = "assessed"  # a lifecycle event made here: an assessment …
    ACTED = "acted"  # … an action
    WITHDRAWAL = "withdrawal"  # this node (the origin) withdrew a report it sent
    WITHDRAWN = "withdrawn"  # a report left a case held here, at its origin's request
    EVENT_APPLIED = "event-applied"  # a member's lifecycle event applied here
    FEEDBACK = "feedback"  # a partner's feedback on a case
    ANONYMISED = "anonymised"  # retention purged closed cases
    TRANSFERRED = "transferred"  # a moved case's transfer: queued at the old holder, taken in
    TAKEN_OVER = "taken-over"  # the new holder's first step on items moved to it
    RECHECKED = "rechecked"  # takedown: a held case's URL checked again (outcome, hoster)
    HOSTER_CHANGED = "hoster-changed"  # … its hoster changed: notices go to the new one
    COUNTRY_CHANGED = "country-changed"  # … re-traced to another country this member serves
    REMOVAL_SUGGESTED = "gone-suggested"  # … gone on enough checks: an analyst confirms
    NOTICES_HELD = "notices-held"  # a partner or analyst holds a case's notices (evidence first)
    HOLD_RELEASED = "hold-released"  # … and released the hold
    # takedown notices to hosters' abuse contacts (exchange/takedown/notices.py)
    NOTICE_SENT = "notice-sent"  # the relay accepted a notice (its Message-ID, its cases)
    NOTICE_FAILED = "notice-failed"  # the relay refused a notice for good
    NO_CONTACT = "no-contact"  # online, but the directory has no (working) contact
    CONTACT_FOUND = "contact-found"  # … and now it has one
    VIEWED = "viewed"  # a person read a case page in `ihx web` (audited like a pull)


MAX_QUALITY = 100


@dataclass(frozen=True, slots=True, order=True)
class ContentHash:
    """An algorithm-tagged hash. ``quality`` (PDQ only, 0-100, ``None`` = not given) travels
    with it but is no part of its identity: equal hex, equal hash (ids, dedup, exact match)."""

    algorithm: HashAlgorithm
    hex: str
    quality: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_hash(
    algorithm: str, value: str, *, where: str = "hash", quality: int | None = None
) -> ContentHash:
    """Validate an algorithm-tagged hash; hex is lower-cased, its length fixed by the algorithm;
    a quality only on a PDQ hash, 0 to 100."""
    try:
        algo = HashAlgorithm(algorithm.strip().lower())
    except ValueError:
        raise InvalidReport(
            f"{where}: unknown hash algorithm {algorithm[:20]!r} "
            f"(expected one of {', '.join(a.value for a in HashAlgorithm)})",
            code="hash-algorithm",
        ) from None
    hex_ = value.strip().lower()
    if len(hex_) != algo.hex_length:
        raise InvalidReport(
            f"{where}: a {algo} hash has {algo.hex_length} hex digits, got {len(hex_)}",
            code="hash-length",
        )
    if not _HEX_DIGITS.issuperset(hex_):
        raise InvalidReport(f"{where}: {algo} hash is not hexadecimal", code="hash-not-hex")
    if quality is not None:
        if algo is not HashAlgorithm.PDQ:
            raise InvalidReport(
                f"{where}: only a pdq hash has a quality", code="hash-quality-not-pdq"
            )
        if not 0 <= quality <= MAX_QUALITY:
            raise InvalidReport(
                f"{where}: pdq quality is 0 to {MAX_QUALITY}, got {quality}",
                code="hash-quality-range",
            )
    return ContentHash(algo, hex_, quality)


def parse_hash_text(text: str, *, where: str = "hash") -> ContentHash:
    """Parse ``algorithm:hex`` as used by the CLI and import files; ``pdq:hex:quality`` gives a
    PDQ hash its quality."""
    algo, sep, value = text.partition(":")
    if not sep:
        raise InvalidReport(
            f"{where}: expected 'algorithm:hex' such as 'sha256:…'", code="hash-format"
        )
    value, sep, quality = value.partition(":")
    if not sep:
        return parse_hash(algo, value, where=where)
    if not quality.isascii() or not quality.isdigit() or len(quality) > 3:
        raise InvalidReport(
            f"{where}: the quality after the hash is a number 0 to {MAX_QUALITY}",
            code="hash-quality-range",
        )
    return parse_hash(algo, value, where=where, quality=int(quality))


@dataclass(frozen=True, slots=True)
class Item:
    """One image, video or file seen at the URL: its hashes and the analyst's assessment."""

    hashes: tuple[ContentHash, ...]
    classification: Classification
    media_type: MediaType
    age_group: AgeGroup


def make_item(
    hashes: Iterable[ContentHash],
    classification: Classification,
    media_type: MediaType = MediaType.IMAGE,
    age_group: AgeGroup = AgeGroup.UNKNOWN,
    *,
    where: str = "item",
) -> Item:
    """An item with its hashes de-duplicated and sorted, so equal content compares equal."""
    unique = tuple(sorted(set(hashes)))
    if not unique:
        raise InvalidReport(f"{where}: an item needs at least one hash", code="item-no-hash")
    if len(unique) > MAX_HASHES_PER_ITEM:
        raise InvalidReport(
            f"{where}: at most {MAX_HASHES_PER_ITEM} hashes per item", code="item-too-many-hashes"
        )
    algorithms = [h.algorithm for h in unique]
    if len(set(algorithms)) != len(algorithms):
        raise InvalidReport(
            f"{where}: two different hashes of the same algorithm in one item",
            code="item-conflicting-hashes",
        )
    return Item(unique, classification, media_type, age_group)


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """Report-level facts an analyst records, validated and capped."""

    site_type: SiteType = SiteType.WEBSITE
    commercial: bool = False
    payment_methods: tuple[str, ...] = ()
    notes: str = ""


def make_facts(
    site_type: SiteType = SiteType.WEBSITE,
    commercial: bool = False,
    payment_methods: Sequence[str] = (),
    notes: str = "",
) -> ReportFacts:
    if len(notes) > MAX_NOTES_CHARS:
        raise InvalidReport(
            f"notes: at most {MAX_NOTES_CHARS} characters, got {len(notes)}", code="notes-too-long"
        )
    _check_text(notes, "notes")
    if len(payment_methods) > MAX_PAYMENT_METHODS:
        raise InvalidReport(
            f"payment_methods: at most {MAX_PAYMENT_METHODS}", code="payment-methods-too-many"
        )
    methods: list[str] = []
    for i, method in enumerate(payment_methods):
        m = method.strip()
        if not m or len(m) > MAX_PAYMENT_METHOD_CHARS:
            raise InvalidReport(
                f"payment_methods[{i}]: must be 1 to {MAX_PAYMENT_METHOD_CHARS} characters",
                code="payment-method-invalid",
            )
        _check_text(m, f"payment_methods[{i}]")
        methods.append(m)
    return ReportFacts(site_type, commercial, tuple(methods), notes)


# Bidirectional overrides and isolates can disguise text shown to an analyst (Trojan Source).
_FORBIDDEN_FORMAT = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_unicode(text: str, where: str) -> None:
    """Refuse text that is not Unicode text at all: a lone surrogate cannot be sent as UTF-8."""
    if text.isascii():
        return
    for i, ch in enumerate(text, 1):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidReport(
                f"{where}: lone surrogate in text (character {i})", code="text-surrogate"
            )


def _check_text(text: str, where: str) -> None:
    check_unicode(text, where)
    for ch in text:
        if ch in _FORBIDDEN_FORMAT:
            raise InvalidReport(
                f"{where}: bidirectional override characters are not allowed", code="text-bidi"
            )
        o = ord(ch)
        if (o < 0x20 and ch not in "\n\t") or o == 0x7F:
            raise InvalidReport(f"{where}: control character U+{o:04X}", code="text-control")


def check_items(items: Sequence[Item]) -> tuple[Item, ...]:
    if not items:
        raise InvalidReport("items: a report needs at least one item", code="report-no-items")
    if len(items) > MAX_ITEMS:
        raise InvalidReport(f"items: at most {MAX_ITEMS} per report", code="report-too-many-items")
    seen: dict[ContentHash, int] = {}
    for i, item in enumerate(items):
        for h in item.hashes:
            j = seen.setdefault(h, i)
            if j != i:
                raise InvalidReport(
                    f"items[{i}]: hash {h.algorithm} also in items[{j}] — one item per content",
                    code="report-duplicate-item",
                )
    return tuple(items)


def report_id_for(origin: str, url_key: bytes, items: Sequence[Item]) -> str:
    """The deterministic id of a submission: same origin, URL and item hashes → same report.

    This makes intake idempotent by construction (DESIGN.md "Dedup") and lets every node
    deduplicate on the id alone.
    """
    h = hashlib.sha256()
    h.update(origin.encode())
    h.update(b"\x00")
    h.update(url_key)
    for content in sorted({c for item in items for c in item.hashes}):
        h.update(b"\x00")
        h.update(str(content).encode())
    return "r-" + h.hexdigest()[:32]


_ID_HEX = 32


def is_report_id(text: str) -> bool:
    """``r-`` and 32 lower-case hex digits: the form ``report_id_for`` gives."""
    return len(text) == 2 + _ID_HEX and text.startswith("r-") and _HEX_DIGITS.issuperset(text[2:])


def is_case_id(text: str) -> bool:
    """``c-`` and 32 lower-case hex digits: the form ``case_id_for`` gives."""
    return len(text) == 2 + _ID_HEX and text.startswith("c-") and _HEX_DIGITS.issuperset(text[2:])


_CASE_TIME_HEX = 12  # milliseconds since 1970 in 48 bits: until the year 10889
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def case_id_for(report_id: str, opened_at: datetime) -> str:
    """The id of the case ``report_id`` opens at ``opened_at``: the opening time in
    milliseconds (12 hex digits), then the first 20 hex digits of the report's id.

    Time first, as a UUIDv7 is, so ids sort by age and a new case's key lands at (or near) the
    right edge of every index that leads with it (``cases``, ``case_reports``, ``item_states``,
    and a reporting node's deliveries): a key derived from the report's hash alone took a random
    leaf of each, and a node holding hundreds of thousands of cases wrote each such leaf whole
    at every COMMIT. The report's digits keep ids opened in the same millisecond apart; where
    80 bits are not enough (a member grinding its own report ids), ``exchange.cases`` steps
    past an id already in use. The id shows when its case was opened, to the millisecond — as
    the case's own record does to whoever reads it."""
    ms = max(0, (opened_at - _EPOCH) // _MILLISECOND) % (1 << (4 * _CASE_TIME_HEX))
    digits = report_id.removeprefix("r-")[: _ID_HEX - _CASE_TIME_HEX]
    return f"c-{ms:0{_CASE_TIME_HEX}x}{digits}"


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where content was first seen in the network: the case holding it and its assessment."""

    member: str
    case_id: str
    classification: Classification
    first_seen: datetime
    report_id: str


@dataclass(frozen=True, slots=True)
class KnownContent:
    """One member's sighting of one hash (a hash index entry, or an announcement of one).

    Derived from all members' sightings, the earliest is the first sighting in the network.
    ``retracted``: the member withdraws its own sighting (only in announcements).
    """

    hash: ContentHash
    member: str
    case_id: str
    classification: Classification
    first_seen: datetime
    report_id: str
    retracted: bool = False

    def sighting(self) -> Sighting:
        return Sighting(
            self.member, self.case_id, self.classification, self.first_seen, self.report_id
        )


@dataclass(frozen=True, slots=True)
class NearSighting:
    """Near-known content: a sighted PDQ hash within the threshold of an item's PDQ hash (not
    equal to it — that is known content), with the first sighting of that hash."""

    hex: str
    distance: int
    sighting: Sighting


@dataclass(frozen=True, slots=True)
class ItemStatus:
    """Intake's answer per item: known content (with the first sighting) or new; its PDQ hash's
    near-known content, nearest first, or why it was not matched (``pdq_not_matched``)."""

    index: int
    known: Sighting | None
    near: tuple[NearSighting, ...] = ()
    pdq_not_matched: str = ""


@dataclass(frozen=True, slots=True)
class ItemPdq:
    """A case item's PDQ hash as the case shows it: the same hash's first sighting in another
    case (exact known content) apart from the nearest other hashes within the threshold
    (near-known content), or why the hash was not near-matched."""

    report_id: str
    index: int
    hex: str
    known: Sighting | None
    near: tuple[NearSighting, ...] = ()
    not_matched: str = ""


@dataclass(frozen=True, slots=True)
class Submission:
    """A report as an analyst submits it, before the node canonicalises and traces it.

    ``reporter_region`` is set only when the reporter consented (``parse_region``); it is kept
    at this node for its own statistics and is no part of the ``Report`` that is exchanged.
    """

    url: str
    facts: ReportFacts
    items: tuple[Item, ...]
    client_ref: str = ""
    reporter_region: str | None = None


def parse_region(region: str, consent: bool, *, where: str = "reporter_region") -> str | None:
    """A reporter's coarse region, recorded only with the reporter's explicit consent.

    ISO 3166-2: the country's two letters, ``-``, one to three letters or digits, upper case
    (``NL-NH``, ``GB-LND``, ``FR-75``). A region without consent is refused rather than dropped,
    so a client that forgot to ask learns it; consent without a region records nothing.
    """
    if not region:
        return None
    if not consent:
        raise InvalidReport(
            f"{where}: recorded only with the reporter's consent (set region_consent)",
            code="region-without-consent",
        )
    if _REGION.fullmatch(region) is None:
        raise InvalidReport(
            f"{where}: {region[:12]!r} is not an ISO 3166-2 subdivision code (two upper-case "
            "letters, '-', one to three upper-case letters or digits, e.g. NL-NH)",
            code="region-invalid",
        )
    return region


@dataclass(frozen=True, slots=True)
class Report:
    """A report as nodes hold and exchange it (the trace evidence travels in the wire bytes)."""

    id: str
    origin_member: str
    url: str
    url_key: bytes
    received_at: datetime
    facts: ReportFacts
    items: tuple[Item, ...]
    hosting_country: str | None
    decision_member: str
    decision_reason: str

    @property
    def hashes(self) -> tuple[ContentHash, ...]:
        return tuple(h for item in self.items for h in item.hashes)


@dataclass(frozen=True, slots=True)
class PayloadResult:
    """The receiver's verdict on one payload of a batch, as carried in the signed receipt."""

    index: int
    report_id: str
    outcome: Outcome
    case_id: str = ""
    reason: str = ""


MAX_REASON = 300


def rejected(index: int, echoed: str, code: str, message: str) -> PayloadResult:
    """A payload refused in a receipt: ``code: message``, printable and capped (the receipt is
    signed by us and read by the sender). ``echoed`` is the payload's id, already checked by
    the caller to be in its own form, or empty."""
    reason = "".join(c if c.isprintable() else "?" for c in f"{code}: {message}"[:MAX_REASON])
    return PayloadResult(index, echoed, Outcome.REJECTED, reason=reason)


@dataclass(frozen=True, slots=True)
class CaseReportView:
    """One report of a case as a partner receives it, with the receipt that started the clock."""

    report_id: str
    wire: bytes
    reporting_member: str
    receipt_body: bytes | None
    receipt_signature: bytes | None
    receipt_verified: bool
    receipt_time: datetime | None


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as a partner pulls it: where it is hosted, who reported it, the reports — and
    where its lifecycle stands: every item's state, the timeline of signed events, and whether
    every report of it was withdrawn by its origin."""

    id: str
    cursor: int
    url: str
    hosting_country: str | None
    opened_at: datetime
    reports: tuple[CaseReportView, ...]
    items: tuple[ItemState, ...] = ()
    timeline: tuple[CaseEvent, ...] = ()
    withdrawn: bool = False

    @property
    def open(self) -> bool:
        """Open until every item is closed (a case whose items are not known yet is open)."""
        return not self.items or any(not s.closed for s in self.items)

    @property
    def reporting_members(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.reporting_member for r in self.reports))

    @property
    def takedown_clock_started(self) -> datetime | None:
        times = [r.receipt_time for r in self.reports if r.receipt_time is not None]
        return min(times) if times else None
