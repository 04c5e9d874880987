"""The per-peer loop: one thread and one long-lived gRPC stream per destination.

Each peer's sender (Synapse's PerDestinationQueue; the registry is fanout.py):

1. resends, byte for byte and in order, every batch it sealed that has no receipt yet (after a
   restart, a broken stream or a refusal), then
2. seals new batches (batches.py) — pending outbox rows first, then new hash announcements
   after this peer's cursor — and
3. keeps up to ``window`` batches in flight on the stream (counted as full batches), applying
   each signed receipt as it arrives (receipts.py: verified against the manifest, applied
   once). Receipts are read on a thread of their own, so the next batch is sealed while
   others are in flight: one short of full at once while fewer than ``EAGER_IN_FLIGHT`` are,
   past that only a full one — what arrives during a round trip goes together (Nagle's rule).
   While the window has room, intake's own transaction seals what it queues, by Nagle's rule
   too (``seal_early``), and hands the batches over when it commits: one commit, not two,
   before a report leaves, and under load the pipe is filled at every intake group, not one
   batch per writer job of the sender's own. Every batch goes in sequence order, whoever
   sealed it.

It reads the outbox only when there may be something to find (``_looks``): a ``wake`` (rows
queued and not sealed — the early seal wakes it only if it left some), a read that left rows,
announcements falling due, or ``LOOK_EVERY`` since the last read. A receipt or a batch handed
over wakes it to send and apply, not to read.

Several replicas of a node may share one PostgreSQL database (leases.py): then only the replica
holding a peer's lease streams to it, and whoever holds the lease next resends the batches a
dead replica sealed. On SQLite there is no lease: one process, as before.

Failures never drop anything: the stream is abandoned, the delay grows from 1 s to 5 min with
jitter (backoff.py) and resets as soon as the peer is heard from — a receipt on our stream, or
(when the peer was unreachable) a valid envelope it sent us, which proves it is back up. A
peer's signed hello (it has just started: hellos.py) retries at once whatever the failure was:
unreachable, the backoff resets; refused, the retry keeps the refusal's backoff, since a restart
(an upgrade, a new manifest, a fixed clock) may have cured the refusal, and one hello per restart
— rate-limited at the desk — costs one attempt, not a retry storm. A late
receipt cancels the stream (deadline per receipt), so a slow peer costs only its own threads
(the sender's, and the reader of its stream's receipts).
Each failure is counted (metrics) and kept in the peer's row — ``last_error``,
``failing_since``, ``failures`` (store/peers.py) — for ``ihx status``.
"""

from __future__ import annotations

import bisect
import collections
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

import grpc
from sqlalchemy import Engine

from auth.errors import AuthError
from auth.keys import SigningKey
from auth.manifest import Manifest
from common.clock import Clock
from exchange.delivery.backoff import Backoff, Wait, event_wait
from exchange.delivery.batches import Batch, Batches
from exchange.delivery.leases import LeaseLost, Leases
from exchange.delivery.receipts import Receipts
from exchange.errors import ExchangeError
from exchange.ops.json_logging import ids_field
from exchange.ops.metrics import Metrics
from exchange.settings import ExchangeTuning
from exchange.store import peers
from exchange.store.writer import Tx, Writer
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc

log = logging.getLogger(__name__)

# How long an idle sender waits for a wake before it looks at the database again anyway.
IDLE_POLL = 1.0

# A busy sender (woken by receipts, never idle long enough to poll) reads the outbox's reports
# at least this often even if nobody said rows were queued: what another replica queued for a
# peer whose lease this one holds wakes only that replica's sender.
LOOK_EVERY = 0.1

# Envelopes a receiver verifies ahead of their receipts (exchange_service.py): more in flight
# would only wait in the network.
RECEIVER_WINDOW = 16

