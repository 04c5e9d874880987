"""Fixtures for the delivery tests: nl-eokm's batches and receipts for de-eco, over a real store.

* ``tuning`` — ``ExchangeTuning`` with no linger for reports or announcements (tests seal at
  once);
* ``batches`` — nl-eokm's ``Batches`` for de-eco, signing with nl-eokm's test key;
* ``receipts`` — nl-eokm's ``Receipts`` from de-eco, with its own ``metrics``;
* ``queue_reports(n)`` — n distinct real wire reports queued for de-eco (through
  ``store.outbox.enqueue_stored``, as intake queues them), returning their report ids;
* ``receipt_for(batch, ...)`` — the receipt de-eco would sign for a batch: the envelope opened
  and checked as de-eco's receiver opens it, then signed with de-eco's key;
* ``make_sender(tuning, channel_for=None)`` — nl-eokm's (unstarted) ``PeerSender`` to de-eco;
  without ``channel_for`` any attempt to open a stream fails the test.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import grpc
import pytest
from sqlalchemy import Engine

from auth.manifest import Manifest
from exchange.delivery.batches import Batch, Batches
from exchange.delivery.leases import Leases
from exchange.delivery.receipts import Receipts
from exchange.delivery.sender import ChannelFor, PeerSender
from exchange.domain import Outcome, PayloadResult, ReportRole
from exchange.ops.metrics import Metrics
from exchange.settings import ExchangeTuning
from exchange.store import outbox, peers, reports
from exchange.store.reports import Incoming
from exchange.store.writer import Tx, Writer
from exchange.wire.envelope import Limits, open_envelope, sign_receipt
from ihx.v1 import exchange_pb2 as xpb
from tests.exchange.factories import FakeClock, make_report, report_wire, signing_key

SELF = "nl-eokm"
PEER = "de-eco"


@pytest.fixture
def tuning() -> ExchangeTuning:
    return ExchangeTuning(linger_ms=0, announcement_linger_ms=0)


@pytest.fixture
def make_batches(
    manifest: Manifest, engine: Engine, writer: Writer, clock: FakeClock, tuning: ExchangeTuning
) -> Callable[..., Batches]:
    def build(
        tuning_: ExchangeTuning | None = None,
        leases: Leases | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Batches:
        return Batches(
            self_member=SELF,
            peer=PEER,
            key=signing_key(SELF),
            manifest=lambda: manifest,
            engine=engine,
            writer=writer,
            clock=clock,
            tuning=tuning_ or tuning,
            leases=leases,
            monotonic=monotonic,
        )

    return build


@pytest.fixture
def batches(make_batches: Callable[..., Batches]) -> Batches:
    return make_batches()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def receipts(manifest: Manifest, writer: Writer, clock: FakeClock, metrics: Metrics) -> Receipts:
    return Receipts(
        self_member=SELF,
        peer=PEER,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        max_skew=timedelta(seconds=900),
        metrics=metrics,
    )


QueueReports = Callable[..., list[str]]


@pytest.fixture
def queue_reports(writer: Writer, clock: FakeClock) -> QueueReports:
    counter = [0]

    def queue(
        n: int, *, payload_bytes: int = 0, then: Callable[[Tx], None] | None = None
    ) -> list[str]:
        """Store ``n`` reports and queue them for the peer in one transaction, as intake does;
        ``then`` runs in it after."""
        queued, stored = [], []
        for _ in range(n):
            counter[0] += 1
            report = make_report(hashes=[f"delivery-{counter[0]}"])
            wire = report_wire(report)
            if payload_bytes:
                wire = wire.ljust(payload_bytes, b"\x00")
            queued.append((PEER, report.id))
            stored.append(Incoming(report, wire, ReportRole.ORIGIN))

        def job(tx: Tx) -> None:
            peers.ensure(tx.conn, PEER)
            marks = [(None,) * len(inc.report.items) for inc in stored]
            reports.insert(tx.conn, stored, [None] * len(stored), marks, clock())
            outbox.enqueue_stored(tx.conn, queued, clock())
            if then is not None:
                then(tx)

        writer.execute(job)
        return [report_id for _, report_id in queued]

    return queue


ReceiptFor = Callable[..., xpb.SignedReceipt]


@pytest.fixture
def receipt_for(manifest: Manifest, clock: FakeClock) -> ReceiptFor:
    def sign(
        batch: Batch,
        outcomes: Sequence[Outcome] | None = None,
        *,
        received_at: datetime | None = None,
        issuer: str = PEER,
        key_of: str = PEER,
    ) -> xpb.SignedReceipt:
        opened = open_envelope(
            batch.envelope, manifest=manifest, self_member=PEER, now=clock(), limits=Limits()
        )
        ids = batch.report_ids or ("",) * batch.count
        chosen = outcomes or [Outcome.NEW_CASE if batch.report_ids else Outcome.ACCEPTED] * len(ids)
        results = [
            PayloadResult(
                i,
                rid,
                outcome,
                case_id=f"c-{i:032x}" if outcome is not Outcome.REJECTED else "",
                reason="bad" if outcome is Outcome.REJECTED else "",
            )
            for i, (rid, outcome) in enumerate(zip(ids, chosen, strict=True))
        ]
        return sign_receipt(
            signing_key(key_of),
            issuer=issuer,
            opened=opened,
            received_at=received_at or clock(),
            results=results,
        )

    return sign


MakeSender = Callable[..., PeerSender]


@pytest.fixture
def make_sender(manifest: Manifest, engine: Engine, writer: Writer, clock: FakeClock) -> MakeSender:
    def no_channel(_endpoint: str, _fresh: bool) -> grpc.Channel:
        raise AssertionError("no stream in these tests")

    def build(tuning: ExchangeTuning, channel_for: ChannelFor | None = None) -> PeerSender:
        return PeerSender(
            self_member=SELF,
            peer=PEER,
            key=signing_key(SELF),
            manifest=lambda: manifest,
            engine=engine,
            writer=writer,
            clock=clock,
            rng=random.Random(1),
            channel_for=channel_for or no_channel,
            tuning=tuning,
        )

    return build
