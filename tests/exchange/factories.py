"""Factories for the node-core tests: hashes, items, submissions, reports, wire bytes, envelopes.

Everything is deterministic: hashes derive from a *seed* string (``content_hash("cat-1")`` is
the same value in every run and every test), times start at ``T0`` and URLs are built with
``url_in(country)`` so that the static resolver of ``tests/exchange/conftest.py`` sends them to
an address the test GeoIP databases place in that country.

The network is the shared test network of ``tests.auth.factories`` (members ``nl-eokm`` NL,
``de-eco`` DE, ``us-ncmec`` US, ``ro-safernet`` RO, coordinator ``inhope``; orphan rule
JP → us-ncmec; GB has neither a member nor a rule, so it falls back to the coordinator).
Keys are derived from the member id (``signing_key("nl-eokm")``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from auth.keys import SigningKey
from exchange.domain import (
    AgeGroup,
    Classification,
    ContentHash,
    HashAlgorithm,
    Item,
    KnownContent,
    MediaType,
    Report,
    ReportFacts,
    SiteType,
    Submission,
    make_facts,
    make_item,
    report_id_for,
)
from exchange.settings import Settings
from exchange.store import schema
from exchange.store.writer import Tx, Writer
from exchange.tools.provision import MemberPlan, provision_federation
from exchange.wire.codec import announcement_to_proto, report_to_proto
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT, Sealed, seal
from routing.canonical import canonicalize
from routing.decision import Decision, DecisionReason
from tests.auth.factories import COORDINATOR, NetworkKit, make_network, signing_key
from tests.dbs import Databases

__all__ = [
    "COORDINATOR",
    "KIND_ANNOUNCEMENT",
    "KIND_REPORT",
    "MEMBER_COUNTRY",
    "T0",
    "FakeClock",
    "NetworkKit",
    "announcement_bytes",
    "content_hash",
    "host_in",
    "make_announcement",
    "make_decision",
    "make_network",
    "make_report",
    "make_submission",
    "make_test_item",
    "report_wire",
    "seal_batch",
    "signing_key",
    "table_counts",
    "url_in",
    "writer_held",
]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""The start of every test clock; the test network's keys are valid from 2025-01-01."""

MEMBER_COUNTRY = {"nl-eokm": "NL", "de-eco": "DE", "us-ncmec": "US", "ro-safernet": "RO"}
"""The country each national member of the test network serves."""


# -- time ---------------------------------------------------------------------------------------


