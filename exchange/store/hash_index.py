"""The network hash index: each member's own sighting of each content hash, and announcements.

One row per (algorithm, hex, member). The first sighting in the network is derived on read — the
earliest of the members' sightings, ties to the lower member id — so every node answers the same
whatever order announcements arrived in. This node's own first sightings are inserted keeping the
earlier time; a member's announcement updates only that member's row, or removes it (retraction).
The ``announcements`` rows this node queues for its peers are inserted here; the sender drains
them (exchange/store/outbox.py). Every write of a PDQ sighting also appends to ``pdq_changes``
in the same transaction, the feed the node's PDQ index follows (exchange/pdq/matcher.py); each
process following it notes its cursor in ``pdq_followers``, and the feed is trimmed below them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select

from exchange.domain import Classification, ContentHash, HashAlgorithm, KnownContent
from exchange.store import schema
from exchange.store.prepared import Prepared
from exchange.store.sql import OnConflict, chunks, insert_rows, upsert

HASH_INDEX = schema.hash_index
ANNOUNCEMENTS = schema.announcements
PDQ_CHANGES = schema.pdq_changes
PDQ_FOLLOWERS = schema.pdq_followers
PDQ = HashAlgorithm.PDQ.value

SIGHTING_KEY = ("algorithm", "hex", "member")
_EARLIER = "excluded.first_seen < hash_index.first_seen"
# This node's own sighting: on a row already held, whichever is earlier wins whole.
_KEEP_EARLIEST = OnConflict(
    SIGHTING_KEY,
    tuple(
        (c, f"excluded.{c}")
        for c in ("case_id", "report_id", "classification", "first_seen", "quality")
    ),
    where=_EARLIER,
)
# A member's announced sighting: its case, report and classification, the earlier time.
_MEMBER_SIGHTING = OnConflict(
    SIGHTING_KEY,
    (
        ("case_id", "excluded.case_id"),
        ("report_id", "excluded.report_id"),
        ("classification", "excluded.classification"),
        ("quality", "excluded.quality"),
        (
            "first_seen",
            f"CASE WHEN {_EARLIER} THEN excluded.first_seen ELSE hash_index.first_seen END",
        ),
    ),
)


def known_content(
    conn: Connection, hashes: Iterable[ContentHash], *, min_quality: int | None = None
) -> dict[ContentHash, KnownContent]:
    """First sightings in the network for the given hashes: per hash, the earliest of the
    members' own sightings (ties to the lower member id, the same answer on every node);
    with ``min_quality``, of the sightings of at least that quality only."""
    wanted = set(hashes)
    found: dict[ContentHash, KnownContent] = {}
    by_algorithm: dict[str, set[str]] = {}
    for h in wanted:
        by_algorithm.setdefault(h.algorithm.value, set()).add(h.hex)
    # By (algorithm, hex), the primary key's leading columns: on ``hex`` alone the database
    # scans the whole index table once per batch, a cost that grows with the network.
    for algorithm, hexes in sorted(by_algorithm.items()):
        for part in chunks(sorted(hexes)):
            for r in _sightings_of(conn, algorithm, part, min_quality):
                _keep_first(found, wanted, r)
    return found


# Compiled once, the hexes bound per call (store/prepared.py): read at every intake and
# every received envelope.
_SIGHTINGS = select(HASH_INDEX).where(
    HASH_INDEX.c.algorithm == bindparam("algorithm"),
    HASH_INDEX.c.hex.in_(bindparam("hexes", expanding=True)),
)
_ANY_QUALITY = Prepared(_SIGHTINGS)
_OF_QUALITY = Prepared(_SIGHTINGS.where(HASH_INDEX.c.quality >= bindparam("min_quality")))


def _sightings_of(
    conn: Connection, algorithm: str, hexes: Sequence[str], min_quality: int | None
) -> list[Any]:
    if min_quality is None:
        return _ANY_QUALITY.rows(conn, algorithm=algorithm, hexes=hexes)
    return _OF_QUALITY.rows(conn, algorithm=algorithm, hexes=hexes, min_quality=min_quality)


def _keep_first(found: dict[ContentHash, KnownContent], wanted: set[ContentHash], r: Any) -> None:
    """Note sighting row ``r`` in ``found`` when it is of a wanted hash and the earliest yet."""
    h = ContentHash(HashAlgorithm(r.algorithm), r.hex, r.quality)
    if h not in wanted:
        return
    held = found.get(h)
    if held is not None and (held.first_seen, held.member) <= (r.first_seen, r.member):
        return
    found[h] = KnownContent(
        h, r.member, r.case_id, Classification(r.classification), r.first_seen, r.report_id
    )


def _row(k: KnownContent) -> dict[str, Any]:
    return {
        "algorithm": k.hash.algorithm.value,
        "hex": k.hash.hex,
        "member": k.member,
        "case_id": k.case_id,
        "report_id": k.report_id,
        "classification": k.classification.value,
        "first_seen": k.first_seen,
        "quality": k.hash.quality,
    }


def _log_pdq(conn: Connection, sightings: Sequence[KnownContent], *, retracted: bool) -> None:
    rows = [
        {"hex": k.hash.hex, "retracted": retracted}
        for k in sightings
        if k.hash.algorithm is HashAlgorithm.PDQ
    ]
    if rows:
        conn.execute(PDQ_CHANGES.insert(), rows)


def add_first_sightings(conn: Connection, sightings: Sequence[KnownContent]) -> None:
    """Insert this node's sightings; on a row already held keep whichever is earlier."""
    insert_rows(conn, HASH_INDEX, [_row(k) for k in sightings], conflict=_KEEP_EARLIEST)
    _log_pdq(conn, sightings, retracted=False)


