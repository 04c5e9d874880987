"""The outbox aggregate: queued reports, the batches sealed from them, and their deliveries.

Intake queues a report for its destination in its own transaction (``enqueue_stored``: by the
report's place, its bytes read from its row when sealed — never a second copy of them; case
events and transfers, whose bytes no report row holds, are queued with them, ``enqueue``). A sender
reads what is pending (unbatched rows; announcements after the peer's cursor), seals a batch in
one transaction — ``claim`` the rows (``FOR UPDATE SKIP LOCKED``: no report lands in two
batches), ``insert_batch`` with the signed header, ``assign`` the rows their positions — and
later resends an unreceipted batch from what is stored here (``load_batch``), byte for byte. A
receipt is applied once: ``mark_receipted`` matches only an unreceipted batch, then the rows
leave the outbox and each report's outcome becomes a ``deliveries`` row.

All SQL on ``outbox``, ``batches``, ``deliveries`` and the announcement reads of delivery lives
here; callers pass the connection (a ``Tx``'s for writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CompoundSelect, Connection, bindparam, delete, func, select, update

from exchange.store import peers, reports, schema
from exchange.store.prepared import Prepared
from exchange.store.sql import chunks, insert_rows, update_rows

OUTBOX = schema.outbox
BATCHES = schema.batches
DELIVERIES = schema.deliveries
REPORTS = schema.reports

# A delivery names its report by the report's place in storage order (as items do; see
# store/reports.py): its rows append at the right edge.
_BY_REPORT = DELIVERIES.join(REPORTS, REPORTS.c.seq == DELIVERIES.c.report_seq)
ANNOUNCEMENTS = schema.announcements

REPORT = "report"
ANNOUNCEMENT = "announcement"
EVENT = "event"  # a case event: outbox rows and batches of this kind carry CaseEvents
TRANSFER = "transfer"  # a moved case's transfer to its new holder (its report id in report_id)


@dataclass(frozen=True, slots=True)
class Queued:
    """A payload no report row holds, to queue for ``destination`` with its bytes: a case event
    (``kind=EVENT``, its id in ``report_id``) or a moved case's transfer (``kind=TRANSFER``)."""

    destination: str
    report_id: str
    payload: bytes
    kind: str = REPORT


@dataclass(frozen=True, slots=True)
class PendingReport:
    """An unbatched outbox row: a report, or (``kind=EVENT``) a case event."""

    id: int
    report_id: str
    payload: bytes
    kind: str = REPORT


@dataclass(frozen=True, slots=True)
class PendingAnnouncement:
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A sealed batch as stored: enough to send it again exactly as first sent."""

    sequence: int
    kind: str
    header: bytes
    signature: bytes
    payloads: tuple[bytes, ...]
    root: bytes
    count: int
    report_ids: tuple[str, ...]
    last_announcement: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One report's outcome at its destination, from a verified receipt."""

    report_id: str
    destination: str
    sequence: int
    outcome: str
    remote_case_id: str | None
    reason: str | None
    receipted_at: datetime


# -- queueing (intake) --------------------------------------------------------------------------


def enqueue(conn: Connection, rows: Iterable[Queued], now: datetime) -> None:
    """Queue payloads no report row holds (case events, transfers) with their bytes."""
    values = [
        {
            "destination": r.destination,
            "report_id": r.report_id,
            "report_seq": None,
            "payload": r.payload,
            "created_at": now,
            "kind": r.kind,
        }
        for r in rows
    ]
    insert_rows(conn, OUTBOX, values)


def enqueue_stored(conn: Connection, rows: Sequence[tuple[str, str]], now: datetime) -> None:
    """Queue reports stored here, each (destination, report id), by their places: the bytes
    sent are the report row's ``wire``, read when the batch is sealed and when it is resent.
    (Those bytes never change while a report is queued: retention overwrites only a report
    its holder closed, never one still here — ``queued_among``.)"""
    place = reports.places(conn, sorted({report_id for _, report_id in rows}))
    missing = [report_id for _, report_id in rows if report_id not in place]
    if missing:
        raise LookupError(f"queued reports not stored here: {', '.join(missing[:3])}")
    values = [
        {
            "destination": destination,
            "report_id": report_id,
            "report_seq": place[report_id],
            "payload": None,
            "created_at": now,
            "kind": REPORT,
        }
        for destination, report_id in rows
    ]
    insert_rows(conn, OUTBOX, values)


def queued_among(conn: Connection, report_ids: Sequence[str]) -> set[str]:
    """Those of ``report_ids`` still queued for a destination (sent or not yet sealed)."""
    out: set[str] = set()
    for part in chunks(sorted(set(report_ids))):
        rows = conn.execute(select(OUTBOX.c.report_id).where(OUTBOX.c.report_id.in_(part)))
        out.update(rows.scalars())
    return out