class FakeClock:
    """An injectable clock (``clock()`` → aware UTC datetime) that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 1.0) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = at


# -- URLs ---------------------------------------------------------------------------------------


def host_in(country: str) -> str:
    """A host name the ``resolver`` fixture maps to an address in ``country`` (e.g. "NL")."""
    return f"hosting-{country.lower()}.example"


def url_in(country: str, path: str = "/a.jpg") -> str:
    """A canonical https URL hosted in ``country`` (see ``host_in``)."""
    return f"https://{host_in(country)}{path}"


# -- hashes and items ---------------------------------------------------------------------------


def content_hash(seed: str, algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> ContentHash:
    """A well-formed hash of ``algorithm`` derived from ``seed`` (same seed → same hash)."""
    digest = hashlib.sha512(f"{algorithm}:{seed}".encode()).hexdigest()
    return ContentHash(algorithm, digest[: algorithm.hex_length])


HashSpec = ContentHash | str


def _hashes(specs: Iterable[HashSpec]) -> list[ContentHash]:
    return [s if isinstance(s, ContentHash) else content_hash(s) for s in specs]


def make_test_item(
    *hashes: HashSpec,
    classification: Classification = Classification.BASELINE,
    media_type: MediaType = MediaType.IMAGE,
    age_group: AgeGroup = AgeGroup.UNKNOWN,
) -> Item:
    """An item; each hash is a ``ContentHash`` or a seed for a sha256 (default: seed "item")."""
    return make_item(_hashes(hashes or ("item",)), classification, media_type, age_group)


def _items(
    items: Sequence[Item] | None,
    hashes: Sequence[HashSpec] | None,
    classification: Classification,
) -> tuple[Item, ...]:
    if items is not None:
        if hashes is not None:
            raise TypeError("give items or hashes, not both")
        return tuple(items)
    # One item per hash: the common shape of a report listing several images.
    return tuple(make_test_item(h, classification=classification) for h in (hashes or ("item-1",)))


# -- submissions and reports --------------------------------------------------------------------


def make_submission(
    url: str | None = None,
    *,
    hashes: Sequence[HashSpec] | None = None,
    items: Sequence[Item] | None = None,
    classification: Classification = Classification.BASELINE,
    facts: ReportFacts | None = None,
    notes: str = "",
    client_ref: str = "",
) -> Submission:
    """What an analyst submits. Default: one baseline image at a URL hosted in NL.

    ``hashes`` gives one item per hash (seeds or ``ContentHash``); ``items`` gives them exactly.
    """
    return Submission(
        url=url if url is not None else url_in("NL"),
        facts=facts if facts is not None else make_facts(SiteType.IMAGE_HOST, notes=notes),
        items=_items(items, hashes, classification),
        client_ref=client_ref,
    )


def make_decision(
    member: str,
    *,
    reason: DecisionReason = DecisionReason.SERVED_MEMBER,
    country: str | None = None,
    epoch: int = 1,
    self_member: str | None = None,
) -> Decision:
    """A routing decision naming ``member``; the country defaults to the one it serves."""
    return Decision(
        member=member,
        reason=reason,
        country=country if country is not None else MEMBER_COUNTRY.get(member),
        explanation=f"test decision for {member}",
        manifest_epoch=epoch,
        local=member == self_member,
    )


def make_report(
    *,
    origin: str = "nl-eokm",
    url: str | None = None,
    hashes: Sequence[HashSpec] | None = None,
    items: Sequence[Item] | None = None,
    classification: Classification = Classification.BASELINE,
    decision_member: str = "de-eco",
    decision_reason: DecisionReason = DecisionReason.SERVED_MEMBER,
    country: str | None = None,
    received_at: datetime = T0,
    facts: ReportFacts | None = None,
    canonical: bool = True,
    report_id: str | None = None,
    url_key: bytes | None = None,
) -> Report:
    """A report as a peer sends it: by default from nl-eokm to de-eco, hosted in DE.

    The URL is canonicalised and ``url_key`` and ``id`` are derived from the contents unless
    ``canonical=False`` (URL kept as given), ``url_key`` or ``report_id`` override them — which
    is how tests build the inconsistent reports a receiver must reject.
    """
    raw = url if url is not None else url_in(MEMBER_COUNTRY.get(decision_member, "DE"))
    the_url = canonicalize(raw).url if canonical else raw
    key = url_key if url_key is not None else hashlib.sha256(the_url.encode()).digest()
    the_items = _items(items, hashes, classification)
    hosting = country if country is not None else MEMBER_COUNTRY.get(decision_member)
    return Report(
        id=report_id if report_id is not None else report_id_for(origin, key, the_items),
        origin_member=origin,
        url=the_url,
        url_key=key,
        received_at=received_at,
        facts=facts if facts is not None else make_facts(),
        items=the_items,
        hosting_country=hosting,
        decision_member=decision_member,
        decision_reason=decision_reason.value,
    )


def report_wire(report: Report) -> bytes:
    """The serialized ``ihx.v1.Report`` a peer would send (no trace; decision from the report)."""
    decision = make_decision(
        report.decision_member,
        reason=DecisionReason(report.decision_reason),
        country=report.hosting_country or "",
    )
    return report_to_proto(report, None, decision).SerializeToString(deterministic=True)


# -- announcements ------------------------------------------------------------------------------


def make_announcement(
    seed: str | ContentHash = "item-1",
    *,
    member: str = "nl-eokm",
    case_id: str = "c-" + "0" * 32,
    classification: Classification = Classification.BASELINE,
    first_seen: datetime = T0,
    report_id: str = "r-" + "0" * 32,
) -> KnownContent:
    """A first sighting of one hash, as a member announces it."""
    h = seed if isinstance(seed, ContentHash) else content_hash(seed)
    return KnownContent(h, member, case_id, classification, first_seen, report_id)


def announcement_bytes(k: KnownContent) -> bytes:
    return announcement_to_proto(k).SerializeToString(deterministic=True)


# -- envelopes ----------------------------------------------------------------------------------


def seal_batch(
    payloads: Sequence[bytes],
    *,
    sender: str = "nl-eokm",
    recipient: str = "de-eco",
    sequence: int = 1,
    kind: int = KIND_REPORT,
    signed_at: datetime = T0,
    key: SigningKey | None = None,
    manifest_epoch: int = 1,
) -> Sealed:
    """Seal ``payloads`` as ``sender`` (with its test key unless ``key`` is given)."""
    return seal(
        key or signing_key(sender),
        sender=sender,
        recipient=recipient,
        sequence=sequence,
        kind=kind,
        payloads=payloads,
        signed_at=signed_at,
        manifest_epoch=manifest_epoch,
    )


# -- the store ----------------------------------------------------------------------------------


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table of the node schema: compare before/after to prove nothing was written."""
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in schema.Base.metadata.sorted_tables
        }


