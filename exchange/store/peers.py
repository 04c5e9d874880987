"""The peers aggregate: one row per destination (sequence counter, health) and its stream lease.

A ``peers`` row holds what a sender keeps about its peer across restarts: the next batch
sequence (taken under a row lock, so two transactions never seal the same number), the
announcement cursor (advanced only forward: two replicas' receipts may be applied out of
order), and the failure record ``ihx status`` shows (``last_error``, ``failing_since``,
``failures``), cleared when the peer is heard from. ``peer_leases`` rows (exchange/delivery/
leases.py) say which replica of a node streams to each peer; expiry is on the DATABASE's clock
so replicas on several hosts agree. All of this aggregate's SQL is here; callers pass the
connection of their own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    bindparam,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    update,
)

from exchange.store import schema
from exchange.store.prepared import Prepared
from exchange.store.sql import insert_ignore
from exchange.times import from_micros, to_micros

PEERS = schema.peers
LEASES = schema.peer_leases

# ``ihx status`` shows the error; a peer's error text (its gRPC details) is not ours to size.
_MAX_ERROR = 300


def ensure(conn: Connection, peer: str) -> None:
    """The peer's row, created at sequence 1 and cursor 0 if it is not there yet."""
    insert_ignore(conn, PEERS, [{"member": peer, "next_sequence": 1, "announce_cursor": 0}])


def take_sequence(conn: Connection, peer: str) -> int:
    """The peer's next batch sequence, taken: the row stays locked until COMMIT."""
    seq = int(_NEXT_SEQUENCE.scalar(conn, peer=peer))
    _SET_NEXT_SEQUENCE.run(conn, peer=peer, next=seq + 1)
    return seq


# Run in every group that seals a batch: compiled once (store/prepared.py).
_NEXT_SEQUENCE = Prepared(
    select(PEERS.c.next_sequence).where(PEERS.c.member == bindparam("peer")).with_for_update()
)
_SET_NEXT_SEQUENCE = Prepared(
    update(PEERS)
    .where(PEERS.c.member == bindparam("peer"))
    .values(next_sequence=bindparam("next", type_=PEERS.c.next_sequence.type))
)


def announce_cursor(conn: Connection, peer: str) -> int:
    """The last announcement the peer receipted (0 if none, or no row yet)."""
    cursor = conn.execute(
        select(PEERS.c.announce_cursor).where(PEERS.c.member == peer)
    ).scalar_one_or_none()
    return int(cursor or 0)


def record_failure(conn: Connection, peer: str, reason: str, now: datetime) -> None:
    """One more failure; ``failing_since`` keeps the first of the run."""
    conn.execute(
        update(PEERS)
        .where(PEERS.c.member == peer)
        .values(
            last_error=reason[:_MAX_ERROR],
            failures=PEERS.c.failures + 1,
            failing_since=func.coalesce(
                PEERS.c.failing_since, literal(now, PEERS.c.failing_since.type)
            ),
        )
    )


def record_heard(
    conn: Connection, peer: str, now: datetime, *, announced_upto: int | None = None
) -> None:
    """The peer receipted a batch: failures cleared, the cursor moved forward (never back)."""
    if announced_upto is None:
        _HEARD.run(conn, peer=peer, now=now)
    else:
        _HEARD_UPTO.run(conn, peer=peer, now=now, upto=announced_upto)


_HEARD_VALUES: dict[str, Any] = {
    "last_heard_at": bindparam("now", type_=PEERS.c.last_heard_at.type),
    "last_error": None,
    "failing_since": None,
    "failures": 0,
}
# Run at every receipt: compiled once (store/prepared.py).
_HEARD = Prepared(update(PEERS).where(PEERS.c.member == bindparam("peer")).values(**_HEARD_VALUES))
_UPTO = bindparam("upto", type_=Integer)
_HEARD_UPTO = Prepared(
    update(PEERS)
    .where(PEERS.c.member == bindparam("peer"))
    .values(
        **_HEARD_VALUES,
        announce_cursor=case(
            (PEERS.c.announce_cursor < _UPTO, _UPTO), else_=PEERS.c.announce_cursor
        ),
    )
)


# -- leases -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseRow:
    holder: str
    expires_at: datetime


def database_now(conn: Connection) -> datetime:
    """The database server's clock (replicas on several hosts must agree on expiry)."""
    micros = conn.execute(
        select(cast(extract("epoch", func.clock_timestamp()) * 1_000_000, BigInteger))
    ).scalar_one()
    return from_micros(int(micros))


def lock_lease(conn: Connection, peer: str) -> LeaseRow | None:
    """The peer's lease row, locked until COMMIT (a sealing transaction's fence)."""
    row = conn.execute(
        select(LEASES.c.holder, LEASES.c.expires_at)
        .where(LEASES.c.destination == peer)
        .with_for_update()
    ).first()
    return None if row is None else LeaseRow(row.holder, row.expires_at)


def claim_leases(
    conn: Connection, holder: str, peers: Sequence[str], ttl: float
) -> dict[str, datetime]:
    """Renew ``holder``'s leases among ``peers`` and take the free or expired ones.

    Returns peer → generation (``acquired_at``) of every lease ``holder`` holds afterwards.
    """
    now = database_now(conn)
    expires = from_micros(to_micros(now) + int(ttl * 1_000_000))
    epoch = from_micros(0)
    insert_ignore(
        conn,
        LEASES,
        [
            {"destination": p, "holder": "", "acquired_at": epoch, "expires_at": epoch}
            for p in peers
        ],
    )
    mine = LEASES.c.holder == holder
    rows = conn.execute(
        update(LEASES)
        .where(LEASES.c.destination.in_(peers), or_(mine, LEASES.c.expires_at <= now))
        .values(
            holder=holder,
            expires_at=expires,
            # A lease we still hold keeps its generation; a taken-over one starts a new one.
            acquired_at=case(
                (mine & (LEASES.c.expires_at > now), LEASES.c.acquired_at),
                else_=literal(now, LEASES.c.acquired_at.type),  # stored as micros too
            ),
        )
        .returning(LEASES.c.destination, LEASES.c.acquired_at)
    ).all()
    return {r.destination: r.acquired_at for r in rows}


def release_leases(conn: Connection, holder: str, peers: Sequence[str]) -> None:
    """Let ``holder``'s leases on ``peers`` expire now (a clean shutdown hands them over)."""
    now = database_now(conn)
    conn.execute(
        update(LEASES)
        .where(LEASES.c.destination.in_(peers), LEASES.c.holder == holder)
        .values(expires_at=now)
    )
