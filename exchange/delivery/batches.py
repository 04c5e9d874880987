"""Batches for one peer: sealing the next one, and resending an unreceipted one as it was sent.

A batch is sealed and persisted (sequence, header, signature, membership) BEFORE it is sent, in
one writer transaction, so a crash at any instant either leaves the rows unbatched or leaves a
batch that is resent as is: the receiver deduplicates by (sender, sequence) and by report id.

``seal_next`` takes pending outbox rows first, then new hash announcements after the peer's
high-water mark; on an idle pipe it lingers a few milliseconds when the batch is not full, so
concurrent intake fills it (with batches in flight it seals at once: rows gathered while they
waited, or a case event that should not wait). Announcements are background traffic — a peer's hash
index must have them within seconds, but no delivery waits on them — so a short batch of them waits
until its first has waited ``announcement_linger_ms`` (250 ms by default; a full batch goes at
once): at a steady 1,000 reports/s the holder sent its origin up to ~30 envelopes of a few dozen
announcements a second, each sealed, signed, verified, stored and receipted on both nodes. The
price: a peer marks a repeat as known content (or learns of a retraction) up to that much later.
``fit`` closes a batch on bytes as well as on count: a sealed batch is resent unchanged, so one too
large for a gRPC message would block the peer forever. Asked for a full batch only (the sender,
while ``EAGER_IN_FLIGHT`` or more are in flight), it seals one only when a full batch's worth
waits, counted in the outbox index without reading a payload. With leases (several replicas on
PostgreSQL) each sealing transaction first ``fence``s — a replica that lost the lease raises
``LeaseLost`` and seals nothing — and claims its rows with SKIP LOCKED.

Sizes come straight from ``ExchangeTuning``: a batch holds at most ``max_batch`` reports and
never more than a receiver accepts (``max_payloads``), in at most ``max_message_bytes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import Engine

from auth.keys import SigningKey
from auth.manifest import Manifest
from common.clock import Clock
from exchange.batch_entries import sent_entry
from exchange.delivery.leases import Leases
from exchange.settings import ExchangeTuning
from exchange.store import outbox, peers
from exchange.store.outbox import PendingAnnouncement, PendingReport
from exchange.store.writer import Priority, Tx, Writer
from exchange.wire.envelope import (
    KIND_ANNOUNCEMENT,
    KIND_EVENT,
    KIND_REPORT,
    KIND_TRANSFER,
    Sealed,
    seal,
)
from ihx.v1 import exchange_pb2 as xpb

_WIRE_KIND = {
    outbox.REPORT: KIND_REPORT,
    outbox.EVENT: KIND_EVENT,
    outbox.ANNOUNCEMENT: KIND_ANNOUNCEMENT,
    outbox.TRANSFER: KIND_TRANSFER,
}

# Envelope bytes beyond the payloads: header and signature, and each payload's field framing.
ENVELOPE_OVERHEAD = 1024
PAYLOAD_OVERHEAD = 8


@dataclass(frozen=True, slots=True)
class Batch:
    """A sealed batch on its way: the envelope to send and what its receipt must match."""

    sequence: int
    kind: int
    envelope: xpb.Envelope
    root: bytes
    count: int
    report_ids: tuple[str, ...]
    last_announcement: int | None
    signed_at: datetime


class _HasPayload(Protocol):
    @property
    def payload(self) -> bytes: ...


P = TypeVar("P", bound=_HasPayload)


def fit(rows: Sequence[P], max_bytes: int) -> list[P]:
    """The leading rows whose envelope stays within ``max_bytes`` (at least one)."""
    size = ENVELOPE_OVERHEAD
    for i, r in enumerate(rows):
        size += len(r.payload) + PAYLOAD_OVERHEAD
        if i and size > max_bytes:
            return list(rows[:i])
    return list(rows)


def same_kind(rows: Sequence[PendingReport]) -> list[PendingReport]:
    """The leading run of rows of one kind: a batch carries one payload kind, and taking rows
    strictly in queue order means a case event never overtakes what was queued before it."""
    for i, r in enumerate(rows):
        if r.kind != rows[0].kind:
            return list(rows[:i])
    return list(rows)


class Batches:
    """Sealing and resending the batches of one peer."""

    def __init__(
        self,
        *,
        self_member: str,
        peer: str,
        key: SigningKey,
        manifest: Callable[[], Manifest],
        engine: Engine,
        writer: Writer,
        clock: Clock,
        tuning: ExchangeTuning,
        leases: Leases | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self._self = self_member
        self._key = key
        self._manifest = manifest
        self._engine = engine
        self._writer = writer
        self._clock = clock
        self._leases = leases
        self.max_batch = min(tuning.max_batch, tuning.max_payloads)
        self.max_bytes = tuning.max_message_bytes
        self.linger = tuning.linger_ms / 1000
        self.announcement_linger = tuning.announcement_linger_ms / 1000
        self._monotonic = monotonic
        # The first announcement waiting for this peer, and when (monotonic) we first saw it.
        self._first_waiting: tuple[int, float] | None = None
        # Set by ``seal_next``: seconds until the announcements it left to gather more fall
        # due (None: none waits).
        self.announcements_due_in: float | None = None
        # Set by ``seal_next``: whether report rows may still wait for this peer.
        self.reports_pending = True

    # -- reading ------------------------------------------------------------------------------

    def ready_in(self) -> float | None:
        """Seconds until there is something to send: 0 for now (a batch to resend, reports or
        events queued, announcements due), until announcements fall due, or None: nothing."""
        if self.unreceipted() or self.pending_reports(limit=1):
            return 0.0
        return self.announcements_due(self.high_water())

    def announcements_due(self, after: int) -> float | None:
        """Seconds until the announcements after ``after`` are due as a batch: None if none
        waits; 0 once a full batch waits or the first has waited ``announcement_linger`` —
        by its queue time, or since this sender first saw it, whichever comes first. The
        second, on the monotonic clock, bounds the wait when the first cannot: a wall clock
        stepped back, or a replica with a clock ahead of ours that queued them."""
        with self._engine.connect() as conn:
            first = outbox.first_announcement(conn, after)
            if first is None:
                self._first_waiting = None
                return None
            if self.announcement_linger <= 0:
                return 0.0
            seq, queued_at = first
            now = self._monotonic()
            if self._first_waiting is None or self._first_waiting[0] != seq:
                self._first_waiting = (seq, now)
            left = self.announcement_linger - max(
                (self._clock() - queued_at).total_seconds(), now - self._first_waiting[1]
            )
            if left <= 0 or outbox.announcements_pending_reach(conn, after, self.max_batch):
                return 0.0
        return left

    def unreceipted(self) -> list[int]:
        with self._engine.connect() as conn:
            return outbox.unreceipted(conn, self.peer)

    def high_water(self) -> int:
        with self._engine.connect() as conn:
            return outbox.announcement_high_water(conn, self.peer)

    def pending_reports(self, limit: int | None = None, after: int = 0) -> list[PendingReport]:
        with self._engine.connect() as conn:
            return outbox.pending_reports(conn, self.peer, limit or self.max_batch, after)

    def pending_announcements(
        self, after: int, limit: int | None = None
    ) -> list[PendingAnnouncement]:
        with self._engine.connect() as conn:
            return outbox.pending_announcements(conn, after, limit or self.max_batch)

    def resend(self, sequence: int) -> Batch:
        """Batch ``sequence`` exactly as sealed: same header, signature and payload bytes."""
        with self._engine.connect() as conn:
            b = outbox.load_batch(conn, self.peer, sequence)
        envelope = xpb.Envelope(header=b.header, signature=b.signature, payloads=b.payloads)
        kind = _WIRE_KIND[b.kind]
        # Sealed, signed and stored in one transaction: created_at is the signing time.
        return Batch(
            sequence,
            kind,
            envelope,
            b.root,
            b.count,
            b.report_ids,
            b.last_announcement,
            b.created_at,
        )

    # -- sealing ------------------------------------------------------------------------------

    def seal_next(
        self, announced_upto: int, *, full_only: bool = False, linger: bool = True
    ) -> Batch | None:
        """Seal and store the next batch (reports first), or None if nothing is pending —
        or only announcements not yet due (``announcements_due_in`` says when they are).

        ``linger``: a short batch of reports waits ``linger_ms`` for more first. The sender asks
        it only of an idle pipe: with batches in flight, rows have been gathering during the
        round trip (intake seals its own while fewer than ``EAGER_IN_FLIGHT`` are in flight),
        and lingering then only added to their latency — at a steady 1,000 reports/s, 5 ms on
        most batches.

        ``full_only`` (the sender asks it while ``EAGER_IN_FLIGHT`` or more are in flight):
        only a full batch — ``max_batch`` reports, or as many announcements while no report
        waits at all (a backlog of announcements never holds a report back) — so under load
        what arrives during a round trip goes as one batch, not as many small ones. The check
        counts rows in an index and reads no payload: reports that fill a batch by bytes
        before count wait for a receipt like any short batch.

        ``reports_pending`` says afterwards whether report rows may still wait: False only when
        its read found none.
        """
        self.announcements_due_in = None
        if full_only:
            waiting = self._count_reports(self.max_batch)
            self.reports_pending = waiting > 0
            if waiting == self.max_batch:
                return self._seal_pending_reports(linger=False)  # full: nothing to wait for
            if waiting or not self._announcements_reach(announced_upto, self.max_batch):
                return None
            # Two reads, not one view: a report queued between them (before the announcements
            # this read saw, perhaps) must still go first — count again, now after them.
            if self._count_reports(1):
                self.reports_pending = True
                return None
            return self._seal_announcements(announced_upto)
        return self._seal_pending_reports(linger=linger) or self._seal_announcements_due(
            announced_upto
        )

    def _seal_announcements_due(self, announced_upto: int) -> Batch | None:
        """The next batch of announcements if it is due, else None (and when it is due in
        ``announcements_due_in``)."""
        due = self.announcements_due(announced_upto)
        if due is None:
            return None
        if due > 0:
            self.announcements_due_in = due
            return None
        return self._seal_announcements(announced_upto)

    def _seal_announcements(self, announced_upto: int) -> Batch | None:
        announcements = fit(self.pending_announcements(announced_upto), self.max_bytes)
        if not announcements:
            return None
        return self._writer.execute(
            lambda tx: self.seal_announcements(tx, announcements), Priority.DELIVERY
        )

    def _seal_pending_reports(self, *, linger: bool) -> Batch | None:
        rows = self.pending_reports()
        self.reports_pending = bool(rows)
        if linger and rows and len(rows) < self.max_batch and self.linger > 0:
            # Let concurrent intake fill the batch: a few ms of latency for far fewer envelopes.
            # Only what was queued meanwhile is read again (rows are queued in id order).
            time.sleep(self.linger)
            rows += self.pending_reports(self.max_batch - len(rows), after=rows[-1].id)
        rows = fit(same_kind(rows), self.max_bytes)
        if not rows:
            return None
        return self._writer.execute(lambda tx: self.seal_reports(tx, rows), Priority.DELIVERY)

    def _count_reports(self, at_most: int) -> int:
        with self._engine.connect() as conn:
            return outbox.count_pending_reports(conn, self.peer, at_most)

    def _announcements_reach(self, after: int, n: int) -> bool:
        with self._engine.connect() as conn:
            return outbox.announcements_pending_reach(conn, after, n)

    def seal_queued(self, tx: Tx, *, full_only: bool = False) -> tuple[Batch | None, bool]:
        """Seal what is queued for the peer as this transaction sees it, rows it has just queued
        included — its oldest run of one kind, as ``seal_next`` would, ``full_only`` as there
        (the count is of rows of every kind, so a full count may still seal a shorter run, as
        there) — and whether more may wait: not when the batch took every row it read, short
        of a full batch, nor when none was pending (the caller need not read again to find
        nothing); but when rows were left (short of full, or held by another transaction).
        The sender's early seal: ``PeerSender.seal_early``."""
        if full_only:
            waiting = outbox.count_pending_reports(tx.conn, self.peer, self.max_batch)
            if waiting < self.max_batch:
                return None, waiting > 0  # counted in an index: no payload read, none sealed
        read = outbox.pending_reports(tx.conn, self.peer, self.max_batch)
        rows = fit(same_kind(read), self.max_bytes)
        batch = self.seal_reports(tx, rows, read_here=True) if rows else None
        if batch is None:
            return None, bool(read)
        return batch, batch.count < len(read) or len(read) == self.max_batch

    def seal_reports(
        self, tx: Tx, pending: Sequence[PendingReport], *, read_here: bool = False
    ) -> Batch | None:
        """Seal those of ``pending`` (read before this transaction or, ``read_here``, in it)
        still unbatched.

        Only the lease holder seals, so normally all of them; but a row another transaction
        holds is skipped, not waited for, and a row sealed meanwhile is not sealed again.
        """
        self._fence(tx)
        free = outbox.claim(tx.conn, [r.id for r in pending], read_here=read_here)
        rows = [r for r in pending if r.id in free]
        if not rows:
            return None
        kind = rows[0].kind
        seq, sealed, now = self._seal(tx, _WIRE_KIND[kind], [r.payload for r in rows])
        self._store(tx, seq, kind, sealed, len(rows), now)
        outbox.assign(tx.conn, seq, [r.id for r in rows])
        ids = tuple(r.report_id for r in rows)
        if kind == outbox.REPORT:
            tx.log(sent_entry(tx.chain, now, self.peer, seq, ids), batch=seq)
        return Batch(
            seq, _WIRE_KIND[kind], sealed.to_proto(), sealed.root, len(rows), ids, None, now
        )

    def seal_announcements(self, tx: Tx, rows: Sequence[PendingAnnouncement]) -> Batch:
        self._fence(tx)
        seq, sealed, now = self._seal(tx, KIND_ANNOUNCEMENT, [r.payload for r in rows])
        first, last = rows[0].seq, rows[-1].seq
        self._store(tx, seq, outbox.ANNOUNCEMENT, sealed, len(rows), now, (first, last))
        return Batch(
            seq, KIND_ANNOUNCEMENT, sealed.to_proto(), sealed.root, len(rows), (), last, now
        )

    def _fence(self, tx: Tx) -> None:
        if self._leases is not None:
            self._leases.fence(tx, self.peer)

    def _seal(self, tx: Tx, kind: int, payloads: list[bytes]) -> tuple[int, Sealed, datetime]:
        seq = peers.take_sequence(tx.conn, self.peer)
        now = self._clock()
        sealed = seal(
            self._key,
            sender=self._self,
            recipient=self.peer,
            sequence=seq,
            kind=kind,
            payloads=payloads,
            signed_at=now,
            manifest_epoch=self._manifest().epoch,
        )
        return seq, sealed, now

    def _store(
        self,
        tx: Tx,
        seq: int,
        kind: str,
        sealed: Sealed,
        count: int,
        now: datetime,
        announcements: tuple[int, int] | None = None,
    ) -> None:
        outbox.insert_batch(
            tx.conn,
            peer=self.peer,
            sequence=seq,
            kind=kind,
            header=sealed.header,
            signature=sealed.signature,
            root=sealed.root,
            count=count,
            created_at=now,
            announcements=announcements,
        )