def upsert_sightings(conn: Connection, sightings: Sequence[KnownContent]) -> None:
    """Insert members' sightings; a member's existing sighting takes the new case, report and
    classification, and keeps the earlier of the two times."""
    if not sightings:
        return
    insert_rows(conn, HASH_INDEX, [_row(k) for k in sightings], conflict=_MEMBER_SIGHTING)
    _log_pdq(conn, sightings, retracted=False)


def retract(conn: Connection, k: KnownContent) -> None:
    """Remove the member's own sighting of the hash (no other member's row is touched)."""
    conn.execute(
        delete(HASH_INDEX).where(
            HASH_INDEX.c.algorithm == k.hash.algorithm.value,
            HASH_INDEX.c.hex == k.hash.hex,
            HASH_INDEX.c.member == k.member,
        )
    )
    _log_pdq(conn, [k], retracted=True)


def queue_announcements(conn: Connection, payloads: Sequence[bytes], now: datetime) -> None:
    """Queue serialized announcements for every peer's sender to drain."""
    if payloads:
        insert_rows(conn, ANNOUNCEMENTS, [{"payload": p, "created_at": now} for p in payloads])


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
                ContentHash(HashAlgorithm(r.algorithm), r.hex, r.quality),
                r.member,
                r.case_id,
                Classification(r.classification),
                r.first_seen,
                r.report_id,
            )
            for r in rows
        )
    return out


# -- the PDQ index's reads ---------------------------------------------------------------------


def pdq_cursor(conn: Connection) -> int:
    """The last PDQ change's number (0: none yet)."""
    return int(conn.execute(select(func.coalesce(func.max(PDQ_CHANGES.c.seq), 0))).scalar_one())


def pdq_changes_after(conn: Connection, cursor: int, limit: int) -> list[tuple[int, str]]:
    """(number, hex) of the PDQ changes after ``cursor``, in order, at most ``limit``."""
    rows = conn.execute(
        select(PDQ_CHANGES.c.seq, PDQ_CHANGES.c.hex)
        .where(PDQ_CHANGES.c.seq > cursor)
        .order_by(PDQ_CHANGES.c.seq)
        .limit(limit)
    )
    return [(r.seq, r.hex) for r in rows]


