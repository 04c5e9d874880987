"""Receipts from one peer: verified against the batch we sent, then applied exactly once.

A receipt is applied only if it verifies (``wire.envelope.open_receipt``): the peer's
signature, our batch (sequence, root, count) and a plausible time — not before we signed the
batch, not after now, within the allowed clock skew. Anything else raises, and the sender
treats it as a failure of the stream (the batch stays unreceipted and is resent).

Applying is idempotent: the batch is marked only if it had no receipt yet, and everything else
— the per-report outcome (``deliveries``), the ``receipted``/``rejected`` routing-log entries,
the rows leaving the outbox, the counters — happens only when that mark took. Two replicas that
both had the batch in flight (one lost the lease to the other) may both get the receipt: it
counts once. A receipted announcement batch moves the peer's cursor forward, never back.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta

from auth.manifest import Manifest
from common.clock import Clock
from exchange.batch_entries import receipted_entry
from exchange.delivery.batches import Batch
from exchange.domain import LogKind, Outcome
from exchange.ops.metrics import Metrics
from exchange.store import outbox, peers, transfers
from exchange.store.writer import Priority, Tx, Writer
from exchange.wire.envelope import (
    KIND_EVENT,
    KIND_REPORT,
    KIND_TRANSFER,
    Receipt,
    open_receipt,
)
from ihx.v1 import exchange_pb2 as xpb


class Receipts:
    """Verifies and stores the receipts one peer sends for our batches."""

    def __init__(
        self,
        *,
        self_member: str,
        peer: str,
        manifest: Callable[[], Manifest],
        writer: Writer,
        clock: Clock,
        max_skew: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self.peer = peer
        self._self = self_member
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self._max_skew = max_skew
        self._metrics = metrics

    def verify(self, batch: Batch, signed: xpb.SignedReceipt) -> Receipt:
        """The receipt for ``batch``, or an error if it is not one (AuthError, ExchangeError)."""
        return open_receipt(
            signed,
            manifest=self._manifest(),
            issuer=self.peer,
            sender=self._self,
            sequence=batch.sequence,
            root=batch.root,
            count=batch.count,
            sent_at=batch.signed_at,
            now=self._clock(),
            max_skew=self._max_skew,
            kind=batch.kind,
        )

    def apply(self, batch: Batch, signed: xpb.SignedReceipt) -> Future[bool]:
        """Verify now; store through the writer, not awaited. True if this applied it.

        If storing fails the batch stays unreceipted in the database, so it is resent and the
        receiver answers with the same receipt — nothing is lost.
        """
        receipt = self.verify(batch, signed)
        return self._writer.submit(lambda tx: self.store(tx, batch, receipt), Priority.DELIVERY)

    def store(self, tx: Tx, batch: Batch, receipt: Receipt) -> bool:
        """Apply a verified receipt in ``tx``; False if the batch had been receipted already."""
        now = self._clock()
        if not outbox.mark_receipted(
            tx.conn,
            self.peer,
            batch.sequence,
            body=receipt.body,
            signature=receipt.signature,
            at=receipt.received_at,
        ):
            # Already applied: by the replica that held the lease before or after us, both of
            # which had this batch in flight. Once is enough (deliveries, log, metrics).
            return False
        if batch.kind == KIND_REPORT:
            if self._metrics is not None:
                self._observe(tx, batch, receipt)
            outbox.remove_batch_rows(tx.conn, self.peer, batch.sequence)
            self._deliveries(tx, batch, receipt, now)
            peers.record_heard(tx.conn, self.peer, now)
        elif batch.kind == KIND_EVENT:
            outbox.remove_batch_rows(tx.conn, self.peer, batch.sequence)
            self._refused_events(tx, batch, receipt, now)
            peers.record_heard(tx.conn, self.peer, now)
        elif batch.kind == KIND_TRANSFER:
            outbox.remove_batch_rows(tx.conn, self.peer, batch.sequence)
            self._transfers(tx, batch, receipt, now)
            peers.record_heard(tx.conn, self.peer, now)
        else:
            peers.record_heard(tx.conn, self.peer, now, announced_upto=batch.last_announcement)
        return True

    def _deliveries(self, tx: Tx, batch: Batch, receipt: Receipt, now: datetime) -> None:
        """Each report's outcome, a ``deliveries`` row; in the log, one ``receipted`` entry
        for the reports the peer took and a ``rejected`` entry, with its reason, for each it
        refused (batch_entries.py)."""
        rows, taken = [], []
        for report_id, result in zip(batch.report_ids, receipt.results, strict=True):
            outcome = result.outcome.value
            rows.append(
                outbox.Delivery(
                    report_id=report_id,
                    destination=self.peer,
                    sequence=batch.sequence,
                    outcome=outcome,
                    remote_case_id=result.case_id or None,
                    reason=result.reason or None,
                    receipted_at=receipt.received_at,
                )
            )
            if result.outcome is not Outcome.REJECTED:
                taken.append((report_id, outcome, result.case_id))
                continue
            detail = {
                "sequence": batch.sequence,
                "outcome": outcome,
                "case": result.case_id,
                "reason": result.reason,
                "receipt_time": receipt.received_at.isoformat(),
            }
            tx.log(
                tx.chain.append(
                    now, LogKind.REJECTED, report_id=report_id, member=self.peer, detail=detail
                )
            )
        if taken:
            entry = receipted_entry(
                tx.chain, now, self.peer, batch.sequence, receipt.received_at, taken
            )
            tx.log(entry, batch=batch.sequence)
        outbox.record_deliveries(tx.conn, rows)

    def _transfers(self, tx: Tx, batch: Batch, receipt: Receipt, now: datetime) -> None:
        """Each moved report's answer: the new holder's case (or its refusal) on the transfer
        sent from here, and a ``receipted``/``rejected`` entry. A refused transfer is not
        retried (it would be refused again): its items stay closed here as moved, the
        reason logged for an operator and a coordinator to see."""
        for report_id, result in zip(batch.report_ids, receipt.results, strict=True):
            refused = result.outcome is Outcome.REJECTED
            transfers.mark_receipted(
                tx.conn,
                report_id=report_id,
                to_member=self.peer,
                outcome=result.outcome.value,
                to_case=result.case_id or None,
                reason=result.reason or None,
                at=receipt.received_at,
            )
            detail = {
                "sequence": batch.sequence,
                "transfer": True,
                "outcome": result.outcome.value,
                "case": result.case_id,
                "reason": result.reason,
            }
            kind = LogKind.REJECTED if refused else LogKind.RECEIPTED
            tx.log(tx.chain.append(now, kind, report_id=report_id, member=self.peer, detail=detail))

    def _refused_events(self, tx: Tx, batch: Batch, receipt: Receipt, now: datetime) -> None:
        """An event the peer refused is not retried (it would be refused again): it is
        logged, with the peer's reason, for an operator and a coordinator to see."""
        for event_id, result in zip(batch.report_ids, receipt.results, strict=True):
            if result.outcome is Outcome.REJECTED:
                detail = {"sequence": batch.sequence, "event": event_id, "reason": result.reason}
                tx.log(tx.chain.append(now, LogKind.REJECTED, member=self.peer, detail=detail))

    def _observe(self, tx: Tx, batch: Batch, receipt: Receipt) -> None:
        """Counters and latencies, counted after COMMIT (a rolled-back apply counts nothing)."""
        metrics = self._metrics
        assert metrics is not None
        queued = outbox.queued_times(tx.conn, self.peer, batch.sequence)
        latencies = [(receipt.received_at - c).total_seconds() for c in queued]
        outcomes = [r.outcome.value for r in receipt.results]

        def count() -> None:
            metrics.reports_out.labels(self.peer).inc(batch.count)
            for outcome in outcomes:
                metrics.receipts.labels(outcome).inc()
            for seconds in latencies:
                metrics.delivery_latency.observe(max(0.0, seconds))

        tx.after_commit.append(count)
