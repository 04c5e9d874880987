"""The sender seals while receipts are outstanding, and reads receipts as they come.

A real gRPC server on loopback plays de-eco: it records every envelope and answers only when the
test says so. A report queued while the first batch waits for its receipt goes out at once in a
batch of its own — before, the sender sealed nothing new until the receipt was back, so every
report waited a whole round trip before it was even sealed. The receipt deadline still ends a
stream whose peer stays silent (the batch is resent byte for byte on the next one), and a
receipt for a batch never sent ends the stream as the peer's fault.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, func, select

from exchange.delivery import sender as sender_module
from exchange.delivery.batches import Batch, Batches
from exchange.delivery.sender import (
    EAGER_IN_FLIGHT,
    EARLY_SEALS_PER_GROUP,
    RECEIVER_WINDOW,
    PeerSender,
)
from exchange.settings import ExchangeTuning
from exchange.store import outbox, peers, schema
from exchange.store.schema import DeliveryRow
from exchange.store.writer import Writer
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.exchange.delivery.conftest import PEER, MakeSender, QueueReports, ReceiptFor
from tests.exchange.factories import T0, FakeClock, writer_held
from tests.integration.support import wait_until


class HeldPeer(xgrpc.ExchangeServicer):
    """de-eco on loopback: envelopes go to ``received``; receipts come from ``answers``."""

    def __init__(self) -> None:
        self.received: queue.Queue[xpb.Envelope] = queue.Queue()
        self.answers: queue.Queue[xpb.SignedReceipt | None] = queue.Queue()
        self.streams = 0  # opened
        self.open = 0  # not yet ended: an answer goes to whichever open stream takes it

    def Stream(
        self, request_iterator: Iterator[xpb.Envelope], context: grpc.ServicerContext
    ) -> Iterator[xpb.SignedReceipt]:
        self.streams += 1
        self.open += 1
        try:
            yield from self._answer(request_iterator, context)
        finally:
            self.open -= 1

    def _answer(
        self, request_iterator: Iterator[xpb.Envelope], context: grpc.ServicerContext
    ) -> Iterator[xpb.SignedReceipt]:
        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the sender ended the stream
                for envelope in request_iterator:
                    self.received.put(envelope)

        threading.Thread(target=read, daemon=True).start()
        while context.is_active():
            try:
                answer = self.answers.get(timeout=0.1)
            except queue.Empty:
                continue
            if answer is None:
                return
            yield answer

    def next_envelope(self, timeout: float = 10.0) -> xpb.EnvelopeHeader:
        return xpb.EnvelopeHeader.FromString(self.received.get(timeout=timeout).header)


@pytest.fixture
def peer() -> Iterator[tuple[HeldPeer, str]]:
    servicer = HeldPeer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    xgrpc.add_ExchangeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    servicer.answers.put(None)
    server.stop(grace=None)


class Rig:
    """de-eco's real server on loopback, and the sender to it that a test starts."""

    def __init__(
        self,
        servicer: HeldPeer,
        address: str,
        make_sender: MakeSender,
        queue_reports: QueueReports,
        receipt_for: ReceiptFor,
        engine: Engine,
    ) -> None:
        self.servicer = servicer
        self.queue = queue_reports
        self._address = address
        self._make_sender = make_sender
        self._receipt_for = receipt_for
        self._engine = engine
        self._channels: list[grpc.Channel] = []
        self._senders: list[PeerSender] = []

    @property
    def sender(self) -> PeerSender:
        return self._senders[-1]

    def start(self, tuning: ExchangeTuning) -> PeerSender:
        def channel_for(_endpoint: str, _fresh: bool) -> grpc.Channel:
            self._channels.append(grpc.insecure_channel(self._address))
            return self._channels[-1]

        self._senders.append(self._make_sender(tuning, channel_for))
        self.sender.start()
        return self.sender

    def next_envelope(self, timeout: float = 10.0) -> xpb.EnvelopeHeader:
        return self.servicer.next_envelope(timeout)

    def nothing_sent(self, within: float = 0.5) -> bool:
        """No envelope within ``within`` s (under load: vacuously true, never wrongly false)."""
        try:
            self.servicer.next_envelope(within)
        except queue.Empty:
            return True
        return False

    def queue_sealing(self, n: int) -> list[str]:
        """Queue ``n`` reports in a writer job that calls ``seal_early`` as intake does, in its
        transaction; each report's outbox state when the job has returned."""
        queued = self.queue(n, then=self.sender.seal_early)
        with self._engine.connect() as conn:
            return [outbox.queued_state(conn, r) or "gone" for r in queued]

    def queue_and_wake(self, n: int) -> list[str]:
        queued = self.queue(n)
        self.sender.wake()
        return queued

    def receipt(self, sequence: int) -> xpb.SignedReceipt:
        return self._receipt_for(self.sender.batches.resend(sequence))

    def answer(self, *sequences: int) -> None:
        for sequence in sequences:
            self.servicer.answers.put(self.receipt(sequence))

    def delivered(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DeliveryRow)).scalar_one())

    def close(self) -> None:
        for sender in self._senders:
            sender.stop()
        for channel in self._channels:
            channel.close()