# Batches in flight below which one short of full is sealed at once. Past it, rows queued during
# the round trip wait for a receipt (or until they fill a batch) and go together: at a high
# rate, sealing whatever had arrived made many small batches, each paying its seal, signature,
# verification and receipt on both nodes. Three keep the pipe busy at a steady rate and leave
# the default window's fourth place to a full batch (with a window of three or less, intake's
# early seal fills the window with short batches and the sender's own rule, which counts
# payloads, still holds back a fourth short one). Two were too few: at a steady 1,000
# reports/s a batch's round trip (10-20 ms, the peer's writer group included) often held two
# in flight, and what arrived meanwhile waited for a receipt — intake → receipt p50 27 ms, p99
# 77 ms, against 21 and 67 with three and no linger once batches are in flight (medians of six
# runs of bench/exchange_throughput.py --quick each; the sustained rate did not move).
EAGER_IN_FLIGHT = 3

# Batches one writer group's early seal may seal at most: past that the sender seals the rest.
# Every job of the group waits for its end steps before its COMMIT, so a backlog must not make
# one intake group seal a whole window of batches.
EARLY_SEALS_PER_GROUP = 2

# Batches that may be in flight beyond the window: ``_in_flight`` may miss, once each, a batch
# the sender has sealed but not yet sent and one moving from the hand-over queue to the stream.
IN_FLIGHT_SLACK = 2

# Failures that mean "the peer is not there" (as opposed to "the peer refused"): only after
# these does an envelope from the peer cut the backoff short.
_UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "stream-closed"})

