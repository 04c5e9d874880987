"""The node's database schema (SQLAlchemy 2 typed declarative; Alembic migrates it).

The typed models document the schema and drive Alembic; hot paths use their ``__table__`` with
Core (``executemany``), which is several times faster than ORM unit-of-work inserts.

Times are stored as integer microseconds since the Unix epoch (``UtcMicros``): exact, ordered,
identical on SQLite and PostgreSQL, and free of time-zone ambiguity. Payload columns hold the
exact serialized protobuf bytes that were signed or received, so a report stays verifiable on its
own forever. No column can hold media or a reporter's identity.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from exchange.times import from_micros, to_micros

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcMicros(TypeDecorator[datetime]):
    """An aware UTC datetime stored as microseconds since the epoch."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every stored time must be timezone-aware")
        return to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


MemberId = String(64)
ReportId = String(40)


class ReportRow(Base):
    """Every report this node holds: submitted here (role origin) or received (role received)."""

    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(ReportId, primary_key=True)
    # The report's place in storage order (0014): its items, item hashes and deliveries are keyed
    # by it, so their rows append at the right edge, where keyed by the id (a hash) each took
    # a random leaf of its own — a page written per report per table at every COMMIT.
    seq: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(10))
    origin_member: Mapped[str] = mapped_column(MemberId)
    url: Mapped[str] = mapped_column(Text)
    # url_key and case_id are not indexed: no query looks a report up by either (0013).
    url_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    received_at: Mapped[datetime] = mapped_column(UtcMicros)
    stored_at: Mapped[datetime] = mapped_column(UtcMicros)
    site_type: Mapped[str] = mapped_column(String(16))
    commercial: Mapped[bool] = mapped_column(Boolean)
    payment_methods: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text)
    hosting_country: Mapped[str | None] = mapped_column(String(2))
    decision_member: Mapped[str] = mapped_column(MemberId)
    decision_reason: Mapped[str] = mapped_column(String(24))
    case_id: Mapped[str | None] = mapped_column(String(40))
    # The exact serialized ihx.v1.Report: what was signed (origin) or received (receiver). The
    # trace evidence lives only here, so it is stored once and always matches what was sent.
    wire: Mapped[bytes] = mapped_column(LargeBinary)
    # Inclusion in the envelope it arrived in (receiver side).
    sender: Mapped[str | None] = mapped_column(MemberId)
    envelope_sequence: Mapped[int | None] = mapped_column(BigInteger)
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    proof: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Received reports: this node's own GeoIP placement of the sender's addresses, whether it
    # agrees with the sender's hosting country, and the member it would route to instead.
    geo_country: Mapped[str | None] = mapped_column(String(2))
    geo_agrees: Mapped[bool | None] = mapped_column(Boolean)
    reroute_to: Mapped[str | None] = mapped_column(MemberId)
    # Only at the origin, only with the reporter's consent; never sent (0006).
    reporter_region: Mapped[str | None] = mapped_column(String(6))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    withdrawal_reason: Mapped[str | None] = mapped_column(String(16))
    # Retention (0006): URL, notes and hashes overwritten, ``wire`` the redacted report.
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    __table_args__ = (Index("uq_reports_seq", "seq", unique=True),)


class ItemRow(Base):
    __tablename__ = "items"
    report_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # ``reports.seq``
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    classification: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(8))
    age_group: Mapped[str] = mapped_column(String(16))
    known_member: Mapped[str | None] = mapped_column(MemberId)
    known_case: Mapped[str | None] = mapped_column(String(40))
    known_report: Mapped[str | None] = mapped_column(ReportId)
    known_classification: Mapped[str | None] = mapped_column(String(16))
    known_first_seen: Mapped[datetime | None] = mapped_column(UtcMicros)


# ``item_hashes``' partial index, in the words SQLAlchemy renders ``where(ITEM_HASHES.c.held)``
# in on each (SQLite has no boolean): a query uses a partial index only if it says the same.
HELD_SQLITE, HELD_POSTGRESQL = "held = 1", "held"


class ItemHashRow(Base):
    __tablename__ = "item_hashes"
    report_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # ``reports.seq``
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(8), primary_key=True)
    hex: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int | None] = mapped_column(Integer)  # the item's own PDQ quality, if given
    # The report is in a case held here (``reports.case_id`` set), copied so the one look-up by
    # hash (``reports.carried_elsewhere``: is the content still held here?) can use an index of
    # those rows alone (0016). A report sent on from here is in none: its hashes, about half a
    # node's, were each a random leaf of that index written at COMMIT, read by no query.
    held: Mapped[bool] = mapped_column(Boolean, server_default=false())
    __table_args__ = (
        Index(
            "ix_item_hashes_held_algorithm_hex",
            "algorithm",
            "hex",
            sqlite_where=text(HELD_SQLITE),
            postgresql_where=text(HELD_POSTGRESQL),
        ),
    )