@pytest.fixture
def rig(
    peer: tuple[HeldPeer, str],
    make_sender: MakeSender,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> Iterator[Rig]:
    built = Rig(*peer, make_sender, queue_reports, receipt_for, engine)
    yield built
    built.close()


def test_a_report_queued_while_a_receipt_is_outstanding_is_sent_at_once(rig: Rig) -> None:
    first = rig.queue(3)
    rig.start(ExchangeTuning(linger_ms=0))
    assert rig.next_envelope().count == 3
    later = rig.queue_and_wake(2)
    # The first batch is still unreceipted: the second must not wait for its receipt.
    second = rig.next_envelope()
    assert (second.sequence, second.count) == (2, 2)
    assert rig.delivered() == 0
    rig.answer(1, 2)
    wait_until(lambda: rig.delivered() == len(first) + len(later), timeout=10)
    wait_until(lambda: rig.sender.delivered == 5, timeout=10)  # counted once the commit is seen


def test_past_three_batches_in_flight_only_a_full_one_goes_before_a_receipt(rig: Rig) -> None:
    """Under load, what arrives during a round trip goes as one batch, not as many small ones:
    with three batches in flight a short one waits for a receipt; a full one goes at once."""
    assert EAGER_IN_FLIGHT == 3
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=0, max_batch=3))
    assert rig.next_envelope().sequence == 1
    for sequence in (2, 3):  # one, then two in flight: a short batch goes at once
        rig.queue_and_wake(1)
        assert rig.next_envelope().sequence == sequence
    rig.queue_and_wake(2)
    assert rig.nothing_sent()  # three in flight: two reports wait …
    rig.queue_and_wake(1)
    fourth = rig.next_envelope()  # … until they fill a batch
    assert (fourth.sequence, fourth.count) == (4, 3)
    rig.queue_and_wake(1)
    assert rig.nothing_sent()
    rig.answer(1)
    assert rig.nothing_sent()  # 2, 3 and 4 are still in flight
    rig.answer(2)
    fifth = rig.next_envelope()  # … or until receipts leave fewer than three in flight
    assert (fifth.sequence, fifth.count) == (5, 1)
    rig.answer(3, 4, 5)
    wait_until(lambda: rig.delivered() == 7, timeout=10)


