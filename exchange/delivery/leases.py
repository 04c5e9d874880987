"""Peer leases: with several replicas of a node on one PostgreSQL database, one streams per peer.

Every replica runs a sender per peer, but only the replica holding a peer's lease (a row of
``peer_leases``: holder, expiry on the DATABASE's clock) may seal batches for it; the others
stand by. One thread per process keeps the leases: every ``ttl / 3`` one writer job renews the
leases it holds and takes any lease that is free or expired. A replica that dies stops renewing,
and another takes its peers over within about ``ttl`` — resending the dead replica's sealed but
unreceipted batches byte for byte first (the receiver deduplicates by sender and sequence).

Safety does not rest on timing. Each sealing transaction ``fence``s: it locks the lease row and
fails with ``LeaseLost`` unless this replica still holds an unexpired lease, so a replica that
paused past its expiry cannot seal next to its successor; outbox rows are claimed with
``FOR UPDATE SKIP LOCKED`` in that same transaction (outbox.py), so no report lands in two
batches. Applying a receipt is idempotent, so the old and the new holder may both apply one.

The lease's ``acquired_at`` is its generation: a sender's session ends when the generation it
started with is no longer held, so state kept in memory during a session (the announcement
high-water mark) never outlives a takeover by another replica.

A SQLite node is its database's only process and has no ``Leases`` at all (``None``).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Connection,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    update,
)

from exchange.errors import ExchangeError
from exchange.store import schema
from exchange.store.sql import insert_ignore
from exchange.store.writer import Tx, Writer
from exchange.times import from_micros, to_micros

log = logging.getLogger(__name__)

LEASES = schema.peer_leases


class LeaseLost(ExchangeError):
    """This replica no longer holds the peer's lease: another one streams to it now."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"the lease on {peer} is held by another replica", code="lease-lost")


def replica_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted pod is someone new)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"[:64]


def database_now(conn: Connection) -> datetime:
    """The database server's clock (replicas on several hosts must agree on expiry)."""
    micros = conn.execute(
        select(cast(extract("epoch", func.clock_timestamp()) * 1_000_000, BigInteger))
    ).scalar_one()
    return from_micros(int(micros))


Listener = Callable[[bool], None]


class Leases:
    """This replica's leases on its peers' streams (PostgreSQL only)."""

    def __init__(
        self,
        writer: Writer,
        *,
        holder: str | None = None,
        ttl: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.holder = holder or replica_id()
        self.ttl = ttl
        self._writer = writer
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._listeners: dict[str, Listener] = {}
        # peer → (generation, local deadline): a conservative local view of what we hold.
        self._held: dict[str, tuple[datetime, float]] = {}
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    # -- what senders use ------------------------------------------------------------------

    def want(self, peer: str, listener: Listener) -> None:
        """Compete for ``peer``; ``listener(True)`` when acquired, ``listener(False)`` when lost."""
        with self._lock:
            self._listeners[peer] = listener
        self._kick.set()

    def generation(self, peer: str) -> datetime | None:
        """The generation of our lease on ``peer`` if we hold it now, else None."""
        with self._lock:
            held = self._held.get(peer)
        if held is None or self._monotonic() >= held[1]:
            return None
        return held[0]

    def fence(self, tx: Tx, peer: str) -> None:
        """Inside a sealing job: lock our lease row, or raise ``LeaseLost``."""
        row = tx.conn.execute(
            select(LEASES.c.holder, LEASES.c.expires_at)
            .where(LEASES.c.destination == peer)
            .with_for_update()
        ).first()
        if row is None or row.holder != self.holder or row.expires_at <= database_now(tx.conn):
            raise LeaseLost(peer)

    # -- the keeper thread --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ihx-leases", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; ``release`` hands our peers over at once (a clean shutdown)."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._lock:
            held, self._held = list(self._held), {}
        if release and held:
            try:
                self._writer.execute(lambda tx: self._release(tx, held))
            except Exception as error:  # the leases expire on their own anyway
                log.warning("could not release peer leases: %s", error)

    def refresh(self) -> None:
        """One round: renew what we hold, take what is free or expired, notify the senders."""
        with self._lock:
            wanted = sorted(self._listeners)
        if not wanted:
            return
        started = self._monotonic()
        granted = self._writer.execute(lambda tx: self._round(tx, wanted))
        deadline = started + self.ttl * 0.8  # margin for clock rates and the job's own latency
        changes: list[tuple[Listener, bool]] = []
        with self._lock:
            before = self._held
            self._held = {peer: (gen, deadline) for peer, gen in granted.items()}
            for peer in wanted:
                old, new = before.get(peer), self._held.get(peer)
                old_generation = old[0] if old is not None else None
                new_generation = new[0] if new is not None else None
                if old_generation != new_generation:
                    changes.append((self._listeners[peer], new_generation is not None))
        self.rounds += 1
        for listener, acquired in changes:
            listener(acquired)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as error:  # the database is away: local deadlines run out
                log.warning("peer lease round failed: %s", error)
            self._kick.wait(self.ttl / 3)
            self._kick.clear()

    def _round(self, tx: Tx, peers: Sequence[str]) -> dict[str, datetime]:
        now = database_now(tx.conn)
        expires = from_micros(to_micros(now) + int(self.ttl * 1_000_000))
        epoch = from_micros(0)
        insert_ignore(
            tx.conn,
            LEASES,
            [
                {"destination": p, "holder": "", "acquired_at": epoch, "expires_at": epoch}
                for p in peers
            ],
        )
        mine = LEASES.c.holder == self.holder
        rows = tx.conn.execute(
            update(LEASES)
            .where(LEASES.c.destination.in_(peers), or_(mine, LEASES.c.expires_at <= now))
            .values(
                holder=self.holder,
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

    def _release(self, tx: Tx, peers: Sequence[str]) -> None:
        now = database_now(tx.conn)
        tx.conn.execute(
            update(LEASES)
            .where(LEASES.c.destination.in_(peers), LEASES.c.holder == self.holder)
            .values(expires_at=now)
        )