class CaseRow(Base):
    """A case at the responsible node: one open case per URL key."""

    __tablename__ = "cases"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    url: Mapped[str] = mapped_column(Text)
    hosting_country: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(8))
    opened_at: Mapped[datetime] = mapped_column(UtcMicros)
    updated_at: Mapped[datetime] = mapped_column(UtcMicros)
    first_report_id: Mapped[str] = mapped_column(ReportId)
    # The lifecycle (0006): when its last item closed; when retention anonymised it.
    closed_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    # A case that came here by a move (0008): the member that held it before, and its case.
    moved_from_member: Mapped[str | None] = mapped_column(MemberId)
    moved_from_case: Mapped[str | None] = mapped_column(String(40))
    __table_args__ = (
        Index(
            "uq_cases_open_url_key",
            "url_key",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_cases_status_closed_at", "status", "closed_at"),  # retention's scan
    )


class CaseReportRow(Base):
    __tablename__ = "case_reports"
    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    report_id: Mapped[str] = mapped_column(ReportId, primary_key=True)
    reporting_member: Mapped[str] = mapped_column(MemberId)
    outcome: Mapped[str] = mapped_column(String(10))
    new_items: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcMicros)


class HashIndexRow(Base):
    """The network hash index: each member's own sighting of each content hash.

    One row per (hash, member): a member's announcement adds or updates only its own row, so
    no member can overwrite another's sighting. "First seen in the network" is derived — the
    earliest of the members' rows — never stored as one row anyone could replace.
    """

    __tablename__ = "hash_index"
    algorithm: Mapped[str] = mapped_column(String(8), primary_key=True)
    hex: Mapped[str] = mapped_column(String(64), primary_key=True)
    member: Mapped[str] = mapped_column(MemberId, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40))
    report_id: Mapped[str] = mapped_column(ReportId)
    classification: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(UtcMicros)
    quality: Mapped[int | None] = mapped_column(Integer)  # PDQ only; NULL: not given


class PdqChangeRow(Base):
    """Every PDQ sighting added, updated or retracted, in order: the PDQ index's feed."""

    __tablename__ = "pdq_changes"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hex: Mapped[str] = mapped_column(String(64))
    retracted: Mapped[bool] = mapped_column(Boolean)


class PdqFollowerRow(Base):
    """Each process that follows ``pdq_changes`` (a node, a web view; replicas each on their
    own), the change it has applied up to and when it said so: the feed is trimmed below the
    lowest cursor of the followers heard from within their lease."""

    __tablename__ = "pdq_followers"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UtcMicros)


class AnnouncementRow(Base):
    """Hashes this node announces. One row per new hash whatever the number of members:
    each peer's sender keeps a cursor into this table (``PeerRow.announce_cursor``)."""

    __tablename__ = "announcements"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcMicros)


class OutboxRow(Base):
    """Reports waiting for delivery, written in the intake transaction; deleted on receipt."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(MemberId)
    report_id: Mapped[str] = mapped_column(ReportId)
    # A report stored here is queued by its place (0018) and sent as its row's ``wire``; only
    # bytes no report row holds (case events, transfers) are carried in ``payload``.
    report_seq: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcMicros)
    batch_sequence: Mapped[int | None] = mapped_column(BigInteger)
    batch_position: Mapped[int | None] = mapped_column(Integer)
    # "report" or "event" (0006): a batch carries one kind, sealed from a run of rows in order,
    # so a case event never overtakes the report it follows to the same peer.
    kind: Mapped[str] = mapped_column(String(8), server_default="report")
    __table_args__ = (
        Index("ix_outbox_destination_batch_id", "destination", "batch_sequence", "id"),
    )


class BatchRow(Base):
    """A sealed envelope to a peer. Resent byte-for-byte until receipted."""

    __tablename__ = "batches"
    destination: Mapped[str] = mapped_column(MemberId, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    header: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    payload_count: Mapped[int] = mapped_column(Integer)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UtcMicros)
    first_announcement: Mapped[int | None] = mapped_column(Integer)
    last_announcement: Mapped[int | None] = mapped_column(Integer)
    receipt_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    receipt_signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    receipted_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    __table_args__ = (Index("ix_batches_destination_receipted", "destination", "receipted_at"),)


class DeliveryRow(Base):
    """Per report and destination: the outcome from the receiver's signed receipt."""

    __tablename__ = "deliveries"
    report_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # ``reports.seq``
    destination: Mapped[str] = mapped_column(MemberId, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(10))
    remote_case_id: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    receipted_at: Mapped[datetime] = mapped_column(UtcMicros)
    # Which member holds a case we reported (the lifecycle's check of who may send its events).
    __table_args__ = (Index("ix_deliveries_remote_case_id", "remote_case_id"),)