def test_the_sender_lingers_on_an_idle_pipe_only(rig: Rig) -> None:
    """The linger gathers a short batch on an idle pipe. With a batch in flight, what is queued
    has been gathering during the round trip: sealed at once, not ``linger_ms`` later (at a
    steady 1,000 reports/s that linger was 5 ms on most batches). Nor once receipts have
    emptied the pipe: the rows that waited for them go at once too."""
    rig.queue(1)
    started = time.monotonic()
    rig.start(ExchangeTuning(linger_ms=1000, max_batch=3))
    assert rig.next_envelope().sequence == 1
    waited = time.monotonic() - started
    assert waited >= 0.9, f"sent {waited:.2f} s after the start: an idle pipe lingers"

    started = time.monotonic()
    rig.queue_and_wake(1)
    second = rig.next_envelope()
    waited = time.monotonic() - started
    assert second.sequence == 2
    assert waited < 0.5, f"sealed {waited:.2f} s after the wake, one in flight: it lingered"

    rig.queue_and_wake(1)
    assert rig.next_envelope().sequence == 3  # two in flight: a short batch still goes
    rig.queue_and_wake(1)
    assert rig.nothing_sent()  # three in flight: the row waits for a receipt (Nagle's rule)
    started = time.monotonic()
    rig.answer(1, 2, 3)  # the receipts at once: the pipe empties, the row has waited
    fourth = rig.next_envelope()
    waited = time.monotonic() - started
    assert fourth.sequence == 4
    assert waited < 0.5, f"sealed {waited:.2f} s after the receipts emptied the pipe: lingered"
    rig.answer(4)
    wait_until(lambda: rig.delivered() == 4, timeout=10)


def count_reads(sender: PeerSender) -> list[int]:
    """``[n]``: how many times ``sender`` has asked its batches for the next batch since."""
    reads = [0]
    seal_next = sender.batches.seal_next

    def counted(*args: Any, **kwargs: Any) -> Batch | None:
        reads[0] += 1
        return seal_next(*args, **kwargs)

    sender.batches.seal_next = counted  # type: ignore[method-assign]
    return reads


def test_a_receipt_alone_reads_nothing_a_row_queued_unwoken_is_found_within_look_every(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receipts and batches handed over wake the sender, but only a wake that says rows were
    queued (or a read that left some) makes it read the outbox — at 1,000 reports/s the
    others re-read it 150 times a second for nothing. A row queued without a wake (another
    replica's) is read all the same on the first wake ``LOOK_EVERY`` after the last read."""
    monkeypatch.setattr(sender_module, "LOOK_EVERY", 3600.0)
    monkeypatch.setattr(sender_module, "IDLE_POLL", 3600.0)  # no poll finds the row instead
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=0, max_batch=3))
    assert rig.next_envelope().sequence == 1
    reads = count_reads(rig.sender)
    rig.queue_and_wake(1)
    assert rig.next_envelope().sequence == 2
    wait_until(lambda: reads[0] >= 2, timeout=10)  # sealed one, then found none left
    settled = reads[0]
    rig.queue(1)  # no wake
    rig.answer(1)
    wait_until(lambda: rig.delivered() == 1, timeout=10)
    assert rig.nothing_sent()
    assert reads[0] == settled  # the receipt woke it: nothing read

    monkeypatch.setattr(sender_module, "LOOK_EVERY", 0.0)
    rig.answer(2)  # the next wake: the last read is LOOK_EVERY old
    third = rig.next_envelope()
    assert (third.sequence, third.count) == (3, 1)
    rig.answer(3)
    wait_until(lambda: rig.delivered() == 3, timeout=10)


def test_an_early_seal_wakes_the_sender_only_if_it_left_rows(rig: Rig) -> None:
    """Intake's transaction seals what it queued; after COMMIT it wakes the sender — which then
    reads the outbox — only when rows were left unbatched: here three in flight, so a short
    batch waits (Nagle's rule)."""
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=0, max_batch=3))
    assert rig.next_envelope().sequence == 1
    wakes = [0]
    wake = rig.sender.wake

    def counted() -> None:
        wakes[0] += 1
        wake()

    rig.sender.wake = counted  # type: ignore[method-assign]
    for sequence in (2, 3):
        assert rig.queue_sealing(1) == ["sent"]
        assert rig.next_envelope().sequence == sequence
    assert wakes[0] == 0  # every row sealed in the job that queued it
    assert rig.queue_sealing(1) == ["queued"]  # three in flight: it waits
    assert wakes[0] == 1
    assert rig.nothing_sent()
    rig.answer(1, 2, 3)
    assert rig.next_envelope().sequence == 4
    rig.answer(4)
    wait_until(lambda: rig.delivered() == 4, timeout=10)