def pdq_first_change(conn: Connection) -> int:
    """The first PDQ change still held (0: none). Rows only go from the front (``trim``), so a
    follower at cursor ``c`` has every change it needs while this is at most ``c + 1``."""
    return int(conn.execute(select(func.coalesce(func.min(PDQ_CHANGES.c.seq), 0))).scalar_one())


def record_pdq_follower(conn: Connection, name: str, cursor: int, now: datetime) -> None:
    """``name`` has applied every change up to ``cursor``, as of ``now``."""
    upsert(conn, PDQ_FOLLOWERS, [{"name": name, "cursor": cursor, "seen_at": now}], key=("name",))


def trim_pdq_changes(conn: Connection, *, alive_since: datetime, limit: int) -> int:
    """Forget the followers not heard from since ``alive_since``, then drop the changes every
    other one has applied (below their lowest cursor), at most ``limit`` (the first ones: one
    writer transaction stays short however long the feed grew, e.g. after an upgrade; the
    caller repeats while a whole ``limit`` went); how many changes went. The last change
    always stays: it numbers the next one (SQLite) and is the cursor a file is checked
    against. A follower forgotten here and back later finds the feed trimmed past it
    (``pdq_first_change``) and rebuilds from the sightings."""
    conn.execute(delete(PDQ_FOLLOWERS).where(PDQ_FOLLOWERS.c.seen_at < alive_since))
    low = conn.execute(select(func.min(PDQ_FOLLOWERS.c.cursor))).scalar_one()
    if low is None:
        return 0
    below = min(int(low), pdq_cursor(conn), pdq_first_change(conn) + limit)
    return int(conn.execute(delete(PDQ_CHANGES).where(PDQ_CHANGES.c.seq < below)).rowcount)


def pdq_matchable(
    conn: Connection, min_quality: int, hexes: Sequence[str] | None = None
) -> set[str]:
    """PDQ hashes with at least one sighting of quality >= ``min_quality`` (of ``hexes``, or
    all of them: the index rebuilt from the sightings)."""
    where = [HASH_INDEX.c.algorithm == PDQ, HASH_INDEX.c.quality >= min_quality]
    if hexes is None:
        return set(conn.execute(select(HASH_INDEX.c.hex).where(*where).distinct()).scalars())
    found: set[str] = set()
    for part in chunks(sorted(set(hexes))):
        stmt = select(HASH_INDEX.c.hex).where(*where, HASH_INDEX.c.hex.in_(part)).distinct()
        found.update(conn.execute(stmt).scalars())
    return found


def pdq_sightings(
    conn: Connection, hexes: Sequence[str], min_quality: int | None
) -> dict[str, list[KnownContent]]:
    """Per PDQ hash, its sightings of at least ``min_quality`` (any: ``None``), earliest
    first (ties to the lower member id): the first is the first sighting in the network, and a
    caller that must pass over some (an item's own case or report) takes the next."""
    found: dict[str, list[KnownContent]] = {}
    where = [HASH_INDEX.c.algorithm == PDQ]
    if min_quality is not None:
        where.append(HASH_INDEX.c.quality >= min_quality)
    for part in chunks(sorted(set(hexes))):
        for r in conn.execute(select(HASH_INDEX).where(*where, HASH_INDEX.c.hex.in_(part))):
            found.setdefault(r.hex, []).append(
                KnownContent(
                    ContentHash(HashAlgorithm.PDQ, r.hex, r.quality),
                    r.member,
                    r.case_id,
                    Classification(r.classification),
                    r.first_seen,
                    r.report_id,
                )
            )
    for rows in found.values():
        rows.sort(key=lambda k: (k.first_seen, k.member))
    return found