class PeerRow(Base):
    """Delivery state per peer: the next sequence to use and the announcement cursor."""

    __tablename__ = "peers"
    member: Mapped[str] = mapped_column(MemberId, primary_key=True)
    next_sequence: Mapped[int] = mapped_column(BigInteger)
    announce_cursor: Mapped[int] = mapped_column(Integer)
    last_heard_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Since when, and how many attempts in a row, delivery to this peer has failed (0 / NULL
    # once a receipt arrives): what an operator asks first about a quiet peer.
    failing_since: Mapped[datetime | None] = mapped_column(UtcMicros)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")


class InboxRow(Base):
    """Envelopes accepted from peers, with the receipt given: replays get the same receipt."""

    __tablename__ = "inbox"
    sender: Mapped[str] = mapped_column(MemberId, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    header: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    payload_count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcMicros)
    receipt_body: Mapped[bytes] = mapped_column(LargeBinary)
    receipt_signature: Mapped[bytes] = mapped_column(LargeBinary)


class LogRow(Base):
    """The routing log: append-only and hash-chained (see exchange/routing_log.py).

    ``report_seq`` is not part of an entry: it is the place (``reports.seq``) of the report the
    entry names when that report is stored here, filled in as the entry is appended, so a
    report's entries are found through an index whose new keys land near its newest places (an
    entry is mostly written soon after its report is stored), not at random.
    The id itself is indexed only for entries about a report not stored here (a payload refused
    in a receipt): an index on every entry's id took a random leaf per entry, the largest cost
    left in a node's commits (issue 16; migration 0015).

    ``batch_sequence`` is not part of an entry either: on a ``sent`` or ``receipted`` entry
    for a whole batch of reports (0019), the sequence of the batch its detail names, so a
    report's listing finds its batch's entries through its delivery (``_about`` in
    store/routing_log.py) — one index key per batch, none per report."""

    __tablename__ = "routing_log"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcMicros, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    report_id: Mapped[str | None] = mapped_column(ReportId)
    member: Mapped[str | None] = mapped_column(MemberId)
    country: Mapped[str | None] = mapped_column(String(2))
    detail: Mapped[str] = mapped_column(Text)
    previous_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    report_seq: Mapped[int | None] = mapped_column(BigInteger)
    batch_sequence: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        Index("ix_routing_log_report_seq", "report_seq", "idx"),
        Index(
            "ix_routing_log_batch",
            "member",
            "batch_sequence",
            sqlite_where=text("batch_sequence IS NOT NULL"),
            postgresql_where=text("batch_sequence IS NOT NULL"),
        ),
        Index(
            "ix_routing_log_unplaced_report_id",
            "report_id",
            "idx",
            sqlite_where=text("report_seq IS NULL AND report_id IS NOT NULL"),
            postgresql_where=text("report_seq IS NULL AND report_id IS NOT NULL"),
        ),
    )


class MetaRow(Base):
    __tablename__ = "node_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


reports = cast(Table, ReportRow.__table__)
items = cast(Table, ItemRow.__table__)
item_hashes = cast(Table, ItemHashRow.__table__)
cases = cast(Table, CaseRow.__table__)
case_reports = cast(Table, CaseReportRow.__table__)
hash_index = cast(Table, HashIndexRow.__table__)
announcements = cast(Table, AnnouncementRow.__table__)
pdq_changes = cast(Table, PdqChangeRow.__table__)
pdq_followers = cast(Table, PdqFollowerRow.__table__)
outbox = cast(Table, OutboxRow.__table__)
batches = cast(Table, BatchRow.__table__)
deliveries = cast(Table, DeliveryRow.__table__)
peers = cast(Table, PeerRow.__table__)
inbox = cast(Table, InboxRow.__table__)
routing_log = cast(Table, LogRow.__table__)
node_meta = cast(Table, MetaRow.__table__)