def test_reports_queued_while_the_pipe_has_room_are_sealed_by_the_job_that_queues_them(
    rig: Rig,
) -> None:
    """``seal_early``: while fewer than three batches are in flight, the transaction that
    queues reports seals them — the batch exists when the job returns and goes at once, not
    after the sender's own wake and second commit. With three in flight the reports stay
    queued for the sender, which seals them by Nagle's rule."""
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=1000, max_batch=3))
    assert rig.next_envelope().sequence == 1  # the sender's own seal, after its linger

    assert rig.queue_sealing(2) == ["sent", "sent"]  # sealed when the job returned
    second = rig.next_envelope()  # handed to the open stream
    assert (second.sequence, second.count) == (2, 2)
    assert rig.queue_sealing(1) == ["sent"]  # two in flight: still sealed at once
    third = rig.next_envelope()
    assert (third.sequence, third.count) == (3, 1)
    assert rig.queue_sealing(1) == ["queued"]  # three in flight: left to the sender
    assert rig.nothing_sent(within=0.3)
    rig.answer(1, 2, 3)
    fourth = rig.next_envelope()
    assert (fourth.sequence, fourth.count) == (4, 1)
    rig.answer(4)
    wait_until(lambda: rig.delivered() == 5, timeout=10)


def test_under_load_the_job_that_queues_reports_seals_full_batches_while_the_window_has_room(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``EAGER_IN_FLIGHT``, intake's transaction seals full batches — while the window has
    room, at most ``EARLY_SEALS_PER_GROUP`` (the sender seals the rest) — and leaves a short
    remainder queued (Nagle's rule); with the window full it seals nothing. Before, the sender
    sealed one batch per writer job of its own, each waiting for the intake group running
    then, so under load one batch was in flight where the window allows four and the peer
    idled while intake ran."""
    assert EARLY_SEALS_PER_GROUP == 2
    rig.queue(3)
    sender = rig.start(ExchangeTuning(linger_ms=1000, max_batch=3, window=5))
    first = rig.next_envelope()
    assert (first.sequence, first.count) == (1, 3)
    # What intake's transactions seal, as handed over (the sender, woken by the hand-over,
    # may seal more before the states below are read).
    handed: list[list[int]] = []
    hand_over = sender._hand_over

    def recording(batches: list[Batch]) -> None:
        handed.append([b.sequence for b in batches])
        hand_over(batches)

    monkeypatch.setattr(sender, "_hand_over", recording)

    assert rig.queue_sealing(3) == ["sent"] * 3  # one in flight: sealed at once, as before
    assert rig.next_envelope().sequence == 2
    # Two in flight, room for three more: the job seals two batches (full: ten wait), no more.
    assert rig.queue_sealing(10)[:6] == ["sent"] * 6
    assert handed == [[2], [3, 4]]
    # The hand-over wakes the sender, which seals the third full one.
    sent = [rig.next_envelope() for _ in range(3)]
    assert [(h.sequence, h.count) for h in sent] == [(3, 3), (4, 3), (5, 3)]
    # Five full batches in flight: the window is full for intake and for the sender alike,
    # past the sender's own poll (a second) too.
    assert rig.queue_sealing(3) == ["queued"] * 3
    assert handed == [[2], [3, 4]]
    assert rig.nothing_sent(within=1.5)
    rig.answer(1)
    sixth = rig.next_envelope()  # room again: the sender seals a full one
    assert (sixth.sequence, sixth.count) == (6, 3)
    assert rig.nothing_sent(within=0.3)  # the window is full again
    rig.answer(2, 3, 4, 5, 6)
    last = rig.next_envelope()  # fewer than three in flight: the short remainder goes
    assert (last.sequence, last.count) == (7, 1)
    rig.answer(7)
    wait_until(lambda: rig.delivered() == 19, timeout=10)


def _race_the_sender(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
    *,
    before: Callable[[], list[str]] | None = None,
    after: Callable[[], list[str]] | None = None,
) -> list[str]:
    """Start the sender and let its first batch go; then, once, an intake transaction (run by
    ``before`` or ``after``) commits on the sender's own thread just before it seals, or just
    after it has sealed a batch and before it sends it. What the race returned is filled in.

    Armed only between two of the sender's calls to ``seal_next``: a call already running when
    the test queued its next report could seal it with no race at all (it did, on a loaded
    machine — the sender's call right after the first batch sealed the test's report, and the
    test then waited for a batch that was never to come)."""
    seal_next = Batches.seal_next
    between_calls = threading.Lock()
    armed = threading.Event()
    raced: list[str] = []

    def racing_seal_next(
        batches: Batches, announced_upto: int, *, full_only: bool = False, linger: bool = True
    ) -> Batch | None:
        with between_calls:
            race = armed.is_set() and not raced
            if race and before is not None:
                raced.extend(before())
            batch = seal_next(batches, announced_upto, full_only=full_only, linger=linger)
            if race and after is not None and batch is not None:
                raced.extend(after())
            return batch

    monkeypatch.setattr(Batches, "seal_next", racing_seal_next)
    rig.queue(1)
    # Announcements are sealed the moment the sender looks: the race is about order.
    rig.start(ExchangeTuning(linger_ms=0, announcement_linger_ms=0, max_batch=3))
    assert rig.next_envelope().sequence == 1
    with between_calls:
        armed.set()
    return raced


def test_a_batch_sealed_early_never_goes_after_one_sealed_later(
    rig: Rig, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer's batches go in sequence order whoever sealed them — a case event must never
    overtake what was queued before it. The race: the sender is about to seal (here: the
    announcements waiting) when an intake transaction seals its reports early and hands the
    batch over; the sender's own batch takes the next sequence and must wait for it."""

    def announcements_then_intake() -> list[str]:
        # Both on the sender's thread, inside the race: announcements the test inserted itself
        # could be sealed by a call already past the race (the sender may still be filling
        # after the first batch), and no race would happen.
        writer.execute(
            lambda tx: tx.conn.execute(
                schema.announcements.insert(),
                [{"payload": b"announcement %d" % i, "created_at": T0} for i in range(2)],
            )
        )
        return rig.queue_sealing(1)

    raced = _race_the_sender(rig, monkeypatch, before=announcements_then_intake)
    rig.sender.wake()
    second, third = rig.next_envelope(), rig.next_envelope()
    assert raced == ["sent"]  # intake's transaction sealed the report, not the sender
    assert (second.sequence, second.kind, second.count) == (2, KIND_REPORT, 1)
    assert (third.sequence, third.kind, third.count) == (3, KIND_ANNOUNCEMENT, 2)


def test_a_short_batch_of_announcements_goes_when_due_without_a_wake(
    rig: Rig, writer: Writer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Announcements are background traffic: a short batch waits ``announcement_linger_ms``
    for more, and the idle sender seals it when it falls due — no new row wakes it, and its
    poll (made far longer here) does not either."""
    monkeypatch.setattr(sender_module, "IDLE_POLL", 30.0)
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=0, announcement_linger_ms=300))
    assert rig.next_envelope().kind == KIND_REPORT
    rig.answer(1)
    wait_until(lambda: rig.delivered() == 1)
    writer.execute(
        lambda tx: tx.conn.execute(
            schema.announcements.insert(),
            [{"payload": b"announcement %d" % i, "created_at": clock()} for i in range(2)],
        )
    )
    rig.sender.wake()
    assert rig.nothing_sent(within=0.1)  # not due for 300 ms
    due = rig.next_envelope(timeout=10.0)  # well before the 30 s poll
    assert (due.sequence, due.kind, due.count) == (2, KIND_ANNOUNCEMENT, 2)


def test_no_stream_is_opened_for_announcements_not_yet_due(
    rig: Rig, writer: Writer, clock: FakeClock
) -> None:
    """A peer is called only when something can go: not for a short batch of announcements
    gathering more (it would take a stream slot at the peer and send nothing)."""
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    insert = schema.announcements.insert()
    writer.execute(
        lambda tx: tx.conn.execute(
            insert, [{"payload": b"announcement %d" % i, "created_at": clock()} for i in range(2)]
        )
    )
    rig.start(ExchangeTuning(linger_ms=0, announcement_linger_ms=5000, max_batch=3))
    assert rig.nothing_sent(within=0.5)
    assert rig.servicer.streams == 0
    writer.execute(
        lambda tx: tx.conn.execute(insert, [{"payload": b"one more", "created_at": clock()}])
    )
    rig.sender.wake()  # a full batch now: it goes at once
    full = rig.next_envelope()
    assert (full.sequence, full.kind, full.count) == (1, KIND_ANNOUNCEMENT, 3)


def test_a_batch_sealed_early_never_goes_before_one_sealed_earlier(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the same race: the sender has sealed a batch and not yet sent it when
    an intake transaction seals the next one early; the early batch waits for it."""
    raced = _race_the_sender(rig, monkeypatch, after=lambda: rig.queue_sealing(1))
    rig.queue_and_wake(1)
    second, third = rig.next_envelope(), rig.next_envelope()
    assert raced == ["sent"]
    assert (second.sequence, third.sequence) == (2, 3)


def test_a_backlog_of_announcements_never_holds_a_short_run_of_reports_back(
    rig: Rig, writer: Writer
) -> None:
    """With three batches in flight a full batch of announcements could go — but a report is
    waiting, and reports go first: nothing is sealed until a receipt; then the report, then
    the announcements."""
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=0, max_batch=3))
    assert rig.next_envelope().sequence == 1
    for sequence in (2, 3):
        rig.queue_and_wake(1)
        assert rig.next_envelope().sequence == sequence
    rig.queue(1)  # first: whenever the sender sees the announcements, a report waits
    writer.execute(
        lambda tx: tx.conn.execute(
            schema.announcements.insert(),
            [{"payload": b"announcement %d" % i, "created_at": T0} for i in range(3)],
        )
    )
    rig.sender.wake()
    assert rig.nothing_sent()
    rig.answer(1)
    fourth, fifth = rig.next_envelope(), rig.next_envelope()
    assert (fourth.sequence, fourth.kind, fourth.count) == (4, KIND_REPORT, 1)
    assert (fifth.sequence, fifth.kind, fifth.count) == (5, KIND_ANNOUNCEMENT, 3)


def test_past_its_lifetime_a_busy_stream_drains_and_a_new_one_opens(rig: Rig) -> None:
    """Under constant load the window never empties: past its lifetime the stream takes no new
    batch, and once what it carries is receipted the next batch goes on a new stream — no
    failure, no backoff (the call's deadline would otherwise end it as one)."""
    rig.queue(1)
    rig.start(ExchangeTuning(linger_ms=0, stream_lifetime_s=1))
    assert rig.next_envelope().sequence == 1
    time.sleep(1.2)  # past the lifetime, batch 1 still in flight
    rig.queue_and_wake(2)
    assert rig.nothing_sent()  # not sealed onto the old stream …
    rig.answer(1)
    second = rig.next_envelope()  # … but on the next one, once the first drained
    assert (second.sequence, second.count) == (2, 2)
    assert rig.servicer.streams == 2
    wait_until(lambda: rig.servicer.open == 1, timeout=10)  # the old stream's end seen there too
    rig.answer(2)
    wait_until(lambda: rig.delivered() == 3, timeout=10)
    assert rig.sender.last_error is None
    assert rig.sender.attempts == 2


def test_a_silent_peer_past_the_receipt_deadline_gets_the_batch_again(rig: Rig) -> None:
    rig.queue(2)
    sender = rig.start(ExchangeTuning(linger_ms=0, receipt_timeout_s=0.3, backoff_initial_s=0.1))
    first = rig.next_envelope()
    again = rig.next_envelope(timeout=15)  # a new stream, after the deadline and a backoff
    assert again == first  # resent byte for byte: same sequence, root and signing time
    assert sender.last_error is not None
    assert sender.last_error.startswith("CANCELLED")
    assert rig.delivered() == 0


def test_a_receipt_for_no_batch_ends_the_stream(rig: Rig) -> None:
    rig.queue(1)
    sender = rig.start(ExchangeTuning(linger_ms=0, backoff_initial_s=30))
    rig.next_envelope()
    rig.answer(1)
    rig.answer(1)  # the same receipt again: no batch is waiting for it
    wait_until(lambda: sender.last_error is not None, timeout=10)
    assert sender.last_error is not None
    assert sender.last_error.startswith("stray-receipt")
    # The first, genuine receipt is stored (not awaited by the sender), once.
    wait_until(lambda: rig.delivered() == 1, timeout=10)
    wait_until(lambda: sender.delivered == 1, timeout=10)


def test_a_peer_ending_an_idle_stream_is_no_failure_though_reports_wait(rig: Rig) -> None:
    """The receiver ends idle streams as a matter of course: reports queued meanwhile go on a
    new stream, with no failure recorded and no backoff (they must not be sealed onto the
    stream that has ended)."""
    rig.queue(1)
    sender = rig.start(ExchangeTuning(linger_ms=0, backoff_initial_s=30))
    rig.next_envelope()
    rig.answer(1)
    wait_until(lambda: rig.delivered() == 1, timeout=10)
    rig.queue(2)  # not woken: the stream's end is what the sender sees next
    rig.servicer.answers.put(None)
    second = rig.next_envelope()  # on a new stream
    assert (second.sequence, second.count) == (2, 2)
    rig.answer(2)
    wait_until(lambda: rig.delivered() == 3, timeout=10)
    assert sender.last_error is None
    assert sender.attempts == 2


def test_a_flood_of_receipts_is_cut_off_at_the_window(rig: Rig, writer: Writer) -> None:
    """A peer may not fill our memory with receipts while the sender is busy (here: its next
    seal waits on the writer): past the most batches that can be in flight, the reader ends
    the stream instead of queueing more.

    One report per batch and one batch in flight, so the sender parks on the first receipt
    with the other reports pending; that receipt, given while the writer is held, sends it
    into the next seal — there and nowhere else until the writer is released.
    """
    rig.queue(3)
    tuning = ExchangeTuning(
        linger_ms=0, window=1, max_batch=1, backoff_initial_s=30, receipt_timeout_s=120
    )
    sender = rig.start(tuning)
    assert rig.next_envelope().count == 1
    receipt = rig.receipt(1)
    with writer_held(writer, timeout=60):  # held well past the wait for the reader below
        rig.servicer.answers.put(receipt)
        # The receipt's store and the next seal, both behind the held job: the sender waits.
        wait_until(lambda: writer._queue.qsize() >= 2, timeout=10)
        for _ in range(RECEIVER_WINDOW * 4):
            rig.servicer.answers.put(receipt)
        wait_until(
            lambda: not any(t.name == f"ihx-receipts-{PEER}" for t in threading.enumerate()),
            timeout=5,
            what="the receipt reader ending its stream",
        )
    wait_until(lambda: sender.last_error is not None, timeout=10)
