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
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, func, select

from exchange.delivery.sender import EAGER_IN_FLIGHT, RECEIVER_WINDOW, PeerSender
from exchange.settings import ExchangeTuning
from exchange.store import schema
from exchange.store.schema import DeliveryRow
from exchange.store.writer import Writer
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.exchange.delivery.conftest import PEER, MakeSender, QueueReports, ReceiptFor
from tests.exchange.factories import T0, writer_held
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


@pytest.fixture
def sender_to(make_sender: MakeSender) -> Iterator[Any]:
    """A started sender to de-eco at ``address`` (the peer's real server); stopped after."""
    started: list[PeerSender] = []
    channels: list[grpc.Channel] = []

    def build(address: str, tuning: ExchangeTuning) -> PeerSender:
        def channel_for(_endpoint: str, _fresh: bool) -> grpc.Channel:
            channels.append(grpc.insecure_channel(address))
            return channels[-1]

        sender = make_sender(tuning, channel_for)
        sender.start()
        started.append(sender)
        return sender

    yield build
    for sender in started:
        sender.stop()
    for channel in channels:
        channel.close()


def delivered(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DeliveryRow)).scalar_one())


def test_a_report_queued_while_a_receipt_is_outstanding_is_sent_at_once(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> None:
    servicer, address = peer
    first = queue_reports(3)
    sender = sender_to(address, ExchangeTuning(linger_ms=0))
    assert servicer.next_envelope().count == 3
    later = queue_reports(2)
    sender.wake()
    # The first batch is still unreceipted: the second must not wait for its receipt.
    second = servicer.next_envelope()
    assert (second.sequence, second.count) == (2, 2)
    assert delivered(engine) == 0
    for sequence in (1, 2):
        servicer.answers.put(receipt_for(sender.batches.resend(sequence)))
    wait_until(lambda: delivered(engine) == len(first) + len(later), timeout=10)
    wait_until(lambda: sender.delivered == 5, timeout=10)  # counted once the commit is seen


def test_past_two_batches_in_flight_only_a_full_one_goes_before_a_receipt(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> None:
    """Under load, what arrives during a round trip goes as one batch, not as many small ones:
    with two batches in flight a short one waits for a receipt; a full one goes at once."""
    assert EAGER_IN_FLIGHT == 2
    servicer, address = peer
    queue_reports(1)
    sender = sender_to(address, ExchangeTuning(linger_ms=0, max_batch=3))
    assert servicer.next_envelope().sequence == 1
    queue_reports(1)
    sender.wake()
    assert servicer.next_envelope().sequence == 2  # one in flight: a short batch goes at once
    queue_reports(2)
    sender.wake()
    with pytest.raises(queue.Empty):  # two in flight: two reports wait …
        servicer.next_envelope(timeout=0.5)
    queue_reports(1)
    sender.wake()
    third = servicer.next_envelope()  # … until they fill a batch
    assert (third.sequence, third.count) == (3, 3)
    queue_reports(1)
    sender.wake()
    with pytest.raises(queue.Empty):
        servicer.next_envelope(timeout=0.5)
    servicer.answers.put(receipt_for(sender.batches.resend(1)))
    with pytest.raises(queue.Empty):  # 2 and 3 are still in flight
        servicer.next_envelope(timeout=0.5)
    servicer.answers.put(receipt_for(sender.batches.resend(2)))
    fourth = servicer.next_envelope()  # … until receipts leave fewer than two in flight
    assert (fourth.sequence, fourth.count) == (4, 1)
    for sequence in (3, 4):
        servicer.answers.put(receipt_for(sender.batches.resend(sequence)))
    wait_until(lambda: delivered(engine) == 6, timeout=10)


def test_a_backlog_of_announcements_never_holds_a_short_run_of_reports_back(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    writer: Writer,
) -> None:
    """With two batches in flight a full batch of announcements could go — but a report is
    waiting, and reports go first: nothing is sealed until a receipt; then the report, then
    the announcements."""
    servicer, address = peer
    queue_reports(1)
    sender = sender_to(address, ExchangeTuning(linger_ms=0, max_batch=3))
    assert servicer.next_envelope().sequence == 1
    queue_reports(1)
    sender.wake()
    assert servicer.next_envelope().sequence == 2
    queue_reports(1)  # first: whenever the sender sees the announcements, a report waits
    writer.execute(
        lambda tx: tx.conn.execute(
            schema.announcements.insert(),
            [{"payload": b"announcement %d" % i, "created_at": T0} for i in range(3)],
        )
    )
    sender.wake()
    with pytest.raises(queue.Empty):
        servicer.next_envelope(timeout=0.5)
    servicer.answers.put(receipt_for(sender.batches.resend(1)))
    third, fourth = servicer.next_envelope(), servicer.next_envelope()
    assert (third.sequence, third.kind, third.count) == (3, KIND_REPORT, 1)
    assert (fourth.sequence, fourth.kind, fourth.count) == (4, KIND_ANNOUNCEMENT, 3)


def test_past_its_lifetime_a_busy_stream_drains_and_a_new_one_opens(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> None:
    """Under constant load the window never empties: past its lifetime the stream takes no new
    batch, and once what it carries is receipted the next batch goes on a new stream — no
    failure, no backoff (the call's deadline would otherwise end it as one)."""
    servicer, address = peer
    queue_reports(1)
    sender = sender_to(address, ExchangeTuning(linger_ms=0, stream_lifetime_s=1))
    assert servicer.next_envelope().sequence == 1
    time.sleep(1.2)  # past the lifetime, batch 1 still in flight
    queue_reports(2)
    sender.wake()
    with pytest.raises(queue.Empty):  # not sealed onto the old stream …
        servicer.next_envelope(timeout=0.5)
    servicer.answers.put(receipt_for(sender.batches.resend(1)))
    second = servicer.next_envelope()  # … but on the next one, once the first drained
    assert (second.sequence, second.count) == (2, 2)
    assert servicer.streams == 2
    wait_until(lambda: servicer.open == 1, timeout=10)  # the old stream's end seen there too
    servicer.answers.put(receipt_for(sender.batches.resend(2)))
    wait_until(lambda: delivered(engine) == 3, timeout=10)
    assert sender.last_error is None
    assert sender.attempts == 2


def test_a_silent_peer_past_the_receipt_deadline_gets_the_batch_again(
    peer: tuple[HeldPeer, str], sender_to: Any, queue_reports: QueueReports, engine: Engine
) -> None:
    servicer, address = peer
    queue_reports(2)
    tuning = ExchangeTuning(linger_ms=0, receipt_timeout_s=0.3, backoff_initial_s=0.1)
    sender = sender_to(address, tuning)
    first = servicer.next_envelope()
    again = servicer.next_envelope(timeout=15)  # a new stream, after the deadline and a backoff
    assert again == first  # resent byte for byte: same sequence, root and signing time
    assert sender.last_error is not None
    assert sender.last_error.startswith("CANCELLED")
    assert delivered(engine) == 0


def test_a_receipt_for_no_batch_ends_the_stream(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> None:
    servicer, address = peer
    queue_reports(1)
    sender = sender_to(address, ExchangeTuning(linger_ms=0, backoff_initial_s=30))
    servicer.next_envelope()
    receipt = receipt_for(sender.batches.resend(1))
    servicer.answers.put(receipt)
    servicer.answers.put(receipt)  # the same receipt again: no batch is waiting for it
    wait_until(lambda: sender.last_error is not None, timeout=10)
    assert sender.last_error is not None
    assert sender.last_error.startswith("stray-receipt")
    # The first, genuine receipt is stored (not awaited by the sender), once.
    wait_until(lambda: delivered(engine) == 1, timeout=10)
    wait_until(lambda: sender.delivered == 1, timeout=10)


def test_a_peer_ending_an_idle_stream_is_no_failure_though_reports_wait(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    engine: Engine,
) -> None:
    """The receiver ends idle streams as a matter of course: reports queued meanwhile go on a
    new stream, with no failure recorded and no backoff (they must not be sealed onto the
    stream that has ended)."""
    servicer, address = peer
    queue_reports(1)
    sender = sender_to(address, ExchangeTuning(linger_ms=0, backoff_initial_s=30))
    servicer.next_envelope()
    servicer.answers.put(receipt_for(sender.batches.resend(1)))
    wait_until(lambda: delivered(engine) == 1, timeout=10)
    queue_reports(2)  # not woken: the stream's end is what the sender sees next
    servicer.answers.put(None)
    second = servicer.next_envelope()  # on a new stream
    assert (second.sequence, second.count) == (2, 2)
    servicer.answers.put(receipt_for(sender.batches.resend(2)))
    wait_until(lambda: delivered(engine) == 3, timeout=10)
    assert sender.last_error is None
    assert sender.attempts == 2


def test_a_flood_of_receipts_is_cut_off_at_the_window(
    peer: tuple[HeldPeer, str],
    sender_to: Any,
    queue_reports: QueueReports,
    receipt_for: ReceiptFor,
    writer: Writer,
) -> None:
    """A peer may not fill our memory with receipts while the sender is busy (here: its next
    seal waits on the writer): past the most batches that can be in flight, the reader ends
    the stream instead of queueing more.

    One report per batch and one batch in flight, so the sender parks on the first receipt
    with the other reports pending; that receipt, given while the writer is held, sends it
    into the next seal — there and nowhere else until the writer is released.
    """
    servicer, address = peer
    queue_reports(3)
    tuning = ExchangeTuning(
        linger_ms=0, window=1, max_batch=1, backoff_initial_s=30, receipt_timeout_s=120
    )
    sender = sender_to(address, tuning)
    assert servicer.next_envelope().count == 1
    with writer_held(writer, timeout=60):  # held well past the wait for the reader below
        receipt = receipt_for(sender.batches.resend(1))
        servicer.answers.put(receipt)
        # The receipt's store and the next seal, both behind the held job: the sender waits.
        wait_until(lambda: writer._queue.qsize() >= 2, timeout=10)
        for _ in range(RECEIVER_WINDOW * 4):
            servicer.answers.put(receipt)
        wait_until(
            lambda: not any(t.name == f"ihx-receipts-{PEER}" for t in threading.enumerate()),
            timeout=5,
            what="the receipt reader ending its stream",
        )
    wait_until(lambda: sender.last_error is not None, timeout=10)