class CheckpointRow(Base):
    """Signed checkpoints of the routing log: (size, head hash, time), signed by the node."""

    __tablename__ = "checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    at: Mapped[datetime] = mapped_column(UtcMicros)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class PartnerCaseRow(Base):
    """A case assigned to a law-enforcement partner, and where its pull/ack stands.

    ``cursor`` orders a partner's cases for paging; ``visible_after`` hides a pulled case until
    its visibility timeout passes, so an unacknowledged case comes again.
    """

    __tablename__ = "partner_cases"
    cursor: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(40))
    assigned_at: Mapped[datetime] = mapped_column(UtcMicros)
    visible_after: Mapped[datetime | None] = mapped_column(UtcMicros)
    pulls: Mapped[int] = mapped_column(Integer)
    acked_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    __table_args__ = (
        Index("uq_partner_cases_partner_case", "partner", "case_id", unique=True),
        Index("ix_partner_cases_partner_acked_cursor", "partner", "acked_at", "cursor"),
    )


class CaseEventRow(Base):
    """Every lifecycle event this node made or applied, with its signed wire bytes.

    ``cursor`` is this node's order of arrival (the WatchCases feed); ``sender`` is NULL for
    events made here, else the envelope that carried it (sequence, leaf, inclusion proof), so a
    received event stays verifiable on its own like a report.
    """

    __tablename__ = "case_events"
    cursor: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(34))
    case_id: Mapped[str] = mapped_column(String(40))
    member: Mapped[str] = mapped_column(MemberId)
    sequence: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UtcMicros)
    kind: Mapped[str] = mapped_column(String(12))
    report_id: Mapped[str | None] = mapped_column(ReportId)  # withdrawals: the report
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    sender: Mapped[str | None] = mapped_column(MemberId)
    envelope_sequence: Mapped[int | None] = mapped_column(BigInteger)
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    proof: Mapped[bytes | None] = mapped_column(LargeBinary)
    stored_at: Mapped[datetime] = mapped_column(UtcMicros)
    __table_args__ = (
        Index("uq_case_events_id", "id", unique=True),
        Index("ix_case_events_case_id_cursor", "case_id", "cursor"),
        Index("ix_case_events_report_id", "report_id"),
    )


class ItemStateRow(Base):
    """Each item's lifecycle state (the fold of its events) with its takedown clock.

    Held for the items of cases this node holds, and — as their origin, another reporter or the
    coordinator sees them — for items of cases held elsewhere (``holder`` names the member).
    Columns rather than a document, because queues and statistics filter and count them.
    """

    __tablename__ = "item_states"
    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    report_id: Mapped[str] = mapped_column(ReportId, primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(MemberId)
    origin_member: Mapped[str] = mapped_column(MemberId)
    origin_classification: Mapped[str] = mapped_column(String(16))
    orphaned: Mapped[bool] = mapped_column(Boolean)
    stage: Mapped[str] = mapped_column(String(12))
    classification: Mapped[str | None] = mapped_column(String(16))
    age_group: Mapped[str | None] = mapped_column(String(16))
    gender: Mapped[str | None] = mapped_column(String(16))
    virtual: Mapped[bool | None] = mapped_column(Boolean)
    user_generated: Mapped[bool | None] = mapped_column(Boolean)
    child_modelling: Mapped[bool | None] = mapped_column(Boolean)
    analyst_ref: Mapped[str | None] = mapped_column(String(128))
    disputed: Mapped[bool] = mapped_column(Boolean)
    actions: Mapped[int] = mapped_column(Integer)
    last_action: Mapped[str | None] = mapped_column(String(16))
    clock_started: Mapped[datetime | None] = mapped_column(UtcMicros)
    assessed_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    lea_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    lea_partner: Mapped[str | None] = mapped_column(String(64))
    host_notice_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    host_recipient: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    close_reason: Mapped[str | None] = mapped_column(String(32))
    moved_to_country: Mapped[str | None] = mapped_column(String(2))
    moved_to_member: Mapped[str | None] = mapped_column(MemberId)
    updated_at: Mapped[datetime] = mapped_column(UtcMicros)
    # The place (``reports.seq``) of the item's report when it is stored here, as
    # ``routing_log.report_seq`` (0017): a report's states are found by it, near the newest
    # places, where an index on every row's report id (a hash) took a random leaf per item.
    # NULL for a report not stored here (another reporter's, seen through its case's events);
    # only those rows' ids are indexed.
    report_seq: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        Index("ix_item_states_holder_stage", "holder", "stage"),
        Index("ix_item_states_report_seq", "report_seq"),
        Index(
            "ix_item_states_unplaced_report_id",
            "report_id",
            sqlite_where=text("report_seq IS NULL"),
            postgresql_where=text("report_seq IS NULL"),
        ),
        # The statistics' folder pages through changes in this order (0009).
        Index("ix_item_states_updated_at", "updated_at", "case_id", "report_id", "idx"),
        # The case queues walk a holder's items in clock order, a page at a time (0010).
        Index("ix_item_states_queue_order", "holder", "clock_started", "case_id"),
    )


