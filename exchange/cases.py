"""Cases at the responsible node: dedup by URL, merge, known content, announcements.

``accept`` takes reports this node is responsible for — from its own intake (a local decision) or
from a peer's envelope — and, inside the writer's transaction, in a handful of set-based
statements per batch:

* a report id already held is answered with its earlier outcome (idempotent receiver);
* a report whose ``url_key`` matches an open case is merged into it (the extra reporting member
  and the items new to the case are recorded); otherwise it opens a case;
* every item whose hash is in the network hash index is marked known content, with the first
  sighting; hashes seen for the first time are added to the index and to the announcement log,
  which each peer's sender drains through the signed outbox.

Because the single writer serialises all of this, two origins reporting the same URL at the same
moment still end with one case and two reporting members.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from exchange.domain import (
    Classification,
    ContentHash,
    HashAlgorithm,
    KnownContent,
    Outcome,
    PayloadResult,
    Report,
    case_id_for,
)
from exchange.store import schema
from exchange.store.sql import chunks, upsert_earliest
from exchange.store.writer import Tx
from exchange.trace_review import GeoCheck
from exchange.wire.codec import announcement_to_proto

ReportRole = str  # "origin" | "received"


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


REPORTS = schema.reports
ITEMS = schema.items
ITEM_HASHES = schema.item_hashes
CASES = schema.cases
CASE_REPORTS = schema.case_reports
HASH_INDEX = schema.hash_index
ANNOUNCEMENTS = schema.announcements


def known_content(
    conn: Connection, hashes: Iterable[ContentHash]
) -> dict[ContentHash, KnownContent]:
    """First sightings in the network for the given hashes: per hash, the earliest of the
    members' own sightings (ties to the lower member id, the same answer on every node)."""
    wanted = set(hashes)
    found: dict[ContentHash, KnownContent] = {}
    hexes = sorted({h.hex for h in wanted})
    for part in chunks(hexes):
        rows = conn.execute(select(HASH_INDEX).where(HASH_INDEX.c.hex.in_(part)))
        for r in rows:
            h = ContentHash(HashAlgorithm(r.algorithm), r.hex)
            if h not in wanted:
                continue
            held = found.get(h)
            if held is not None and (held.first_seen, held.member) <= (r.first_seen, r.member):
                continue
            found[h] = KnownContent(
                h,
                r.member,
                r.case_id,
                Classification(r.classification),
                r.first_seen,
                r.report_id,
            )
    return found


def existing_reports(conn: Connection, ids: Sequence[str]) -> dict[str, str | None]:
    """Report id → case id (or None) for the ids already stored."""
    out: dict[str, str | None] = {}
    for part in chunks(sorted(set(ids))):
        for r in conn.execute(
            select(REPORTS.c.id, REPORTS.c.case_id).where(REPORTS.c.id.in_(part))
        ):
            out[r.id] = r.case_id
    return out


def report_row(inc: Incoming, *, case_id: str | None, stored_at: datetime) -> dict[str, Any]:
    r = inc.report
    return {
        "id": r.id,
        "role": inc.role,
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
    }


Marks = tuple[KnownContent | None, ...]


def marks_for(report: Report, known: dict[ContentHash, KnownContent]) -> Marks:
    """Per item, the first sighting of any of its hashes, or None when the content is new."""
    return tuple(next((known[h] for h in i.hashes if h in known), None) for i in report.items)


