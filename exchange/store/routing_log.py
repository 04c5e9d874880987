"""The routing log and its signed checkpoints in the database: every statement on their tables.

Rows map to ``routing_log.LogEntry`` in one place (``entry_from_row``), whatever reads them: the
writer's head, the paged listing coordinators read, and the full walk ``verify`` makes. The chain
logic itself (hashing, verification) stays pure in exchange/routing_log.py.

Paging is by entry index (``after_index``), which is stable under appends: a reader never sees
an entry twice or misses one between pages. Filters narrow the page; a page is at most
``MAX_PAGE`` entries.

Indexes and sizes arrive as ``uint64`` on the wire but are stored as signed 64-bit integers (SQLite
and PostgreSQL alike): ``index_in_range`` refuses anything above ``MAX_INDEX`` with a typed
``OutOfRange`` before it reaches the database driver, which would otherwise raise ``OverflowError``
(an INTERNAL answer to a caller's mistake).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from exchange.batch_entries import named_in
from exchange.errors import OutOfRange
from exchange.routing_log import Checkpoint, LogEntry
from exchange.store import outbox, reports, schema
from exchange.store.prepared import Prepared
from exchange.store.sql import insert_rows

MAX_PAGE = 1000
MAX_PAGE_BYTES = 4 * 2**20
"""About what one page's entries may hold: a batch's entry lists its reports (tens of KB at
500 a batch), and a page travels as one gRPC message (16 MB at most) and is held whole by a CSV
export. A page ends early past it — after one entry at least, so paging always moves on."""
_ENTRY_BYTES = 200  # an entry's fields but its detail, hashes included, as sent
MAX_INDEX = 2**63 - 1
"""The largest index or size a database column (signed 64-bit) holds."""

LOG = schema.routing_log
CHECKPOINTS = schema.checkpoints


def index_in_range(name: str, value: int, *, low: int = 0) -> int:
    """``value`` if ``low <= value <= MAX_INDEX``; else ``OutOfRange`` naming ``name``."""
    if not low <= value <= MAX_INDEX:
        raise OutOfRange(f"{name}: {value} is outside {low}..{MAX_INDEX}")
    return value


def entry_from_row(r: Any) -> LogEntry:
    """The one mapping of a stored routing-log row to its entry."""
    return LogEntry(
        r.idx,
        r.at,
        r.kind,
        r.report_id,
        r.member,
        r.country,
        r.detail,
        r.previous_hash,
        r.entry_hash,
    )


# -- entries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """The last stored entry: where the chain continues."""

    idx: int
    entry_hash: bytes
    at: datetime


def head(conn: Connection) -> Head | None:
    """The stored chain's last entry, or None for an empty log."""
    last = _HEAD.first(conn)
    return None if last is None else Head(*last)