class PartnerFeedbackRow(Base):
    """A partner's own feedback on a case assigned to it (audited in the routing log too)."""

    __tablename__ = "partner_feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(40), index=True)
    code: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcMicros)


class CaseTransferRow(Base):
    """A case transfer (0008): one report's moved items, sent from here or received here.

    One row per ``moved`` event and report. Received (``role`` "received"): ``payload`` is the
    leaf of the old holder's envelope (the inbox row ``sender``/``envelope_sequence``), kept as
    received so the report it carries stays verifiable against its origin's key and the old
    holder's history of the case can be shown; ``geo_*`` is this node's own placement of the
    old holder's trace. Sent (``role`` "sent"): the outcome and the new holder's case from its
    signed receipt (the payload left with the outbox row).
    """

    __tablename__ = "case_transfers"
    moved_event: Mapped[str] = mapped_column(String(34), primary_key=True)
    report_id: Mapped[str] = mapped_column(ReportId, primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    from_member: Mapped[str] = mapped_column(MemberId)
    from_case: Mapped[str] = mapped_column(String(40))
    to_member: Mapped[str] = mapped_column(MemberId)
    to_case: Mapped[str | None] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(2))
    moved_at: Mapped[datetime] = mapped_column(UtcMicros)
    items: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    sender: Mapped[str | None] = mapped_column(MemberId)
    envelope_sequence: Mapped[int | None] = mapped_column(BigInteger)
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    proof: Mapped[bytes | None] = mapped_column(LargeBinary)
    geo_country: Mapped[str | None] = mapped_column(String(2))
    geo_agrees: Mapped[bool | None] = mapped_column(Boolean)
    stored_at: Mapped[datetime] = mapped_column(UtcMicros)
    receipted_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    __table_args__ = (
        Index("ix_case_transfers_report_id", "report_id"),
        Index("ix_case_transfers_from_case", "from_case"),
        Index("ix_case_transfers_to_case", "to_case"),
    )


checkpoints = cast(Table, CheckpointRow.__table__)
case_transfers = cast(Table, CaseTransferRow.__table__)
case_events = cast(Table, CaseEventRow.__table__)
item_states = cast(Table, ItemStateRow.__table__)
partner_feedback = cast(Table, PartnerFeedbackRow.__table__)
partner_cases = cast(Table, PartnerCaseRow.__table__)


class PeerLeaseRow(Base):
    """Which replica of this node streams to a peer, and until when.

    Only nodes on PostgreSQL write here, where several replicas share the database
    (exchange/leases.py); a SQLite node is its database's only process and needs no lease.
    ``expires_at`` is on the database's clock, so replicas on different hosts agree on it.
    """

    __tablename__ = "peer_leases"
    destination: Mapped[str] = mapped_column(MemberId, primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[datetime] = mapped_column(UtcMicros)
    expires_at: Mapped[datetime] = mapped_column(UtcMicros)


peer_leases = cast(Table, PeerLeaseRow.__table__)


class TakedownWatchRow(Base):
    """A case held here whose URL is being re-checked until its content is gone (takedown).

    One per case (a case is one URL). ``next_check_at`` drives the scheduler; the last check's
    outcome and the run of consecutive not-online checks decide removal; the hoster (ASN,
    organisation) and country are the last re-trace's, so a move or a new hoster is seen.
    """

    __tablename__ = "takedown_watches"
    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(12))  # watching | suggested | done
    started_at: Mapped[datetime] = mapped_column(UtcMicros)
    next_check_at: Mapped[datetime] = mapped_column(UtcMicros)
    checks: Mapped[int] = mapped_column(Integer)
    last_check_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    last_outcome: Mapped[str | None] = mapped_column(String(12))
    last_status: Mapped[int | None] = mapped_column(Integer)
    not_online: Mapped[int] = mapped_column(Integer)  # consecutive checks not online
    online_since: Mapped[datetime | None] = mapped_column(UtcMicros)  # first seen online
    country: Mapped[str | None] = mapped_column(String(2))
    asn: Mapped[int | None] = mapped_column(BigInteger)
    organisation: Mapped[str | None] = mapped_column(String(128))
    notices: Mapped[int] = mapped_column(Integer)  # notices to the current hoster
    first_notice_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    last_notice_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    no_contact: Mapped[bool] = mapped_column(Boolean)  # the directory has no abuse contact
    hold_until: Mapped[datetime | None] = mapped_column(UtcMicros)
    updated_at: Mapped[datetime] = mapped_column(UtcMicros)
    __table_args__ = (Index("ix_takedown_watches_state_next", "state", "next_check_at"),)