# -- what a sender reads ------------------------------------------------------------------------

# A peer's pending rows in the order of ix_outbox_destination_batch_id (id order, since every
# pending row's batch is NULL). Ordering by id alone sorted every pending row of the peer (a
# backlog of a peer that was down) on PostgreSQL: "batch IS NULL" makes no equality its planner
# carries to the ORDER BY.
_PENDING_ORDER = (OUTBOX.c.destination, OUTBOX.c.batch_sequence, OUTBOX.c.id)

# A row's bytes: its own, or those of the report stored at its place.
_QUEUED = OUTBOX.outerjoin(REPORTS, REPORTS.c.seq == OUTBOX.c.report_seq)
_PAYLOAD = func.coalesce(OUTBOX.c.payload, REPORTS.c.wire).label("payload")


def pending_reports(conn: Connection, peer: str, limit: int, after: int = 0) -> list[PendingReport]:
    """The oldest unbatched rows (reports and case events) queued for ``peer``, in order;
    ``after``: only rows queued after row ``after``."""
    rows = _PENDING.rows(conn, peer=peer, after=after, limit=limit)
    return [PendingReport(*r) for r in rows]


_PENDING = Prepared(
    select(OUTBOX.c.id, OUTBOX.c.report_id, _PAYLOAD, OUTBOX.c.kind)
    .select_from(_QUEUED)
    .where(
        OUTBOX.c.destination == bindparam("peer"),
        OUTBOX.c.batch_sequence.is_(None),
        OUTBOX.c.id > bindparam("after"),
    )
    .order_by(*_PENDING_ORDER)
    .limit(bindparam("limit"))
)


def count_pending_reports(conn: Connection, peer: str, at_most: int) -> int:
    """How many unbatched rows wait for ``peer``, counted up to ``at_most``: read from the
    (destination, batch, id) index alone, no payload, at most ``at_most`` entries."""
    return int(_COUNT_PENDING.scalar(conn, peer=peer, at_most=at_most))


_COUNT_PENDING = Prepared(
    select(func.count()).select_from(
        select(OUTBOX.c.id)
        .where(OUTBOX.c.destination == bindparam("peer"), OUTBOX.c.batch_sequence.is_(None))
        .order_by(*_PENDING_ORDER)  # the index's order: its first entries, never a scan
        .limit(bindparam("at_most"))
        .subquery()
    )
)


def announcements_pending_reach(conn: Connection, after: int, n: int) -> bool:
    """Whether at least ``n`` announcements follow ``after`` (read from the key alone)."""
    nth = conn.execute(
        select(ANNOUNCEMENTS.c.seq).where(ANNOUNCEMENTS.c.seq > after).offset(n - 1).limit(1)
    ).first()
    return nth is not None


def first_announcement(conn: Connection, after: int) -> tuple[int, datetime] | None:
    """The first announcement after ``after``: its seq and when it was queued (None: none)."""
    row = conn.execute(
        select(ANNOUNCEMENTS.c.seq, ANNOUNCEMENTS.c.created_at)
        .where(ANNOUNCEMENTS.c.seq > after)
        .order_by(ANNOUNCEMENTS.c.seq)
        .limit(1)
    ).first()
    return None if row is None else (row.seq, row.created_at)


def pending_announcements(conn: Connection, after: int, limit: int) -> list[PendingAnnouncement]:
    """Announcements after ``after`` (the peer's high-water mark), oldest first."""
    rows = conn.execute(
        select(ANNOUNCEMENTS.c.seq, ANNOUNCEMENTS.c.payload)
        .where(ANNOUNCEMENTS.c.seq > after)
        .order_by(ANNOUNCEMENTS.c.seq)
        .limit(limit)
    )
    return [PendingAnnouncement(r.seq, r.payload) for r in rows]


def unreceipted(conn: Connection, peer: str) -> list[int]:
    """The sequences of ``peer``'s sealed batches that have no receipt yet, in order."""
    rows = conn.execute(
        select(BATCHES.c.sequence)
        .where(BATCHES.c.destination == peer, BATCHES.c.receipted_at.is_(None))
        .order_by(BATCHES.c.sequence)
    )
    return [r.sequence for r in rows]


def announcement_high_water(conn: Connection, peer: str) -> int:
    """The last announcement receipted by or sealed for ``peer``: the next batch starts after."""
    sealed = conn.execute(
        select(BATCHES.c.last_announcement)
        .where(BATCHES.c.destination == peer, BATCHES.c.kind == ANNOUNCEMENT)
        .order_by(BATCHES.c.sequence.desc())
        .limit(1)
    ).scalar_one_or_none()
    return max(peers.announce_cursor(conn, peer), sealed or 0)


