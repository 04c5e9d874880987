"""Stored reports with their items and item hashes: every statement on those three tables.

A report is stored once, with its exact wire bytes (what was signed, queued or received), how it
reached this node (``Incoming``) and, per item, the known-content mark intake and the responsible
node answer with. Inserts are set-based (one executemany per table per batch): the writer calls
them for a whole coalesced batch.

Items and item hashes are keyed by the report's place in storage order (``reports.seq``), not by
its id: the id is a hash, so a child row keyed by it went to a random leaf of its table's key,
each written whole at COMMIT; keyed by the place, a batch's rows append at the right edge. A
batch takes the places after the highest stored, read once under the write lock every insert
runs under (the node's writer: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's log lock); the unique
index on ``seq`` refuses any other writer's overlap rather than letting two reports share one.
Look-ups by report id join ``reports`` through its id.

The writer asks for places many times per report — its log entries, its delivery — each an
``IN`` look-up through the reports' random id key. A report's place never changes once stored,
so the writer's connection keeps those it has inserted or read (``PlaceMemo``): what this
transaction inserted or read stays apart until the writer says it committed (a job rolled back
forgets it), then joins what is known for good, bounded to the newest ``MEMO_SIZE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select, update

from exchange.domain import (
    Classification,
    ContentHash,
    HashAlgorithm,
    ItemStatus,
    KnownContent,
    Report,
    ReportRole,
    Sighting,
)
from exchange.store import schema
from exchange.store.prepared import Prepared
from exchange.store.sql import chunks, insert_rows

if TYPE_CHECKING:
    from exchange.trace_review import GeoCheck

REPORTS = schema.reports
ITEMS = schema.items
ITEM_HASHES = schema.item_hashes

Marks = tuple[KnownContent | None, ...]
"""Per item of a report, the first sighting of any of its hashes, or None for new content."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A report to store, with how it reached this node."""

    report: Report
    wire: bytes
    role: ReportRole
    sender: str | None = None
    sequence: int | None = None
    leaf_index: int | None = None
    proof: bytes | None = None
    geo: GeoCheck | None = None  # received reports: this node's own placement of the hosting
    reporter_region: str | None = None  # intake here, with the reporter's consent only


_LAST_SEQ = Prepared(select(func.coalesce(func.max(REPORTS.c.seq), 0)))

# Built once, the ids bound per call: a list of literals is coerced value by value each time.
_EXISTING = Prepared(
    select(REPORTS.c.id, REPORTS.c.case_id).where(
        REPORTS.c.id.in_(bindparam("ids", expanding=True))
    )
)


_PLACES = Prepared(
    select(REPORTS.c.id, REPORTS.c.seq).where(REPORTS.c.id.in_(bindparam("ids", expanding=True)))
)

MEMO_SIZE = 65_536  # places a writer keeps across transactions (about 10 MB at most)
_MEMO = "ihx.report_places"  # the key in the connection's ``info``