class TakedownCheckRow(Base):
    """One re-check's result: the evidence behind an automatic removal. Never any content."""

    __tablename__ = "takedown_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UtcMicros)
    outcome: Mapped[str] = mapped_column(String(12))
    status: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    asn: Mapped[int | None] = mapped_column(BigInteger)
    organisation: Mapped[str] = mapped_column(String(128))
    redirects: Mapped[int] = mapped_column(Integer)
    elapsed_ms: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(200))
    __table_args__ = (Index("ix_takedown_checks_case_id_at", "case_id", "at"),)


class TakedownNoticeRow(Base):
    """One notice to an abuse contact, covering one or more cases; sent by SMTP with retries.

    Written ``pending`` with its Message-ID before the first attempt, so a crash between the
    relay's acceptance and the commit re-sends the same message (the hoster can deduplicate).
    """

    __tablename__ = "takedown_notices"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    contact_key: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(254))
    escalated: Mapped[bool] = mapped_column(Boolean)
    message_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(8))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcMicros)
    created_at: Mapped[datetime] = mapped_column(UtcMicros)
    sent_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    error: Mapped[str | None] = mapped_column(String(200))
    __table_args__ = (Index("ix_takedown_notices_status_next", "status", "next_attempt_at"),)


class TakedownNoticeCaseRow(Base):
    """A case named in a notice, with the hoster it was sent about (the scorecard's unit)."""

    __tablename__ = "takedown_notice_cases"
    notice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    asn: Mapped[int | None] = mapped_column(BigInteger)
    organisation: Mapped[str] = mapped_column(String(128))
    items: Mapped[int] = mapped_column(Integer)
    __table_args__ = (Index("ix_takedown_notice_cases_case_id", "case_id"),)


class TakedownHoldRow(Base):
    """A hold on a case's notices (a partner preserving evidence, or an analyst): audited."""

    __tablename__ = "takedown_holds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(40))
    by: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UtcMicros)
    reason: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcMicros)
    released_at: Mapped[datetime | None] = mapped_column(UtcMicros)
    released_by: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (Index("ix_takedown_holds_case_id", "case_id"),)


takedown_watches = cast(Table, TakedownWatchRow.__table__)
takedown_checks = cast(Table, TakedownCheckRow.__table__)
takedown_notices = cast(Table, TakedownNoticeRow.__table__)
takedown_notice_cases = cast(Table, TakedownNoticeCaseRow.__table__)
takedown_holds = cast(Table, TakedownHoldRow.__table__)


class StatsCountRow(Base):
    """The statistics' rollup (0009): per day, figure, key and duration bucket, a count.

    ``bucket`` is -1 for a count, else a duration's histogram bucket on the protocol's fixed
    edges. Day first in the key: a snapshot reads a range of days. Kept by the folder
    (exchange/stats/fold.py) from the item states and the routing log, never by hand.
    """

    __tablename__ = "stats_counts"
    day: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    figure: Mapped[str] = mapped_column(String(24), primary_key=True)
    series_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


class StatsItemRow(Base):
    """Each item's facts as last counted in the rollup (0009): a change applies the difference."""

    __tablename__ = "stats_items"
    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    report_id: Mapped[str] = mapped_column(ReportId, primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    facts: Mapped[str] = mapped_column(Text)  # six keys of up to 128 characters each


class StatsMarkRow(Base):
    """The folder's watermarks (0009): the last routing-log index folded, the item states'
    last ``updated_at`` folded — written in the transaction that folds up to them."""

    __tablename__ = "stats_marks"
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


stats_counts = cast(Table, StatsCountRow.__table__)
stats_items = cast(Table, StatsItemRow.__table__)
stats_marks = cast(Table, StatsMarkRow.__table__)