def load_batch(conn: Connection, peer: str, sequence: int) -> StoredBatch:
    """A sealed batch with its payloads in their sealed order."""
    b = conn.execute(
        select(BATCHES).where(BATCHES.c.destination == peer, BATCHES.c.sequence == sequence)
    ).one()
    if b.kind in (REPORT, EVENT, TRANSFER):
        rows = conn.execute(
            select(OUTBOX.c.report_id, _PAYLOAD)
            .select_from(_QUEUED)
            .where(OUTBOX.c.destination == peer, OUTBOX.c.batch_sequence == sequence)
            .order_by(OUTBOX.c.batch_position)
        ).all()
        payloads = tuple(r.payload for r in rows)
        ids = tuple(r.report_id for r in rows)
    else:
        rows = conn.execute(
            select(ANNOUNCEMENTS.c.payload)
            .where(
                ANNOUNCEMENTS.c.seq >= b.first_announcement,
                ANNOUNCEMENTS.c.seq <= b.last_announcement,
            )
            .order_by(ANNOUNCEMENTS.c.seq)
        ).all()
        payloads = tuple(r.payload for r in rows)
        ids = ()
    return StoredBatch(
        sequence=sequence,
        kind=b.kind,
        header=b.header,
        signature=b.signature,
        payloads=payloads,
        root=b.root,
        count=b.payload_count,
        report_ids=ids,
        last_announcement=b.last_announcement,
        created_at=b.created_at,
    )


# -- sealing ------------------------------------------------------------------------------------


def claim(conn: Connection, row_ids: Sequence[int], *, read_here: bool = False) -> set[int]:
    """Of ``row_ids``, those still unbatched, locked until COMMIT; rows locked elsewhere skipped.

    (SQLite ignores FOR UPDATE: its writer lock already makes this transaction the only one —
    so rows this same transaction read unbatched, ``read_here``, are still unbatched there, and
    nothing is read again: intake's early seal, in every group.)
    """
    if read_here and conn.dialect.name == "sqlite":
        return set(row_ids)
    return set(
        conn.execute(
            select(OUTBOX.c.id)
            .where(OUTBOX.c.id.in_(list(row_ids)), OUTBOX.c.batch_sequence.is_(None))
            .with_for_update(skip_locked=True)
        ).scalars()
    )


def insert_batch(
    conn: Connection,
    *,
    peer: str,
    sequence: int,
    kind: str,
    header: bytes,
    signature: bytes,
    root: bytes,
    count: int,
    created_at: datetime,
    announcements: tuple[int, int] | None = None,
) -> None:
    """Store a sealed batch; ``announcements`` is the (first, last) range it carries."""
    first, last = announcements if announcements is not None else (None, None)
    insert_rows(
        conn,
        BATCHES,
        [
            {
                "destination": peer,
                "sequence": sequence,
                "kind": kind,
                "header": header,
                "signature": signature,
                "payload_count": count,
                "root": root,
                "created_at": created_at,
                "first_announcement": first,
                "last_announcement": last,
            }
        ],
    )


def assign(conn: Connection, sequence: int, row_ids: Sequence[int]) -> None:
    """Put outbox rows into batch ``sequence``, at their positions in the envelope."""
    update_rows(
        conn,
        OUTBOX,
        "id",
        ("batch_position",),
        [(row_id, i) for i, row_id in enumerate(row_ids)],
        fixed=(("batch_sequence", sequence),),
    )


# -- receipts -----------------------------------------------------------------------------------


def mark_receipted(
    conn: Connection, peer: str, sequence: int, *, body: bytes, signature: bytes, at: datetime
) -> bool:
    """Store the receipt on its batch; False if the batch already had one (applied once)."""
    marked = _MARK_RECEIPTED.run(
        conn, peer=peer, sequence=sequence, body=body, signature=signature, at=at
    )
    return marked != 0


_MARK_RECEIPTED = Prepared(
    update(BATCHES)
    .where(
        BATCHES.c.destination == bindparam("peer"),
        BATCHES.c.sequence == bindparam("sequence"),
        BATCHES.c.receipted_at.is_(None),
    )
    .values(
        receipt_body=bindparam("body"),
        receipt_signature=bindparam("signature"),
        receipted_at=bindparam("at", type_=BATCHES.c.receipted_at.type),
    )
)


def queued_times(conn: Connection, peer: str, sequence: int) -> list[datetime]:
    """When each report of a batch was queued (for the delivery latency metric)."""
    return [at for (at,) in _QUEUED_TIMES.rows(conn, peer=peer, sequence=sequence)]