class PlaceMemo:
    """Report id → place, as one connection (the writer's) inserted or read them.

    ``fresh`` holds what the open transaction saw: it may still be rolled back, and a place a
    rolled-back insert took is taken again by the next. Its owner, the writer, ``settle``s it:
    into ``kept`` after COMMIT, dropped when a job or the transaction was rolled back (a cache
    only: a place forgotten is read again).
    """

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self.kept: dict[str, int] = {}
        self.fresh: dict[str, int] = {}

    def get(self, report_id: str) -> int | None:
        seq = self.fresh.get(report_id)
        return self.kept.get(report_id) if seq is None else seq

    def settle(self, *, committed: bool) -> None:
        if committed and self.fresh:
            self.kept.update(self.fresh)
            if len(self.kept) > self.size:  # keep the newest half: amortised, not per report
                newest = list(self.kept.items())[-(self.size // 2) :]
                self.kept = dict(newest)
        self.fresh = {}


def use_places(conn: Connection, memo: PlaceMemo) -> None:
    """Keep the places ``conn`` inserts and reads in ``memo`` (the writer's connection: set in
    each transaction, since a connection the database dropped comes back with a fresh ``info``)."""
    conn.info[_MEMO] = memo


def places(conn: Connection, ids: Iterable[str]) -> dict[str, int]:
    """Report id → its place in storage order (``seq``), for the ids stored here."""
    memo: PlaceMemo | None = conn.info.get(_MEMO)
    out: dict[str, int] = {}
    wanted = set(ids)
    if memo is not None:
        for rid in wanted:
            seq = memo.get(rid)
            if seq is not None:
                out[rid] = seq
        wanted.difference_update(out)
    for part in chunks(sorted(wanted)):
        found = {r.id: r.seq for r in _PLACES.rows(conn, ids=part)}
        out.update(found)
        if memo is not None:
            memo.fresh.update(found)
    return out


def existing(conn: Connection, ids: Sequence[str]) -> dict[str, str | None]:
    """Report id → case id (or None) for the ids already stored."""
    out: dict[str, str | None] = {}
    for part in chunks(sorted(set(ids))):
        for r in _EXISTING.rows(conn, ids=part):
            out[r.id] = r.case_id
    return out


def report_row(
    inc: Incoming, *, seq: int, case_id: str | None, stored_at: datetime
) -> dict[str, Any]:
    r = inc.report
    return {
        "id": r.id,
        "seq": seq,
        "role": ReportRole(inc.role).value,
        "origin_member": r.origin_member,
        "url": r.url,
        "url_key": r.url_key,
        "received_at": r.received_at,
        "stored_at": stored_at,
        "site_type": r.facts.site_type.value,
        "commercial": r.facts.commercial,
        "payment_methods": json.dumps(list(r.facts.payment_methods)),
        "notes": r.facts.notes,
        "hosting_country": r.hosting_country,
        "decision_member": r.decision_member,
        "decision_reason": r.decision_reason,
        "case_id": case_id,
        "wire": inc.wire,
        "sender": inc.sender,
        "envelope_sequence": inc.sequence,
        "leaf_index": inc.leaf_index,
        "proof": inc.proof,
        "geo_country": inc.geo.country if inc.geo is not None else None,
        "geo_agrees": inc.geo.agrees if inc.geo is not None else None,
        "reroute_to": inc.geo.reroute_to if inc.geo is not None else None,
        "reporter_region": inc.reporter_region,
    }


def _item_row(seq: int, idx: int, item: Any, first: KnownContent | None) -> dict[str, Any]:
    return {
        "report_seq": seq,
        "idx": idx,
        "classification": item.classification.value,
        "media_type": item.media_type.value,
        "age_group": item.age_group.value,
        "known_member": first.member if first else None,
        "known_case": first.case_id if first else None,
        "known_report": first.report_id if first else None,
        "known_classification": first.classification.value if first else None,
        "known_first_seen": first.first_seen if first else None,
    }


def insert(
    conn: Connection,
    incoming: Sequence[Incoming],
    case_ids: Sequence[str | None],
    marks: Sequence[Marks],
    stored_at: datetime,
) -> None:
    """Insert reports with their items and hashes; items carry their known-content marks."""
    if not incoming:
        return
    report_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    hash_rows: list[dict[str, Any]] = []
    first_seq = int(_LAST_SEQ.scalar(conn)) + 1
    rows = zip(incoming, case_ids, marks, strict=True)
    for seq, (inc, case_id, item_marks) in enumerate(rows, start=first_seq):
        report_rows.append(report_row(inc, seq=seq, case_id=case_id, stored_at=stored_at))
        for idx, (item, first) in enumerate(zip(inc.report.items, item_marks, strict=True)):
            item_rows.append(_item_row(seq, idx, item, first))
            hash_rows.extend(
                {
                    "report_seq": seq,
                    "idx": idx,
                    "algorithm": h.algorithm.value,
                    "hex": h.hex,
                    "quality": h.quality,
                    "held": case_id is not None,
                }
                for h in item.hashes
            )
    insert_rows(conn, REPORTS, report_rows)
    memo: PlaceMemo | None = conn.info.get(_MEMO)
    if memo is not None:
        memo.fresh.update((r["id"], r["seq"]) for r in report_rows)
    insert_rows(conn, ITEMS, item_rows)
    insert_rows(conn, ITEM_HASHES, hash_rows)


@dataclass(frozen=True, slots=True)
class StoredReport:
    """What intake answers for a report id it already holds."""

    report_id: str
    url: str
    wire: bytes
    items: tuple[ItemStatus, ...]
    anonymised_at: datetime | None = None


def stored(conn: Connection, ids: Sequence[str]) -> dict[str, StoredReport]:
    """The stored reports among ``ids``, with their items' known-content marks."""
    if not ids:
        return {}
    statuses: dict[str, list[ItemStatus]] = {}
    rows = conn.execute(
        select(REPORTS.c.id.label("report_id"), ITEMS)
        .join(ITEMS, ITEMS.c.report_seq == REPORTS.c.seq)
        .where(REPORTS.c.id.in_(ids))
        .order_by(ITEMS.c.idx)
    )
    for r in rows:
        statuses.setdefault(r.report_id, []).append(ItemStatus(r.idx, _known_from_row(r)))
    out: dict[str, StoredReport] = {}
    c = REPORTS.c
    for r in conn.execute(select(c.id, c.url, c.wire, c.anonymised_at).where(c.id.in_(ids))):
        out[r.id] = StoredReport(
            r.id, r.url, r.wire, tuple(statuses.get(r.id, ())), r.anonymised_at
        )
    return out


def _known_from_row(r: Any) -> Sighting | None:
    if r.known_member is None:
        return None
    return Sighting(
        r.known_member,
        r.known_case,
        Classification(r.known_classification),
        r.known_first_seen,
        r.known_report or "",
    )


@dataclass(frozen=True, slots=True)
class ReportOrigin:
    """A stored report's wire bytes and the envelope it arrived in (None for local intake)."""

    wire: bytes
    sender: str | None
    envelope_sequence: int | None


def origins(conn: Connection, ids: Sequence[str]) -> dict[str, ReportOrigin]:
    """Wire bytes and envelope of each stored report among ``ids``."""
    return {
        row.id: ReportOrigin(row.wire, row.sender, row.envelope_sequence)
        for part in chunks(ids)
        for row in conn.execute(
            select(
                REPORTS.c.id, REPORTS.c.wire, REPORTS.c.sender, REPORTS.c.envelope_sequence
            ).where(REPORTS.c.id.in_(part))
        )
    }


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the lifecycle needs of a stored report: who made it, who holds it, its items."""

    id: str
    role: str
    origin_member: str
    decision_member: str
    decision_reason: str
    case_id: str | None
    withdrawn_at: datetime | None
    items: tuple[Classification, ...]  # each item's classification by the origin
    hosting_country: str | None = None  # as the origin's trace placed it


def facts(conn: Connection, ids: Sequence[str]) -> dict[str, ReportFacts]:
    """Lifecycle facts of the stored reports among ``ids``."""
    classes: dict[str, list[Classification]] = {}
    out: dict[str, ReportFacts] = {}
    for part in chunks(sorted(set(ids))):
        for i in conn.execute(
            select(REPORTS.c.id.label("report_id"), ITEMS.c.classification)
            .join(ITEMS, ITEMS.c.report_seq == REPORTS.c.seq)
            .where(REPORTS.c.id.in_(part))
            .order_by(REPORTS.c.id, ITEMS.c.idx)
        ):
            classes.setdefault(i.report_id, []).append(Classification(i.classification))
        r = REPORTS.c
        for row in conn.execute(
            select(
                r.id,
                r.role,
                r.origin_member,
                r.decision_member,
                r.decision_reason,
                r.case_id,
                r.withdrawn_at,
                r.hosting_country,
            ).where(r.id.in_(part))
        ):
            out[row.id] = ReportFacts(
                row.id,
                row.role,
                row.origin_member,
                row.decision_member,
                row.decision_reason,
                row.case_id,
                row.withdrawn_at,
                tuple(classes.get(row.id, ())),
                row.hosting_country,
            )
    return out


def set_case(conn: Connection, report_id: str, case_id: str) -> None:
    """A report held here joins a case held here (it came back by a move): its hashes are now
    held content (``carried_elsewhere``)."""
    conn.execute(update(REPORTS).where(REPORTS.c.id == report_id).values(case_id=case_id))
    place = select(REPORTS.c.seq).where(REPORTS.c.id == report_id).scalar_subquery()
    conn.execute(update(ITEM_HASHES).where(ITEM_HASHES.c.report_seq == place).values(held=True))


def mark_withdrawn(conn: Connection, report_id: str, reason: str, now: datetime) -> None:
    conn.execute(
        update(REPORTS)
        .where(REPORTS.c.id == report_id, REPORTS.c.withdrawn_at.is_(None))
        .values(withdrawn_at=now, withdrawal_reason=reason)
    )


def carried_elsewhere(
    conn: Connection, hashes: Sequence[ContentHash], excluding: str
) -> set[ContentHash]:
    """Of ``hashes``, those an item of another live (not withdrawn) report in a case held
    here carries — in any case, not only the excluded report's.

    Asked per algorithm: the index is on (algorithm, hex) of held items' hashes only
    (``item_hashes.held``), and a look-up by hex alone walked every item hash this node holds —
    in the writer, on a withdrawal a member sends."""
    wanted = set(hashes)
    out: set[ContentHash] = set()
    by_algorithm: dict[HashAlgorithm, set[str]] = {}
    for h in wanted:
        by_algorithm.setdefault(h.algorithm, set()).add(h.hex)
    for algorithm, hexes in sorted(by_algorithm.items()):
        for part in chunks(sorted(hexes)):
            rows = conn.execute(
                select(ITEM_HASHES.c.hex)
                .join(REPORTS, REPORTS.c.seq == ITEM_HASHES.c.report_seq)
                .where(
                    ITEM_HASHES.c.held,  # as the partial index says it: see schema.HELD_SQLITE
                    ITEM_HASHES.c.algorithm == algorithm.value,
                    ITEM_HASHES.c.hex.in_(part),
                    REPORTS.c.id != excluding,
                    REPORTS.c.case_id.is_not(None),
                    REPORTS.c.withdrawn_at.is_(None),
                )
            )
            out.update(ContentHash(algorithm, r.hex) for r in rows)
    return out


def region_counts(conn: Connection) -> dict[str, int]:
    """Reports entered here per consented reporter region (only intake here records one)."""
    r = REPORTS.c
    rows = conn.execute(
        select(r.reporter_region, func.count())
        .where(r.role == ReportRole.ORIGIN.value, r.reporter_region.is_not(None))
        .group_by(r.reporter_region)
        .order_by(r.reporter_region)
    )
    return {row[0]: int(row[1]) for row in rows}


def pdq_of_items(
    conn: Connection, report_ids: Sequence[str]
) -> dict[tuple[str, int], tuple[str, int | None]]:
    """Per item (report id, index) of these reports with a PDQ hash: the hash and its quality —
    the item's own, as intake judged it; for an item stored before ``item_hashes`` kept one
    (NULL), the best any sighting of the hash carries (``None``: none gives one). One join of
    ``item_hashes`` (this aggregate's) with the hash index."""
    out: dict[tuple[str, int], tuple[str, int | None]] = {}
    items, seen = ITEM_HASHES, schema.hash_index
    quality = func.coalesce(items.c.quality, func.max(seen.c.quality)).label("quality")
    report_id = REPORTS.c.id.label("report_id")
    for part in chunks(sorted(set(report_ids))):
        rows = conn.execute(
            select(report_id, items.c.idx, items.c.hex, quality)
            .select_from(
                REPORTS.join(items, items.c.report_seq == REPORTS.c.seq).outerjoin(
                    seen,
                    (seen.c.algorithm == HashAlgorithm.PDQ.value) & (seen.c.hex == items.c.hex),
                )
            )
            .where(items.c.algorithm == HashAlgorithm.PDQ.value, REPORTS.c.id.in_(part))
            .group_by(REPORTS.c.id, items.c.idx, items.c.hex, items.c.quality)
        )
        for r in rows:
            out[(r.report_id, r.idx)] = (r.hex, r.quality)
    return out