@contextmanager
def writer_held(writer: Writer, timeout: float = 10.0) -> Iterator[None]:
    """Keep the writer busy inside a job for the duration of the block.

    Everything submitted inside the block is queued behind that job, so it runs as ONE group
    (one transaction, one commit) when the block exits — how tests make group commit and
    coalescing deterministic.
    """
    started, release = threading.Event(), threading.Event()

    def job(_tx: Tx) -> None:
        started.set()
        release.wait(timeout)

    held = writer.submit(job)
    if not started.wait(timeout):
        raise RuntimeError("the writer did not pick up the holding job")
    try:
        yield
    finally:
        release.set()
        held.result(timeout)


# -- raw protobuf, as an attacker writes it -------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def length_delimited(number: int, data: bytes) -> bytes:
    """Field ``number`` holding ``data`` (wire type 2): how an unknown field smuggles bytes."""
    return varint((number << 3) | 2) + varint(len(data)) + data


def report_place(engine: Engine, report_id: str) -> int:
    """A stored report's place in storage order: what its items and item hashes are keyed by."""
    with engine.connect() as conn:
        place = conn.execute(
            select(schema.reports.c.seq).where(schema.reports.c.id == report_id)
        ).scalar_one()
    return int(place)


def case_here(engine: Engine, report_id: str) -> str | None:
    """The case a stored report is in here (None: it went to its holder). Looked up, not
    derived: a case id carries the millisecond its case was opened (``case_id_for``)."""
    with engine.connect() as conn:
        case_id = conn.execute(
            select(schema.reports.c.case_id).where(schema.reports.c.id == report_id)
        ).scalar_one()
    return None if case_id is None else str(case_id)


def case_of(engine: Engine, report_id: str) -> str:
    """The case a stored report is in here; it must be in one."""
    case_id = case_here(engine, report_id)
    assert case_id is not None, f"{report_id} is in no case here"
    return case_id


def one_member_settings(tmp_path: Path, databases: Databases, extra: str) -> Settings:
    """The settings of nl-eokm, a one-member network on 127.0.0.1 (its own coordinator) whose
    hosting range is NL, with ``extra`` appended to its node.toml."""
    fed = provision_federation(
        tmp_path / "fed",
        [MemberPlan("nl-eokm", "EOKM", ("NL",))],
        coordinator="nl-eokm",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={"185.107.56.0/22": "NL"},
        asn_networks={"185.107.56.0/22": (64500, "Example Hosting B.V.")},
        static_hosts={"hosting-nl.example": ["185.107.56.1"]},
        extra_settings=extra,
        database_url=databases.for_members(),
    )
    return fed.settings["nl-eokm"]