_QUEUED_TIMES = Prepared(
    select(OUTBOX.c.created_at).where(
        OUTBOX.c.destination == bindparam("peer"),
        OUTBOX.c.batch_sequence == bindparam("sequence"),
    )
)


def remove_batch_rows(conn: Connection, peer: str, sequence: int) -> None:
    """The receipted batch's reports leave the outbox."""
    _REMOVE_BATCH_ROWS.run(conn, peer=peer, sequence=sequence)


_REMOVE_BATCH_ROWS = Prepared(
    delete(OUTBOX).where(
        OUTBOX.c.destination == bindparam("peer"),
        OUTBOX.c.batch_sequence == bindparam("sequence"),
    )
)


def record_deliveries(conn: Connection, rows: Sequence[Delivery]) -> None:
    """Each report's outcome; a row already there (a receipt applied before) is kept. Every
    report delivered was stored here first (it left from this node's outbox)."""
    wanted = sorted({d.report_id for d in rows})
    place = reports.places(conn, wanted)
    missing = [rid for rid in wanted if rid not in place]
    if missing:  # only a report sent from here is receipted: the store lost one
        raise LookupError(f"deliveries of reports not stored here: {', '.join(missing[:3])}")
    insert_rows(
        conn,
        DELIVERIES,
        [
            {
                "report_seq": place[d.report_id],
                "destination": d.destination,
                "sequence": d.sequence,
                "outcome": d.outcome,
                "remote_case_id": d.remote_case_id,
                "reason": d.reason,
                "receipted_at": d.receipted_at,
            }
            for d in rows
        ],
        ignore=True,
    )


def remote_case(conn: Connection, report_id: str) -> str | None:
    """The case id the destination's receipt gave a report we sent (None before a receipt)."""
    return conn.execute(
        select(DELIVERIES.c.remote_case_id)
        .select_from(_BY_REPORT)
        .where(REPORTS.c.id == report_id)
        .limit(1)
    ).scalar_one_or_none()


def case_destination(conn: Connection, case_id: str) -> str | None:
    """The member whose receipt put a report we sent into ``case_id``: the case's holder."""
    return conn.execute(
        select(DELIVERIES.c.destination).where(DELIVERIES.c.remote_case_id == case_id).limit(1)
    ).scalar_one_or_none()


def awaiting_receipt(conn: Connection, destination: str) -> bool:
    """A report to ``destination`` is still in the outbox (queued, or sent without receipt)."""
    row = conn.execute(
        select(OUTBOX.c.id)
        .where(OUTBOX.c.destination == destination, OUTBOX.c.kind == REPORT)
        .limit(1)
    ).first()
    return row is not None


def delivery_of(conn: Connection, report_id: str) -> Delivery | None:
    """A sent report's outcome from its destination's receipt, if one came."""
    r = conn.execute(
        select(DELIVERIES, REPORTS.c.id)
        .select_from(_BY_REPORT)
        .where(REPORTS.c.id == report_id)
        .limit(1)
    ).one_or_none()
    if r is None:
        return None
    return Delivery(
        r.id,
        r.destination,
        r.sequence,
        r.outcome,
        r.remote_case_id,
        r.reason,
        r.receipted_at,
    )


def batches_of(conn: Connection, place: int) -> list[tuple[str, int]]:
    """Each (peer, sequence) of a batch the report stored at ``place`` went in, or may have:
    its deliveries (receipted: the primary key's prefix), and every batch of reports still
    awaiting its receipt (a window's worth per peer, through ``ix_batches_destination_receipted``
    — the outbox, which would say which of them holds the report, has no index by report). A
    caller keeps those whose entry lists the report (``routing_log._about``)."""
    return sorted({(peer, seq) for peer, seq in conn.execute(batches_query(place))})


def batches_query(place: int) -> CompoundSelect[str, int]:
    """``batches_of``'s statement."""
    done = select(DELIVERIES.c.destination, DELIVERIES.c.sequence).where(
        DELIVERIES.c.report_seq == place
    )
    b = BATCHES.c
    waiting = select(b.destination, b.sequence).where(
        b.destination.in_(select(schema.peers.c.member)),
        b.receipted_at.is_(None),
        b.kind == REPORT,
    )
    return done.union_all(waiting)


def queued_state(conn: Connection, report_id: str) -> str | None:
    """ "sent" (in a sealed batch awaiting its receipt), "queued" (not yet sealed) or None."""
    r = conn.execute(
        select(OUTBOX.c.batch_sequence)
        .where(OUTBOX.c.report_id == report_id, OUTBOX.c.kind == REPORT)
        .limit(1)
    ).one_or_none()
    if r is None:
        return None
    return "queued" if r.batch_sequence is None else "sent"