def insert_report_rows(
    conn: Connection,
    incoming: Sequence[Incoming],
    case_ids: Sequence[str | None],
    marks: Sequence[Marks],
    stored_at: datetime,
) -> None:
    """Insert reports with their items and hashes; items carry their known-content marks."""
    report_rows = []
    item_rows = []
    hash_rows = []
    for inc, case_id, item_marks in zip(incoming, case_ids, marks, strict=True):
        report_rows.append(report_row(inc, case_id=case_id, stored_at=stored_at))
        rid = inc.report.id
        for idx, (item, first) in enumerate(zip(inc.report.items, item_marks, strict=True)):
            item_rows.append(
                {
                    "report_id": rid,
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
            )
            for h in item.hashes:
                hash_rows.append(
                    {"report_id": rid, "idx": idx, "algorithm": h.algorithm.value, "hex": h.hex}
                )
    if report_rows:
        conn.execute(REPORTS.insert(), report_rows)
        conn.execute(ITEMS.insert(), item_rows)
        conn.execute(ITEM_HASHES.insert(), hash_rows)


@dataclass(frozen=True, slots=True)
class Accepted:
    results: list[PayloadResult]  # one per input, in order
    marks: dict[str, Marks]  # known-content marks of the reports stored now


def accept(tx: Tx, incoming: Sequence[Incoming], *, self_member: str, now: datetime) -> Accepted:
    """Store reports this node is responsible for; one result per input, in order."""
    conn = tx.conn
    held = existing_reports(conn, [i.report.id for i in incoming])
    earlier = _earlier_outcomes(conn, [rid for rid, case in held.items() if case is not None])

    fresh: list[Incoming] = []
    results: list[PayloadResult | None] = []
    seen: set[str] = set()
    for i, inc in enumerate(incoming):
        rid = inc.report.id
        if rid in held or rid in seen:
            results.append(None)  # filled in below, once the batch's own new cases exist
            continue
        seen.add(rid)
        fresh.append(inc)
        results.append(PayloadResult(i, rid, Outcome.NEW_CASE))

    open_cases = _open_cases(conn, {inc.report.url_key for inc in fresh})
    known = known_content(conn, (h for inc in fresh for h in inc.report.hashes))
    new_cases: list[dict[str, Any]] = []
    touched: set[str] = set()
    case_rows: list[dict[str, Any]] = []
    index_rows: list[dict[str, Any]] = []
    announce_rows: list[dict[str, Any]] = []
    case_of: dict[str, str] = {}
    outcome_of: dict[str, Outcome] = {}
    case_ids: list[str | None] = []
    marks: list[Marks] = []
    for inc in fresh:
        r = inc.report
        marks.append(marks_for(r, known))
        case_id = open_cases.get(r.url_key)
        if case_id is None:
            case_id = case_id_for(r.id)
            open_cases[r.url_key] = case_id
            outcome = Outcome.NEW_CASE
            new_cases.append(
                {
                    "id": case_id,
                    "url_key": r.url_key,
                    "url": r.url,
                    "hosting_country": r.hosting_country,
                    "status": "open",
                    "opened_at": now,
                    "updated_at": now,
                    "first_report_id": r.id,
                }
            )
        else:
            outcome = Outcome.MERGED
            touched.add(case_id)
        new_items = 0
        for item in r.items:
            if not any(h in known and known[h].case_id == case_id for h in item.hashes):
                new_items += 1
            for h in item.hashes:
                if h not in known:
                    first = KnownContent(
                        h, self_member, case_id, item.classification, r.received_at, r.id
                    )
                    known[h] = first
                    index_rows.append(_index_row(first))
                    announce_rows.append(
                        {
                            "payload": announcement_to_proto(first).SerializeToString(),
                            "created_at": now,
                        }
                    )
        case_rows.append(
            {
                "case_id": case_id,
                "report_id": r.id,
                "reporting_member": r.origin_member,
                "outcome": outcome.value,
                "new_items": new_items,
                "at": now,
            }
        )
        case_of[r.id] = case_id
        outcome_of[r.id] = outcome
        case_ids.append(case_id)
        tx.log(
            tx.chain.append(
                now,
                outcome.value,
                report_id=r.id,
                member=r.origin_member,
                country=r.hosting_country,
                detail={"case": case_id, "new_items": new_items, "via": inc.sender or "intake"},
            )
        )
    if new_cases:
        conn.execute(CASES.insert(), new_cases)
    if touched:
        conn.execute(update(CASES).where(CASES.c.id.in_(sorted(touched))).values(updated_at=now))
    insert_report_rows(conn, fresh, case_ids, marks, now)
    if case_rows:
        conn.execute(CASE_REPORTS.insert(), case_rows)
    upsert_earliest(conn, HASH_INDEX, index_rows, key=SIGHTING_KEY, time="first_seen")
    if announce_rows:
        conn.execute(ANNOUNCEMENTS.insert(), announce_rows)
        tx.log(
            tx.chain.append(
                now, "announced", member=self_member, detail={"hashes": len(announce_rows)}
            )
        )

    out: list[PayloadResult] = []
    for i, (inc, res) in enumerate(zip(incoming, results, strict=True)):
        if res is not None:
            out.append(
                PayloadResult(i, inc.report.id, outcome_of[inc.report.id], case_of[inc.report.id])
            )
            continue
        rid = inc.report.id
        if rid in case_of:  # the same id twice in one batch
            out.append(PayloadResult(i, rid, outcome_of[rid], case_of[rid]))
        else:
            prior_outcome, prior_case = earlier.get(rid, (Outcome.NEW_CASE, held.get(rid) or ""))
            out.append(PayloadResult(i, rid, prior_outcome, prior_case))
    return Accepted(out, {inc.report.id: m for inc, m in zip(fresh, marks, strict=True)})


def _index_row(k: KnownContent) -> dict[str, Any]:
    return {
        "algorithm": k.hash.algorithm.value,
        "hex": k.hash.hex,
        "member": k.member,
        "case_id": k.case_id,
        "report_id": k.report_id,
        "classification": k.classification.value,
        "first_seen": k.first_seen,
    }


def _open_cases(conn: Connection, url_keys: Iterable[bytes]) -> dict[bytes, str]:
    keys = sorted(set(url_keys))
    out: dict[bytes, str] = {}
    for part in chunks(keys):
        rows = conn.execute(
            select(CASES.c.url_key, CASES.c.id).where(
                CASES.c.url_key.in_(part), CASES.c.status == "open"
            )
        )
        out.update({r.url_key: r.id for r in rows})
    return out


def _earlier_outcomes(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Outcome, str]]:
    out: dict[str, tuple[Outcome, str]] = {}
    for part in chunks(sorted(ids)):
        rows = conn.execute(
            select(CASE_REPORTS.c.report_id, CASE_REPORTS.c.outcome, CASE_REPORTS.c.case_id).where(
                CASE_REPORTS.c.report_id.in_(part)
            )
        )
        out.update({r.report_id: (Outcome(r.outcome), r.case_id) for r in rows})
    return out


