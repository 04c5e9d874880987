"""The outbox sender: one thread and one long-lived gRPC stream per destination.

Reports reach the outbox in the intake transaction (intake.py). Each peer's sender:

1. resends, byte for byte and in order, every batch it sealed that has no receipt yet (after a
   restart, a broken stream or a refusal), then
2. seals new batches — pending outbox rows first, then new hash announcements after this peer's
   cursor — closing a batch on size or after a few milliseconds of lingering, and
3. keeps up to ``window`` batches in flight on the stream, applying each signed receipt as it
   arrives (verified against the manifest; per-report outcome stored; rows leave the outbox).

A batch is sealed and persisted (sequence, header, signature, membership) BEFORE it is sent, so
a crash at any instant either leaves the rows unbatched or leaves a batch that is resent as is:
the receiver deduplicates by (sender, sequence) and by report id — exactly-once in effect.

Several replicas of a node may share one PostgreSQL database (exchange/leases.py): then only the
replica holding a peer's lease streams to it, every sealing transaction checks that lease and
claims its outbox rows with ``FOR UPDATE SKIP LOCKED`` (no report in two batches), and whoever
holds the lease next resends the batches a dead replica sealed. A receipt is applied once, by
whichever replica gets it first. On SQLite there is no lease: one process, as before.

Failures never drop anything: the stream is abandoned, the delay grows from 1 s to 5 min with
jitter (backoff.py) and resets as soon as the peer is heard from — a receipt on our stream, or
(when the peer was unreachable) a valid envelope it sent us, which proves it is back up. A late
receipt cancels the stream (deadline per receipt), so a slow peer costs only its own thread.
A receipt is applied only if it verifies: the peer's signature, our batch (sequence, root,
count) and a plausible time. Each failure is counted (metrics) and kept in the peer's row —
``last_error``, ``failing_since``, ``failures`` — for ``ihx status``.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from sqlalchemy import Engine, bindparam, case, delete, func, literal, select, update

from auth.errors import AuthError
from auth.keys import SigningKey
from auth.manifest import Manifest
from exchange.delivery.backoff import Backoff
from exchange.delivery.leases import LeaseLost, Leases
from exchange.domain import Outcome
from exchange.errors import ExchangeError
from exchange.ops.json_logging import ids_field
from exchange.ops.metrics import Metrics
from exchange.store import schema
from exchange.store.sql import insert_ignore
from exchange.store.writer import Tx, Writer
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT, Receipt, open_receipt, seal
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc

log = logging.getLogger(__name__)


OUTBOX = schema.outbox
BATCHES = schema.batches
PEERS = schema.peers
DELIVERIES = schema.deliveries
ANNOUNCEMENTS = schema.announcements


# Envelope bytes beyond the payloads: header and signature, and each payload's field framing.
_ENVELOPE_OVERHEAD = 1024
_PAYLOAD_OVERHEAD = 8


@dataclass(frozen=True, slots=True)
class SenderSettings:
    max_batch: int = 500
    # An envelope must fit in one gRPC message: batches also close on bytes, never only on count
    # (a sealed batch is resent unchanged, so one too large to send would block the peer forever).
    max_batch_bytes: int = 16 * 1024 * 1024
    linger: float = 0.005
    window: int = 4
    receipt_timeout: float = 30.0
    stream_lifetime: float = 600.0
    # Close a stream with nothing in flight after this long, before the peer's server would end
    # it as idle (exchange/admission.py): a cut from the server would count as a failure.
    stream_idle: float = 60.0
    idle_poll: float = 1.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    max_clock_skew: float = 900.0


@dataclass(frozen=True, slots=True)
class _Batch:
    sequence: int
    kind: int
    envelope: xpb.Envelope
    root: bytes
    count: int
    report_ids: tuple[str, ...]
    last_announcement: int | None
    signed_at: datetime


# Failures that mean "the peer is not there" (as opposed to "the peer refused"): only after
# these does an envelope from the peer cut the backoff short.
_UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "stream-closed"})


class PeerSender:
    """Delivers everything queued for one peer, forever, in order."""

    def __init__(
        self,
        *,
        self_member: str,
        peer: str,
        key: SigningKey,
        manifest: Callable[[], Manifest],
        engine: Engine,
        writer: Writer,
        clock: Callable[[], datetime],
        rng: random.Random,
        channel_for: Callable[[str, bool], grpc.Channel],
        settings: SenderSettings,
        metrics: Metrics | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.peer = peer
        self._leases = leases
        self._metrics = metrics
        self._self = self_member
        self._key = key
        self._manifest = manifest
        self._engine = engine
        self._writer = writer
        self._clock = clock
        self._channel_for = channel_for
        self._settings = settings
        self._backoff = Backoff(rng, initial=settings.backoff_initial, maximum=settings.backoff_max)
        self._wake = threading.Event()
        self._retry = threading.Event()
        self._unreachable = False
        self._stopping = threading.Event()
        self._call: Any = None
        self.idle = True  # no stream open to the peer (tests and ``ihx status`` read it)
        self._thread = threading.Thread(target=self._run, name=f"ihx-send-{peer}", daemon=True)
        self.delivered = 0
        self.attempts = 0
        self.last_error: str | None = None

    def start(self) -> None:
        if self._leases is not None:
            # Gained or lost, look again at once: stream, or stop sealing.
            self._leases.want(self.peer, lambda _acquired: self._wake.set())
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def heard_from(self) -> None:
        """The peer sent us a valid envelope: if it was unreachable, retry now, not later."""
        if self._unreachable:
            self._backoff.reset()
            self._retry.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._retry.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout)

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        peer_row = False
        while not self._stopping.is_set():
            try:
                if not peer_row:
                    self._writer.execute(self._ensure_peer_row)
                    peer_row = True
                if not self._ready():
                    continue
                self.attempts += 1
                if self._metrics is not None:
                    self._metrics.delivery_attempts.labels(self.peer).inc()
                self._session()
            except LeaseLost:
                continue  # another replica took the peer over: not a failure, no backoff
            except grpc.RpcError as error:
                self._failed(*_rpc_error_text(error))
            except (ExchangeError, AuthError) as error:
                self._failed(error.code, f"{error.code}: {error}")
            except Exception as error:  # our own database, a bug: the thread must live on
                log.exception("sender to %s failed", self.peer)
                self._failed("internal", f"internal: {error.__class__.__name__}: {error}")
            else:
                continue
            # Not ``_wake``: intake wakes us for every new report, which must not cut a backoff.
            self._retry.wait(self._backoff.next_delay())
            self._retry.clear()

    def _ready(self) -> bool:
        """Whether to open a stream now; if not, wait until woken (or a poll interval).

        Not while another replica holds this peer's lease, and not to a peer we have nothing
        for: intake wakes us when there is.
        """
        standby = self._leases is not None and self._leases.generation(self.peer) is None
        if not standby and self._has_work():
            return True
        self._wake.wait(self._settings.idle_poll)
        self._wake.clear()
        return False

    def _drop_channel(self) -> None:
        """Replace the channel to an unreachable peer with a new, idle one.

        A failed channel keeps dialling the peer on its own reconnect schedule (1 s growing to
        2 min) between our attempts, and fails our next call at once — even when the peer is
        back — until that schedule says to try again. A new channel dials only when we call:
        our backoff alone decides when the dead peer is tried, one connection per attempt.
        """
        member = self._manifest().find_member(self.peer)
        if member is not None:
            self._channel_for(member.endpoint, True)

    def _failed(self, code: str, reason: str) -> None:
        if self._stopping.is_set():
            return
        self.last_error = reason
        self._unreachable = code in _UNREACHABLE
        if self._unreachable:
            self._drop_channel()
        log.warning("delivery to %s interrupted: %s", self.peer, reason)
        if self._metrics is not None:
            self._metrics.delivery_failures.labels(self.peer, code).inc()

        def record(tx: Tx) -> None:
            now = self._clock()
            tx.conn.execute(
                update(PEERS)
                .where(PEERS.c.member == self.peer)
                .values(
                    last_error=reason[:300],
                    failures=PEERS.c.failures + 1,
                    failing_since=func.coalesce(
                        PEERS.c.failing_since, literal(now, PEERS.c.failing_since.type)
                    ),
                )
            )

        # Not awaited, and its own failure (the database may be what failed) only logged.
        self._writer.submit(record).add_done_callback(_log_failure)

    def _session(self) -> None:
        generation = self._leases.generation(self.peer) if self._leases is not None else None
        if self._leases is not None and generation is None:
            return
        member = self._manifest().member(self.peer)
        channel = self._channel_for(member.endpoint, False)
        stub = xgrpc.ExchangeStub(channel)
        outgoing: queue.SimpleQueue[xpb.Envelope | None] = queue.SimpleQueue()

        def requests() -> Iterator[xpb.Envelope]:
            while (item := outgoing.get()) is not None:
                yield item

        started = idle_since = time.monotonic()
        call = stub.Stream(requests(), timeout=self._settings.stream_lifetime + 60)
        self._call = call
        self.idle = False
        inflight: collections.deque[_Batch] = collections.deque()
        resend = collections.deque(self._unreceipted())
        announced_upto = self._announcement_high_water()
        try:
            while not self._stopping.is_set():
                if self._leases is not None and self._leases.generation(self.peer) != generation:
                    return  # lease lost or lapsed: the next holder resends what is unreceipted
                while len(inflight) < self._settings.window:
                    batch = (
                        self._resend(resend.popleft())
                        if resend
                        else self._seal_next(announced_upto)
                    )
                    if batch is None:
                        break
                    if batch.last_announcement is not None:
                        announced_upto = batch.last_announcement
                    outgoing.put(batch.envelope)
                    inflight.append(batch)
                    idle_since = time.monotonic()
                if not inflight:
                    now = time.monotonic()
                    if now - started > self._settings.stream_lifetime:
                        return  # reopen: every RPC has a deadline
                    if now - idle_since > self._settings.stream_idle:
                        return  # reopened when there is work
                    self._wake.wait(self._settings.idle_poll)
                    self._wake.clear()
                    continue
                receipt = self._await_receipt(call)
                self._apply(inflight.popleft(), receipt)
                idle_since = time.monotonic()
                self._backoff.reset()
                self._unreachable = False
        finally:
            outgoing.put(None)
            call.cancel()  # type: ignore[no-untyped-call]
            self._call = None
            self.idle = True

    def _await_receipt(self, call: Any) -> xpb.SignedReceipt:
        timer = threading.Timer(self._settings.receipt_timeout, call.cancel)
        timer.start()
        try:
            receipt: xpb.SignedReceipt = next(call)
            return receipt
        except StopIteration:
            raise ExchangeError("peer closed the stream", code="stream-closed") from None
        finally:
            timer.cancel()

    # -- sealing and resending ----------------------------------------------------------------

    def _ensure_peer_row(self, tx: Tx) -> None:
        insert_ignore(
            tx.conn,
            PEERS,
            [{"member": self.peer, "next_sequence": 1, "announce_cursor": 0}],
        )

    def _has_work(self) -> bool:
        if self._unreceipted() or self._pending_reports(limit=1):
            return True
        return bool(self._pending_announcements(self._announcement_high_water(), limit=1))

    def _unreceipted(self) -> list[int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(BATCHES.c.sequence)
                .where(BATCHES.c.destination == self.peer, BATCHES.c.receipted_at.is_(None))
                .order_by(BATCHES.c.sequence)
            )
            return [r.sequence for r in rows]

    def _announcement_high_water(self) -> int:
        with self._engine.connect() as conn:
            cursor = conn.execute(
                select(PEERS.c.announce_cursor).where(PEERS.c.member == self.peer)
            ).scalar_one_or_none()
            sealed = conn.execute(
                select(BATCHES.c.last_announcement)
                .where(BATCHES.c.destination == self.peer, BATCHES.c.kind == "announcement")
                .order_by(BATCHES.c.sequence.desc())
                .limit(1)
            ).scalar_one_or_none()
        return max(cursor or 0, sealed or 0)

    def _resend(self, sequence: int) -> _Batch:
        with self._engine.connect() as conn:
            b = conn.execute(
                select(BATCHES).where(
                    BATCHES.c.destination == self.peer, BATCHES.c.sequence == sequence
                )
            ).one()
            if b.kind == "report":
                rows = conn.execute(
                    select(OUTBOX.c.report_id, OUTBOX.c.payload)
                    .where(OUTBOX.c.destination == self.peer, OUTBOX.c.batch_sequence == sequence)
                    .order_by(OUTBOX.c.batch_position)
                ).all()
                payloads = [r.payload for r in rows]
                ids = tuple(r.report_id for r in rows)
                kind = KIND_REPORT
            else:
                rows = conn.execute(
                    select(ANNOUNCEMENTS.c.payload)
                    .where(
                        ANNOUNCEMENTS.c.seq >= b.first_announcement,
                        ANNOUNCEMENTS.c.seq <= b.last_announcement,
                    )
                    .order_by(ANNOUNCEMENTS.c.seq)
                ).all()
                payloads = [r.payload for r in rows]
                ids = ()
                kind = KIND_ANNOUNCEMENT
        envelope = xpb.Envelope(header=b.header, signature=b.signature, payloads=payloads)
        signed_at = b.created_at  # sealed, signed and stored in one transaction
        return _Batch(
            sequence, kind, envelope, b.root, b.payload_count, ids, b.last_announcement, signed_at
        )

    def _seal_next(self, announced_upto: int) -> _Batch | None:
        rows = self._pending_reports()
        if rows and len(rows) < self._settings.max_batch and self._settings.linger > 0:
            # Let concurrent intake fill the batch: a few ms of latency for far fewer envelopes.
            time.sleep(self._settings.linger)
            rows = self._pending_reports()
        rows = self._fit(rows)
        if rows:
            batch = self._writer.execute(lambda tx: self._seal_reports(tx, rows))
            if batch is not None:
                return batch
        announcements = self._fit(self._pending_announcements(announced_upto))
        if announcements:
            return self._writer.execute(lambda tx: self._seal_announcements(tx, announcements))
        return None

    def _fit(self, rows: list[Any]) -> list[Any]:
        """The leading rows whose envelope stays within ``max_batch_bytes`` (at least one)."""
        size = _ENVELOPE_OVERHEAD
        for i, r in enumerate(rows):
            size += len(r.payload) + _PAYLOAD_OVERHEAD
            if i and size > self._settings.max_batch_bytes:
                return rows[:i]
        return rows

    def _pending_reports(self, limit: int | None = None) -> list[Any]:
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    select(OUTBOX.c.id, OUTBOX.c.report_id, OUTBOX.c.payload)
                    .where(OUTBOX.c.destination == self.peer, OUTBOX.c.batch_sequence.is_(None))
                    .order_by(OUTBOX.c.id)
                    .limit(limit or self._settings.max_batch)
                )
            )

    def _pending_announcements(self, after: int, limit: int | None = None) -> list[Any]:
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    select(ANNOUNCEMENTS.c.seq, ANNOUNCEMENTS.c.payload)
                    .where(ANNOUNCEMENTS.c.seq > after)
                    .order_by(ANNOUNCEMENTS.c.seq)
                    .limit(limit or self._settings.max_batch)
                )
            )

    def _next_sequence(self, tx: Tx) -> int:
        seq = tx.conn.execute(
            select(PEERS.c.next_sequence).where(PEERS.c.member == self.peer).with_for_update()
        ).scalar_one()
        tx.conn.execute(
            update(PEERS).where(PEERS.c.member == self.peer).values(next_sequence=seq + 1)
        )
        return int(seq)

    def _seal(self, tx: Tx, kind: int, payloads: list[bytes]) -> tuple[int, Any, datetime]:
        seq = self._next_sequence(tx)
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

    def _claim(self, tx: Tx, rows: list[Any]) -> list[Any]:
        """Of ``rows`` (read before the transaction), those still unbatched, locked until COMMIT.

        Only the lease holder seals, so normally all of them; but a row another transaction
        holds is skipped, not waited for, and a row sealed meanwhile is not sealed again.
        (SQLite ignores FOR UPDATE: its writer lock already makes this transaction the only one.)
        """
        free = set(
            tx.conn.execute(
                select(OUTBOX.c.id)
                .where(OUTBOX.c.id.in_([r.id for r in rows]), OUTBOX.c.batch_sequence.is_(None))
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        return [r for r in rows if r.id in free]

    def _seal_reports(self, tx: Tx, pending: list[Any]) -> _Batch | None:
        if self._leases is not None:
            self._leases.fence(tx, self.peer)
        rows = self._claim(tx, pending)
        if not rows:
            return None
        seq, sealed, now = self._seal(tx, KIND_REPORT, [r.payload for r in rows])
        tx.conn.execute(BATCHES.insert(), self._batch_row(seq, "report", sealed, len(rows), now))
        tx.conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == bindparam("row_id"))
            .values(batch_sequence=seq, batch_position=bindparam("pos")),
            [{"row_id": r.id, "pos": i} for i, r in enumerate(rows)],
        )
        for r in rows:
            tx.log(
                tx.chain.append(
                    now, "sent", report_id=r.report_id, member=self.peer, detail={"sequence": seq}
                )
            )
        ids = tuple(r.report_id for r in rows)
        return _Batch(seq, KIND_REPORT, sealed.to_proto(), sealed.root, len(rows), ids, None, now)

    def _seal_announcements(self, tx: Tx, rows: list[Any]) -> _Batch:
        if self._leases is not None:
            self._leases.fence(tx, self.peer)
        seq, sealed, now = self._seal(tx, KIND_ANNOUNCEMENT, [r.payload for r in rows])
        first, last = rows[0].seq, rows[-1].seq
        row = self._batch_row(seq, "announcement", sealed, len(rows), now)
        row.update(first_announcement=first, last_announcement=last)
        tx.conn.execute(BATCHES.insert(), row)
        return _Batch(
            seq, KIND_ANNOUNCEMENT, sealed.to_proto(), sealed.root, len(rows), (), last, now
        )

    def _batch_row(
        self, seq: int, kind: str, sealed: Any, count: int, now: datetime
    ) -> dict[str, Any]:
        return {
            "destination": self.peer,
            "sequence": seq,
            "kind": kind,
            "header": sealed.header,
            "signature": sealed.signature,
            "payload_count": count,
            "root": sealed.root,
            "created_at": now,
        }

    # -- receipts ----------------------------------------------------------------------------

    def _apply(self, batch: _Batch, signed: xpb.SignedReceipt) -> None:
        receipt = open_receipt(
            signed,
            manifest=self._manifest(),
            issuer=self.peer,
            sender=self._self,
            sequence=batch.sequence,
            root=batch.root,
            count=batch.count,
            sent_at=batch.signed_at,
            now=self._clock(),
            max_skew=timedelta(seconds=self._settings.max_clock_skew),
        )

        def job(tx: Tx) -> bool:
            now = self._clock()
            marked = tx.conn.execute(
                update(BATCHES)
                .where(
                    BATCHES.c.destination == self.peer,
                    BATCHES.c.sequence == batch.sequence,
                    BATCHES.c.receipted_at.is_(None),
                )
                .values(
                    receipt_body=receipt.body,
                    receipt_signature=receipt.signature,
                    receipted_at=receipt.received_at,
                )
            )
            if marked.rowcount == 0:
                # Already applied: by the replica that held the lease before or after us, both
                # of which had this batch in flight. Once is enough (deliveries, log, metrics).
                return False
            peer_update: dict[str, Any] = {
                "last_heard_at": now,
                "last_error": None,
                "failing_since": None,
                "failures": 0,
            }
            if batch.kind == KIND_REPORT:
                if self._metrics is not None:
                    self._observe(tx, batch, receipt)
                tx.conn.execute(
                    delete(OUTBOX).where(
                        OUTBOX.c.destination == self.peer,
                        OUTBOX.c.batch_sequence == batch.sequence,
                    )
                )
                rows = []
                for report_id, result in zip(batch.report_ids, receipt.results, strict=True):
                    rows.append(
                        {
                            "report_id": report_id,
                            "destination": self.peer,
                            "sequence": batch.sequence,
                            "outcome": result.outcome.value,
                            "remote_case_id": result.case_id or None,
                            "reason": result.reason or None,
                            "receipted_at": receipt.received_at,
                        }
                    )
                    kind = "rejected" if result.outcome is Outcome.REJECTED else "receipted"
                    tx.log(
                        tx.chain.append(
                            now,
                            kind,
                            report_id=report_id,
                            member=self.peer,
                            detail={
                                "sequence": batch.sequence,
                                "outcome": result.outcome.value,
                                "case": result.case_id,
                                "reason": result.reason,
                                "receipt_time": receipt.received_at.isoformat(),
                            },
                        )
                    )
                insert_ignore(tx.conn, DELIVERIES, rows)
            elif batch.last_announcement is not None:
                # Forward only: two replicas' receipts may be applied out of order.
                last = batch.last_announcement
                peer_update["announce_cursor"] = case(
                    (PEERS.c.announce_cursor < last, last), else_=PEERS.c.announce_cursor
                )
            tx.conn.execute(update(PEERS).where(PEERS.c.member == self.peer).values(**peer_update))
            return True

        # Not awaited: the next batch is sealed while the writer stores this receipt (often in
        # the same group commit). If storing fails the batch stays unreceipted in the database,
        # so it is resent and the receiver answers with the same receipt — nothing is lost.
        self._writer.submit(job).add_done_callback(lambda done: self._applied(batch, done))

    def _applied(self, batch: _Batch, done: Future[bool]) -> None:
        error = done.exception()
        if error is not None:
            self.last_error = f"receipt not stored, batch will be resent: {error}"
            log.warning("receipt for %s/%d not stored: %s", self.peer, batch.sequence, error)
            return
        if done.result():
            self.delivered += batch.count
            if batch.report_ids:
                log.info(
                    "delivered",
                    extra={
                        "peer": self.peer,
                        "sequence": batch.sequence,
                        "count": batch.count,
                        "report_ids": ids_field(batch.report_ids),
                    },
                )

    def _observe(self, tx: Tx, batch: _Batch, receipt: Receipt) -> None:
        metrics = self._metrics
        assert metrics is not None
        created = tx.conn.execute(
            select(OUTBOX.c.created_at).where(
                OUTBOX.c.destination == self.peer, OUTBOX.c.batch_sequence == batch.sequence
            )
        ).scalars()
        latencies = [(receipt.received_at - c).total_seconds() for c in created]
        outcomes = [r.outcome.value for r in receipt.results]

        def count() -> None:
            metrics.reports_out.labels(self.peer).inc(batch.count)
            for outcome in outcomes:
                metrics.receipts.labels(outcome).inc()
            for seconds in latencies:
                metrics.delivery_latency.observe(max(0.0, seconds))

        tx.after_commit.append(count)


def _rpc_error_text(error: grpc.RpcError) -> tuple[str, str]:
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    name = code().name if callable(code) else "UNKNOWN"
    return name, f"{name}: {details() if callable(details) else error}"


def _log_failure(done: Future[None]) -> None:
    error = done.exception()
    if error is not None:
        log.warning("could not record a delivery failure: %s", error)