ChannelFor = Callable[[str, bool], grpc.Channel]


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
        clock: Clock,
        rng: random.Random,
        channel_for: ChannelFor,
        tuning: ExchangeTuning,
        metrics: Metrics | None = None,
        leases: Leases | None = None,
        wait: Wait = event_wait,
    ) -> None:
        self.peer = peer
        self._wait = wait
        self._leases = leases
        self._metrics = metrics
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self._channel_for = channel_for
        self._tuning = tuning
        self.batches = Batches(
            self_member=self_member,
            peer=peer,
            key=key,
            manifest=manifest,
            engine=engine,
            writer=writer,
            clock=clock,
            tuning=tuning,
            leases=leases,
        )
        self._receipts = Receipts(
            self_member=self_member,
            peer=peer,
            manifest=manifest,
            writer=writer,
            clock=clock,
            max_skew=timedelta(seconds=tuning.max_clock_skew_s),
            metrics=metrics,
        )
        self._backoff = Backoff(rng, initial=tuning.backoff_initial_s, maximum=tuning.backoff_max_s)
        self._wake, self._retry, self._looks = threading.Event(), threading.Event(), _Looks()
        self._unreachable = False
        self._failing = False  # the last attempt failed: waiting out a backoff, or retrying
        self._stale = threading.Event()  # the peer restarted: an open stream to it is dead
        self._stopping = threading.Event()
        self._call: Any = None
        self._open: _Stream | None = None  # the stream being filled, while there is one
        self._sealed_early: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self.idle = True  # no stream open to the peer (tests and ``ihx status`` read it)
        self._thread = threading.Thread(target=self._run, name=f"ihx-send-{peer}", daemon=True)
        self.delivered = self.attempts = 0
        self._storing = _Storing()
        self.last_error: str | None = None

    def start(self) -> None:
        if self._leases is not None:
            # Gained or lost, look again at once: stream, or stop sealing.
            self._leases.want(self.peer, lambda _acquired: self.wake())
        self._thread.start()

    def wake(self) -> None:
        """Rows were queued for the peer and not sealed: look at the outbox now."""
        self._looks.want()
        self._wake.set()

    def seal_early(self, tx: Tx) -> None:
        """Reports for the peer were queued in ``tx``: while the window has room, seal them in
        that same transaction and send the batches when it commits.

        Without it a report waited for the commit that queued it, a wake, a linger and a
        second commit (the seal's) before it left: at a steady 1,000 reports/s that was half
        of its way to the peer's receipt. Under load it was worse: the sender sealed one batch
        per writer job, each waiting for the intake group running then (a few hundred ms at
        full intake), so one batch was in flight where the window allows four, and the peer
        idled while intake ran. Sealing is an end step of the writer's group
        (``Tx.once_at_end``), so the batches take what every job of the group queued: while
        fewer than ``window`` batches are in flight (counted as batches: stricter than the
        sender's own rule, which counts full batches' worth of payloads), at most
        ``EARLY_SEALS_PER_GROUP`` of them, and — as for the sender's own seals — one short of
        full only while fewer than ``EAGER_IN_FLIGHT`` are in flight (Nagle's rule), past that
        full ones only. Not with no stream open or batches to resend: then the sender seals,
        in order, as before.

        It wakes the sender after COMMIT too, unless the end step left no row of the peer
        unbatched: then the batches handed over are all there is, and a wake would only make
        the sender read the outbox to find nothing. The caller does not wake it itself.
        """
        key = ("seal", self.peer)
        step = tx.at_end.get(key)
        if not isinstance(step, _EarlySeal):
            if self._room_early(0) is None:
                tx.after_commit.append(self.wake)
                return
            step = _EarlySeal(self, tx)
            tx.once_at_end(key, step)
        # Per job: if this job is undone, its hook goes with it; if the end step fails or is
        # undone, ``covered`` stays False and the sender looks.
        tx.after_commit.append(step.wake_unless_covered)

    def _room_early(self, sealed: int) -> bool | None:
        """Whether intake's transaction may seal another batch, ``sealed`` sealed in it so far:
        None for no, else whether it must be full (Nagle's rule)."""
        s = self._open
        if s is None or s.resend or time.monotonic() - s.started > self._tuning.stream_lifetime_s:
            return None
        in_flight = self._in_flight(s) + sealed
        if in_flight >= self._tuning.window or sealed >= EARLY_SEALS_PER_GROUP:
            return None
        return in_flight >= EAGER_IN_FLIGHT

    def _in_flight(self, s: _Stream) -> int:
        """Batches on the stream, counting those sealed early and not yet sent.

        Read by the writer's thread too; each term is read atomically, the sum is not. Read in
        the order batches move (hand-over queue, then ``early``, then the stream), a batch that
        moves meanwhile is counted twice at worst; missed are only one between the queue and
        ``early`` and one the sender has sealed but not yet sent (``IN_FLIGHT_SLACK``) — a batch
        more than the rule wants, never one lost or sent twice."""
        return self._sealed_early.qsize() + len(s.early) + len(s.inflight)

    def _seal_queued(self, tx: Tx) -> bool:
        """Seal what ``tx`` queued for the peer while there is room; whether no row of the
        peer is left unbatched (as ``tx`` sees it)."""
        sealed: list[Batch] = []
        more = True
        # Asked again each time: the stream may have moved on since the job asked.
        while more and (full_only := self._room_early(len(sealed))) is not None:
            try:
                batch, more = self.batches.seal_queued(tx, full_only=full_only)
            except LeaseLost:
                break  # another replica holds the peer now: it seals
            if batch is None:
                break
            sealed.append(batch)
        if sealed:
            tx.after_commit.append(lambda: self._hand_over(sealed))
        return not more

    def _hand_over(self, batches: list[Batch]) -> None:
        for batch in batches:
            self._sealed_early.put(batch)
        self._wake.set()

    def heard_from(self) -> None:
        """The peer sent us a valid envelope: if it was unreachable, retry now, not later."""
        if self._unreachable:
            self._backoff.reset()
            self._retry.set()

    def greeted(self) -> None:
        """The peer said hello (it has just started): if we are failing, retry now.

        Unreachable before, the backoff resets as for an envelope. Refused before, the retry
        keeps the refusal's backoff: if the peer still refuses, the next wait is as long as it
        would have been. Not failing, an idle stream we hold to it is from before its restart
        and ended there: it is closed now, so the next batch opens a new one instead of failing
        on the dead one (a failure and a backoff of up to a second).
        """
        if self._failing:
            if self._unreachable:
                self._backoff.reset()
            self._retry.set()
        else:
            self._stale.set()
            self._wake.set()

    @property
    def backoff(self) -> Backoff:
        """The retry delays (tests read ``failures``: how far the backoff has grown)."""
        return self._backoff

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._retry.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread.ident is not None:  # one created while the node stops never started
            self._thread.join(timeout)

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        peer_row = False
        while not self._stopping.is_set():
            try:
                if not peer_row:
                    self._writer.execute(lambda tx: peers.ensure(tx.conn, self.peer))
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
                log.exception("sender to %s failed", self.peer, extra={"peer": self.peer})
                self._failed("internal", f"internal: {error.__class__.__name__}: {error}")
            else:
                continue
            # Not ``_wake``: intake wakes us for every new report, which must not cut a backoff.
            self._wait(self._retry, self._backoff.next_delay())
            self._retry.clear()

    def _ready(self) -> bool:
        """Whether to open a stream now; if not, wait until woken (or a poll interval).

        Not while another replica holds this peer's lease, and not to a peer we have nothing
        for: intake wakes us when there is.
        """
        standby = self._leases is not None and self._leases.generation(self.peer) is None
        ready_in = None if standby else self.batches.ready_in()
        if ready_in == 0:
            return True
        # Announcements gathering more: no stream opened for them until they fall due.
        self._wake.wait(_at_most_poll(ready_in))
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
        self._failing = True
        self._unreachable = code in _UNREACHABLE
        if self._unreachable:
            self._drop_channel()
        log.warning("delivery to %s interrupted: %s", self.peer, reason, extra={"peer": self.peer})
        if self._metrics is not None:
            self._metrics.delivery_failures.labels(self.peer, code).inc()

        def record(tx: Tx) -> None:
            peers.record_failure(tx.conn, self.peer, reason, self._clock())

        # Not awaited, and its own failure (the database may be what failed) only logged.
        self._writer.submit(record).add_done_callback(_log_failure)

    # -- the stream ---------------------------------------------------------------------------

    def _session(self) -> None:
        generation = self._leases.generation(self.peer) if self._leases is not None else None
        if self._leases is not None and generation is None:
            return
        self._storing.wait(self._tuning.receipt_timeout_s)
        member = self._manifest().member(self.peer)
        stub = xgrpc.ExchangeStub(self._channel_for(member.endpoint, False))
        outgoing: queue.SimpleQueue[xpb.Envelope | None] = queue.SimpleQueue()

        def requests() -> Iterator[xpb.Envelope]:
            while (item := outgoing.get()) is not None:
                yield item

        self._stale.clear()  # a hello from before this stream says nothing about it
        call = stub.Stream(requests(), timeout=self._tuning.stream_lifetime_s + 60)
        self._call = call
        self.idle = False
        try:
            self._converse(call, outgoing, generation)
        finally:
            outgoing.put(None)
            call.cancel()  # type: ignore[no-untyped-call]
            self._call = None
            self.idle = True

    def _converse(
        self,
        call: Any,
        outgoing: queue.SimpleQueue[xpb.Envelope | None],
        generation: datetime | None,
    ) -> None:
        """Send batches, up to ``window`` in flight, and apply their receipts in order.

        Receipts are read on their own thread (``_read_receipts``) and applied here as they
        come, so a batch is sealed while others are in flight — not only once the oldest
        batch's receipt is back: at a steady 1,000 reports/s, waiting on each round trip made
        every report wait a whole one before it was even sealed. A batch short of full goes at
        once only while fewer than ``EAGER_IN_FLIGHT`` are in flight (see there).
        """
        # Batches handed over to a stream before this one are committed: what of them is not
        # receipted yet, the stream resends from what it reads next.
        _drain(self._sealed_early)
        self._looks.want()  # a new stream reads what waits, whatever happened before
        s = _Stream(call, outgoing, self.batches.unreceipted(), self.batches.high_water())
        self._open = s
        threading.Thread(
            target=self._read_receipts,
            args=(call, s.receipts, max(self._tuning.window, RECEIVER_WINDOW) + IN_FLIGHT_SLACK),
            name=f"ihx-receipts-{self.peer}",
            daemon=True,
        ).start()
        try:
            self._stream_loop(s, generation)
        finally:
            self._open = None

    def _stream_loop(self, s: _Stream, generation: datetime | None) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # whatever happens from here on (work, a receipt) sets it again
            if self._leases is not None and self._leases.generation(self.peer) != generation:
                return  # lease lost or lapsed: the next holder resends what is unreceipted
            if self._stale.is_set() and not s.inflight:
                return  # the peer restarted (greeted): this stream ended there, open a new one
            # Idle: nothing was in flight, so no row has waited for a receipt (receipts that
            # empty the pipe now leave rows that did).
            idle = not s.inflight
            applied = self._take_receipts(s)  # first: a stream that ended takes no new batch
            if s.ended:
                return  # the next batch opens a new stream
            sent = self._fill(s, idle=idle)
            now = time.monotonic()
            if sent or applied:
                s.idle_since = now
                s.progress = now if applied else s.progress
            # Then wait: new rows (intake wakes us) or a receipt (the reader does) end the wait
            # at once; _fill has just sealed what it may, and asking again would only repeat
            # its queries.
            if s.inflight:
                self._await_receipts(s, now)
            elif now - s.started > self._tuning.stream_lifetime_s:
                return  # reopen: every RPC has a deadline
            elif now - s.idle_since > self._tuning.stream_idle_s:
                return  # reopened when there is work
            else:
                # Awake at the idle deadline at the latest, not up to IDLE_POLL past it: an
                # honest sender closes its idle stream itself, before the peer's own idle cut
                # (its stream_idle_timeout_s) would end it as a failure.
                # Announcements left to gather more are sealed when they fall due.
                deadline = s.idle_since + self._tuning.stream_idle_s - now
                due = _at_most_poll(self.batches.announcements_due_in)
                self._wait_for_wake(max(0.01, min(due, deadline)))

    def _fill(self, s: _Stream, *, idle: bool) -> int:
        """Send what was sealed early, then resend and seal batches while the window has
        room; how many went. ``idle``: nothing was in flight before this round's receipts —
        only then may a short batch linger for more rows (``Batches.seal_next``).

        None past the stream's lifetime: what is in flight drains and the loop opens a new
        stream — under constant load the window never empties, and the call's deadline would
        otherwise end it as a failure (a backoff, and every batch in flight resent).
        """
        if time.monotonic() - s.started > self._tuning.stream_lifetime_s:
            return 0
        sent = 0 if s.resend else self._send_early(s)
        look = self._looks.now()
        left = look  # whether rows may still wait after this round
        while self._room(s.inflight):
            if s.resend:
                batch: Batch | None = self.batches.resend(s.resend.popleft())
            elif not look:
                break
            else:
                in_flight = self._in_flight(s)
                batch = self.batches.seal_next(
                    s.announced_upto,
                    full_only=in_flight >= EAGER_IN_FLIGHT,
                    linger=idle and in_flight == 0,
                )
                left = batch is not None or self.batches.reports_pending
                self._looks.announcements_due_in(self.batches.announcements_due_in)
                sent += self._send_early(s, before=batch.sequence if batch else None)
            if batch is None:
                break
            if batch.last_announcement is not None:
                s.announced_upto = batch.last_announcement
            self._send(s, batch)
            sent += 1
        if left:  # no read of this round found the outbox empty: the next round reads it
            self._looks.want()
        # Handed over meanwhile, after the last batch sent: nothing before them waits.
        return sent if s.resend else sent + self._send_early(s)

    def _send_early(self, s: _Stream, before: int | None = None) -> int:
        """Send the batches sealed early (before sequence ``before``, if given); how many.

        A peer's batches go in sequence order — a case event must never overtake what was
        queued before it — and sealing early does not change that: a batch is handed over
        (after its COMMIT) before any batch sealed after it is returned to this thread, so
        those sealed before one that ``seal_next`` returns are all here by then.
        """
        while not self._sealed_early.empty():
            early = self._sealed_early.get()
            # Sealed before this stream read what is unreceipted: resent from there.
            if early.sequence not in s.unreceipted:
                bisect.insort(s.early, early, key=_sequence)
        sent = 0
        while s.early and (before is None or s.early[0].sequence < before):
            self._send(s, s.early.pop(0))
            sent += 1
        return sent

    @staticmethod
    def _send(s: _Stream, batch: Batch) -> None:
        if not s.inflight:
            s.progress = time.monotonic()  # the receipt clock starts with the oldest batch
        s.outgoing.put(batch.envelope)
        s.inflight.append(batch)

    def _await_receipts(self, s: _Stream, now: float) -> None:
        """Wait for a receipt or new work; past the receipt deadline, end the stream."""
        late = s.progress + self._tuning.receipt_timeout_s - now
        if late > 0:
            self._wait_for_wake(min(late, _at_most_poll(self.batches.announcements_due_in)))
            return
        s.call.cancel()  # the reader's last word is now CANCELLED: raised below
        self._take_receipts(s, block=True)

    def _wait_for_wake(self, timeout: float) -> None:
        """Wait for a wake; one that does not come in ``timeout`` means look at the outbox
        anyway (the poll that bounds how late a row queued without a wake is seen)."""
        if not self._wake.wait(timeout):
            self._looks.want()

    def _read_receipts(self, call: Any, receipts: queue.SimpleQueue[Any], most: int) -> None:
        """The stream's receipts as they arrive, then what ended it (always last).

        An honest peer never has more receipts unread here than batches in flight (``most`` at
        the very most): past that it is flooding us, and the stream ends before the queue — our
        memory — grows with what it sends."""
        try:
            for receipt in call:
                if receipts.qsize() >= most:
                    call.cancel()
                    receipts.put(
                        ExchangeError(
                            f"the peer sent more than {most} receipts ahead", code="stray-receipt"
                        )
                    )
                    break
                receipts.put(receipt)
                self._wake.set()
            else:
                receipts.put(ExchangeError("peer closed the stream", code="stream-closed"))
        except Exception as error:  # an RpcError, or the channel's own failure: the loop raises
            receipts.put(error)
        self._wake.set()

    def _take_receipts(self, s: _Stream, *, block: bool = False) -> int:
        """Apply the receipts that have arrived (in order); raise what ended the stream if
        batches were still in flight (else note it: ``ended``).

        ``block`` waits for the reader's last word: after a cancel, the RpcError."""
        applied = 0
        while True:
            try:
                item = s.receipts.get(timeout=IDLE_POLL) if block else s.receipts.get_nowait()
            except queue.Empty:
                return applied
            if isinstance(item, Exception):
                if s.inflight or not s.carried or getattr(item, "code", "") == "stray-receipt":
                    raise item
                # It carried batches, and none waits on it now (the peer restarted, or ended an
                # idle stream): no failure. One that ends before carrying anything is a failure,
                # with its backoff — else a peer could have us reconnect without pause.
                s.ended = True
                return applied
            if not s.inflight:
                raise ExchangeError("the peer sent a receipt for no batch", code="stray-receipt")
            self._apply(s.inflight.popleft(), item)
            s.carried = True
            applied += 1
            self._backoff.reset()
            self._unreachable = self._failing = False

    def _room(self, inflight: collections.deque[Batch]) -> bool:
        """Whether another batch may go: ``window`` batches in flight, counted as full ones.

        While those in flight hold fewer payloads than ``window`` full batches would, more may
        go — up to the receiver's own window of envelopes verified ahead of their receipts:
        batches closed short by bytes or by a change of kind fill no pipe. (Short batches
        sealed on a trickle are bounded sooner, by ``EAGER_IN_FLIGHT``.)
        """
        if len(inflight) < self._tuning.window:
            return True
        budget = self._tuning.window * self.batches.max_batch
        return len(inflight) < RECEIVER_WINDOW and sum(b.count for b in inflight) < budget

    # -- receipts ----------------------------------------------------------------------------

    def _apply(self, batch: Batch, signed: xpb.SignedReceipt) -> None:
        # Not awaited: the next batch is sealed while the writer stores this receipt (often in
        # the same group commit).
        self._storing.add(self._receipts.apply(batch, signed)).add_done_callback(
            lambda done: self._applied(batch, done)
        )

    def _applied(self, batch: Batch, done: Future[bool]) -> None:
        self._storing.discard(done)
        error = done.exception()
        if error is not None:
            self.last_error = f"receipt not stored, batch will be resent: {error}"
            log.warning(
                "receipt for %s/%d not stored: %s",
                self.peer,
                batch.sequence,
                error,
                extra={"peer": self.peer},
            )
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


