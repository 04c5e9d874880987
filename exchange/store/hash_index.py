"""The network hash index: each member's own sighting of each content hash, and announcements.

One row per (algorithm, hex, member). The first sighting in the network is derived on read — the
earliest of the members' sightings, ties to the lower member id — so every node answers the same
whatever order announcements arrived in. This node's own first sightings are inserted keeping the
earlier time; a member's announcement updates only that member's row, or removes it (retraction).
The ``announcements`` rows this node queues for its peers are inserted here; the sender drains
them (exchange/store/outbox.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from exchange.domain import Classification, ContentHash, HashAlgorithm, KnownContent
from exchange.store import schema
from exchange.store.sql import chunks, upsert_earliest

HASH_INDEX = schema.hash_index
ANNOUNCEMENTS = schema.announcements

SIGHTING_KEY = ("algorithm", "hex", "member")


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


def _row(k: KnownContent) -> dict[str, Any]:
    return {
        "algorithm": k.hash.algorithm.value,
        "hex": k.hash.hex,
        "member": k.member,
        "case_id": k.case_id,
        "report_id": k.report_id,
        "classification": k.classification.value,
        "first_seen": k.first_seen,
    }


def add_first_sightings(conn: Connection, sightings: Sequence[KnownContent]) -> None:
    """Insert this node's sightings; on a row already held keep whichever is earlier."""
    upsert_earliest(
        conn, HASH_INDEX, [_row(k) for k in sightings], key=SIGHTING_KEY, time="first_seen"
    )


def upsert_sightings(conn: Connection, sightings: Sequence[KnownContent]) -> None:
    """Insert members' sightings; a member's existing sighting takes the new case, report and
    classification, and keeps the earlier of the two times."""
    if not sightings:
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
    conn.execute(stmt, [_row(k) for k in sightings])


def retract(conn: Connection, k: KnownContent) -> None:
    """Remove the member's own sighting of the hash (no other member's row is touched)."""
    conn.execute(
        delete(HASH_INDEX).where(
            HASH_INDEX.c.algorithm == k.hash.algorithm.value,
            HASH_INDEX.c.hex == k.hash.hex,
            HASH_INDEX.c.member == k.member,
        )
    )


def queue_announcements(conn: Connection, payloads: Sequence[bytes], now: datetime) -> None:
    """Queue serialized announcements for every peer's sender to drain."""
    if payloads:
        conn.execute(ANNOUNCEMENTS.insert(), [{"payload": p, "created_at": now} for p in payloads])


def own_sightings_of(
    conn: Connection, member: str, report_ids: Sequence[str]
) -> list[KnownContent]:
    """``member``'s own sightings that point at any of ``report_ids``."""
    out: list[KnownContent] = []
    for part in chunks(sorted(set(report_ids))):
        rows = conn.execute(
            select(HASH_INDEX).where(
                HASH_INDEX.c.member == member, HASH_INDEX.c.report_id.in_(part)
            )
        )
        out.extend(
            KnownContent(
                ContentHash(HashAlgorithm(r.algorithm), r.hex),
                r.member,
                r.case_id,
                Classification(r.classification),
                r.first_seen,
                r.report_id,
            )
            for r in rows
        )
    return out
