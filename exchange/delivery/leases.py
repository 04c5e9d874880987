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
``FOR UPDATE SKIP LOCKED`` in that same transaction (store/outbox.py), so no report lands in
two batches. Applying a receipt is idempotent, so the old and the new holder may both apply one.

The lease's ``acquired_at`` is its generation: a sender's session ends when the generation it
started with is no longer held, so state kept in memory during a session (the announcement
high-water mark) never outlives a takeover by another replica.

A SQLite node is its database's only process and has no ``Leases`` at all (``None``). The
lease rows' SQL is in exchange/store/peers.py.
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

from exchange.errors import ExchangeError
from exchange.store import peers as peer_rows
from exchange.store.writer import Tx, Writer

log = logging.getLogger(__name__)


class LeaseLost(ExchangeError):
    """This replica no longer holds the peer's lease: another one streams to it now."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"the lease on {peer} is held by another replica", code="lease-lost")


def replica_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted pod is someone new)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"[:64]


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
        row = peer_rows.lock_lease(tx.conn, peer)
        if (
            row is None
            or row.holder != self.holder
            or row.expires_at <= peer_rows.database_now(tx.conn)
        ):
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
        return peer_rows.claim_leases(tx.conn, self.holder, peers, self.ttl)

    def _release(self, tx: Tx, peers: Sequence[str]) -> None:
        peer_rows.release_leases(tx.conn, self.holder, peers)