SIGHTING_KEY = ("algorithm", "hex", "member")


def record_announcements(tx: Tx, announced: Sequence[KnownContent]) -> None:
    """Apply members' announcements, each to the announcer's own sighting only.

    A sighting adds or updates the announcer's row (its case, report and classification as
    now announced; its time the earlier of the two); a retraction removes it. The receiver has
    checked that every announcement names its signer, so no row of another member is touched.
    """
    kept = [k for k in announced if not k.retracted]
    upsert_sightings(tx.conn, [_index_row(k) for k in kept])
    gone = [k for k in announced if k.retracted]
    for k in gone:
        tx.conn.execute(
            delete(HASH_INDEX).where(
                HASH_INDEX.c.algorithm == k.hash.algorithm.value,
                HASH_INDEX.c.hex == k.hash.hex,
                HASH_INDEX.c.member == k.member,
            )
        )


def upsert_sightings(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert members' sightings; a member's existing sighting takes the new case, report and
    classification, and keeps the earlier of the two times."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(HASH_INDEX)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=list(SIGHTING_KEY),
        set_={
            "case_id": new.case_id,
            "report_id": new.report_id,
            "classification": new.classification,
            "first_seen": case(
                (new.first_seen < HASH_INDEX.c.first_seen, new.first_seen),
                else_=HASH_INDEX.c.first_seen,
            ),
        },
    )
    conn.execute(stmt, list(rows))