class _Storing:
    """Receipts applied but not yet stored: the writer commits them behind the stream, and a
    new stream waits for them before it reads what is unreceipted — else it resends those."""

    def __init__(self) -> None:
        self._pending: set[Future[bool]] = set()
        self._lock = threading.Lock()

    def add(self, storing: Future[bool]) -> Future[bool]:
        with self._lock:
            self._pending.add(storing)
        return storing

    def discard(self, done: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(done)

    def wait(self, timeout: float) -> None:
        with self._lock:
            pending = list(self._pending)
        futures.wait(pending, timeout=timeout)


class _Stream:
    """One stream's state: what is in flight, what to resend, and its clocks."""

    def __init__(
        self,
        call: Any,
        outgoing: queue.SimpleQueue[xpb.Envelope | None],
        unreceipted: list[int],
        announced_upto: int,
    ) -> None:
        self.call = call
        self.outgoing = outgoing
        self.receipts: queue.SimpleQueue[xpb.SignedReceipt | Exception] = queue.SimpleQueue()
        self.inflight: collections.deque[Batch] = collections.deque()
        self.resend = collections.deque(unreceipted)
        self.unreceipted = frozenset(unreceipted)
        self.early: list[Batch] = []  # sealed early, waiting for those before them to go
        self.announced_upto = announced_upto
        self.started = self.idle_since = self.progress = time.monotonic()
        self.ended = False  # the peer ended the stream with nothing in flight
        self.carried = False  # a receipt came on this stream


class _Looks:
    """Whether a sender's round reads the outbox: rows were queued since the last read (a
    wake), the last read left some, a wait timed out, a stream is new, the last read is
    ``LOOK_EVERY`` old, or announcements fell due.

    Other wakes — a receipt, a batch sealed early and handed over — read nothing: at a steady
    1,000 reports/s, each of them re-read the outbox to find what intake's own transaction had
    sealed already, 150 read transactions a second for nothing.
    """

    def __init__(self) -> None:
        self._wanted = True  # rows may wait that no read has seen
        # Taking the flag is a read and a write: without the lock, a wake between the two
        # (another thread's) would be cleared unseen.
        self._lock = threading.Lock()
        self._at = 0.0  # monotonic: when a round last read the outbox
        self._announcements_at: float | None = None  # monotonic: those left to gather are due

    def want(self) -> None:
        """Rows may wait: the next round reads."""
        with self._lock:
            self._wanted = True

    def now(self) -> bool:
        """Whether this round reads; if so, it counts as the last read from now."""
        # Taken before reading: a wake during the read sets it again for the next round.
        with self._lock:
            wanted, self._wanted = self._wanted, False
        now = time.monotonic()
        due = self._announcements_at
        if wanted or now - self._at >= LOOK_EVERY or (due is not None and now >= due):
            self._at = now
            return True
        return False

    def announcements_due_in(self, seconds: float | None) -> None:
        """The read left announcements to gather for ``seconds`` (None: none waits)."""
        self._announcements_at = None if seconds is None else time.monotonic() + seconds


class _EarlySeal:
    """The early seal of one writer group for one peer (its end step), and whether it left
    no row of the peer unbatched — then the jobs that queued rows need not wake the sender."""

    def __init__(self, sender: PeerSender, tx: Tx) -> None:
        self._sender, self._tx = sender, tx
        self.covered = False

    def __call__(self) -> None:
        self.covered = self._sender._seal_queued(self._tx)

    def wake_unless_covered(self) -> None:
        if not self.covered:
            self._sender.wake()


def _at_most_poll(due: float | None) -> float:
    """How long to wait for a wake: until announcements fall due, and no longer than a poll."""
    return IDLE_POLL if due is None else min(IDLE_POLL, due)


def _sequence(batch: Batch) -> int:
    return batch.sequence


def _drain(q: queue.SimpleQueue[Any]) -> None:
    while not q.empty():
        q.get()


def _rpc_error_text(error: grpc.RpcError) -> tuple[str, str]:
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    name = code().name if callable(code) else "UNKNOWN"
    return name, f"{name}: {details() if callable(details) else error}"


def _log_failure(done: Future[None]) -> None:
    error = done.exception()
    if error is not None:
        log.warning("could not record a delivery failure: %s", error)