# Read by the writer at the start of every group: compiled once (store/prepared.py).
_HEAD = Prepared(select(LOG.c.idx, LOG.c.entry_hash, LOG.c.at).order_by(LOG.c.idx.desc()).limit(1))


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows (``LogEntry.as_row``) of entries the writer's chain handed out, in one
    executemany: the writer collects them per transaction, after its jobs, so a report stored
    in the same transaction already has its place. Each row gets the place of the report it
    names (``report_seq``; None for none, or one not stored here) from one look-up."""
    place = reports.places(conn, {r["report_id"] for r in rows if r["report_id"] is not None})
    insert_rows(conn, LOG, [{**r, "report_seq": place.get(r["report_id"])} for r in rows])


def load_entries(conn: Connection, *, batch: int = 5000) -> Iterator[LogEntry]:
    """Every entry in index order, read in pages (the log can be large)."""
    after = -1
    while True:
        rows = conn.execute(
            select(LOG).where(LOG.c.idx > after).order_by(LOG.c.idx).limit(batch)
        ).all()
        if not rows:
            return
        yield from (entry_from_row(r) for r in rows)
        after = rows[-1].idx


@dataclass(frozen=True, slots=True)
class LogFilter:
    since: datetime | None = None
    until: datetime | None = None
    country: str | None = None
    member: str | None = None
    kind: str | None = None
    report_id: str | None = None
    after_index: int = -1
    page_size: int = 100


def list_entries(conn: Connection, f: LogFilter) -> tuple[list[LogEntry], int | None]:
    """One page of entries, and the ``after_index`` of the next page (None at the end): at
    most ``page_size`` entries, and no more than about ``MAX_PAGE_BYTES`` (rows read as they
    come, so a page cut short never held the rest)."""
    size = max(1, min(f.page_size or 100, MAX_PAGE))
    query = page_query(conn, f, size + 1).execution_options(stream_results=True)
    entries: list[LogEntry] = []
    held = 0
    result = conn.execute(query)
    try:
        for r in result:
            held += len(r.detail) + _ENTRY_BYTES
            if len(entries) == size or (entries and held > MAX_PAGE_BYTES):
                return entries, entries[-1].idx
            entries.append(entry_from_row(r))
    finally:
        result.close()
    return entries, None


def page_query(conn: Connection, f: LogFilter, limit: int) -> Select[Any]:
    """The statement that reads up to ``limit`` entries of ``f``'s page."""
    after = index_in_range("after_index", f.after_index, low=-1)
    q = select(LOG).where(LOG.c.idx > after)
    if f.since is not None:
        q = q.where(LOG.c.at >= f.since)
    if f.until is not None:
        q = q.where(LOG.c.at < f.until)
    for column, wanted in (
        (LOG.c.country, f.country),
        (LOG.c.member, f.member),
        (LOG.c.kind, f.kind),
    ):
        if wanted:
            q = q.where(column == wanted)
    if f.report_id:
        q = q.where(_about(conn, f.report_id))
    return q.order_by(LOG.c.idx).limit(limit)


def _about(conn: Connection, report_id: str) -> ColumnElement[bool]:
    """Entries that name ``report_id``: by its place if it is stored here (every entry appended
    after it was), else by the id among the entries about reports not stored here (see
    ``schema.LogRow``) — each an index look-up. The place is the store's, outside the entry's
    hash, so a placed entry must name the id too: an edited place never moves an entry into
    another report's listing.

    With them, the entries about a batch the report went in (``sent``, ``receipted``: one per
    batch since 0019), found by the batch's peer and sequence (the report's deliveries, and
    the batches still awaiting a receipt). Their detail lists the batch's reports, and the
    hashed text must name this one (``named_in``): an edited ``batch_sequence`` moves no entry
    into the listing either."""
    named = LOG.c.report_id == report_id
    unplaced = and_(LOG.c.report_seq.is_(None), named)
    place = reports.places(conn, [report_id]).get(report_id)
    if place is None:
        return unplaced
    about = [and_(LOG.c.report_seq == place, named), unplaced]
    lists_it = LOG.c.detail.contains(named_in(report_id), autoescape=True)
    for peer, seq in outbox.batches_of(conn, place):
        about.append(and_(LOG.c.member == peer, LOG.c.batch_sequence == seq, lists_it))
    return or_(*about)


# -- checkpoints ----------------------------------------------------------------------------


def _checkpoint(member: str, r: Any) -> Checkpoint:
    return Checkpoint(member, r.size, r.head_hash, r.at, r.key_id, r.signature)


def load_checkpoints(conn: Connection, member: str) -> list[Checkpoint]:
    """Every checkpoint this node signed (as ``member``), smallest first."""
    rows = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.size))
    return [_checkpoint(member, r) for r in rows]


def find_checkpoint(conn: Connection, member: str, size: int) -> Checkpoint | None:
    """The checkpoint of exactly ``size`` entries; with ``size`` 0, the latest."""
    q = select(CHECKPOINTS)
    q = q.where(CHECKPOINTS.c.size == size) if size else q.order_by(CHECKPOINTS.c.size.desc())
    row = conn.execute(q.limit(1)).first()
    return None if row is None else _checkpoint(member, row)


def largest_checkpoint(conn: Connection) -> int | None:
    """The size of the largest checkpoint stored (None before the first)."""
    size: int | None = conn.execute(select(func.max(CHECKPOINTS.c.size))).scalar_one_or_none()
    return size


def add_checkpoint(conn: Connection, cp: Checkpoint) -> None:
    conn.execute(
        CHECKPOINTS.insert(),
        {
            "size": cp.size,
            "head_hash": cp.head_hash,
            "at": cp.at,
            "key_id": cp.key_id,
            "signature": cp.signature,
        },
    )
