"""The receiving side of the exchange: verify an envelope, store its payloads, sign a receipt.

Nothing is stored unless the whole envelope verifies (envelope.py). Then each payload is checked
on its own — the report's origin must be the envelope's signer, its decision must name this node,
its URL must be canonical with the right key, its id must be the one its contents imply — and a
payload that fails is rejected *in the receipt* with a reason, while the others are accepted.

Replays are idempotent: an envelope whose (sender, sequence) was already accepted with the same
Merkle root gets the stored receipt again, byte for byte; the same sequence with another root is
refused with ``SequenceConflict``. The envelope, its receipt and every stored report commit in one
transaction, so a receipt is never given for something not durable.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Protocol

from auth.keys import SigningKey
from auth.manifest import Manifest
from common.clock import Clock
from exchange import cases
from exchange.domain import (
    KnownContent,
    LogKind,
    Outcome,
    PayloadResult,
    ReportRole,
    is_report_id,
    rejected,
    report_id_for,
)
from exchange.errors import ExchangeError, SequenceConflict, error_code, error_message
from exchange.intake import CasesHook
from exchange.lifecycle.inbound import CheckedEvent, Inbound
from exchange.ops.json_logging import ids_field
from exchange.ops.metrics import Metrics
from exchange.peer_binding import check_peer
from exchange.store import inbox
from exchange.store.reports import Incoming
from exchange.store.writer import Priority, Tx, Writer
from exchange.time_window import TimeWindow
from exchange.trace_review import Locate, review_trace
from exchange.transfer.arrivals import Arrivals, CheckedTransfer
from exchange.wire.codec import announcement_from_bytes, parse_report, report_from_proto
from exchange.wire.envelope import (
    KIND_EVENT,
    KIND_REPORT,
    KIND_TRANSFER,
    Limits,
    Opened,
    open_envelope,
    sign_receipt,
)
from ihx.v1 import exchange_pb2 as xpb
from routing.canonical import canonicalize
from routing.errors import RoutingError

log = logging.getLogger(__name__)

Checked = Incoming | KnownContent | CheckedEvent | CheckedTransfer | PayloadResult


class PayloadChecker(Protocol):
    """Checks one payload of a kind outside the writer (``Inbound``, ``Arrivals``)."""

    def check(
        self,
        index: int,
        payload: bytes,
        *,
        sender: str,
        sequence: int,
        proof: bytes,
        window: TimeWindow,
    ) -> CheckedEvent | CheckedTransfer | PayloadResult: ...


class Receiver:
    def __init__(
        self,
        *,
        self_member: str,
        key: SigningKey,
        manifest: Callable[[], Manifest],
        writer: Writer,
        clock: Clock,
        limits: Limits,
        on_cases: CasesHook | None = None,
        bind_peers: bool = False,
        metrics: Metrics | None = None,
        on_heard: Callable[[str], None] | None = None,
        locate: Locate | None = None,
        inbound: Inbound | None = None,
        arrivals: Arrivals | None = None,
        send_quality: bool = False,
    ) -> None:
        self._self = self_member
        self._send_quality = send_quality  # [pdq] send_quality: qualities in announcements
        self._key = key
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self.limits = limits
        self._on_cases = on_cases
        self._bind_peers = bind_peers
        self._metrics = metrics
        self._on_heard = on_heard
        self._locate = locate
        self._inbound = inbound
        self._arrivals = arrivals

    def receive(
        self, envelope: xpb.Envelope, peer_certificate: bytes | None = None
    ) -> xpb.SignedReceipt:
        """Verify and store one envelope; raises a typed error and stores nothing on refusal."""
        return self.receive_async(envelope, peer_certificate).result()

    def receive_async(
        self, envelope: xpb.Envelope, peer_certificate: bytes | None = None
    ) -> Future[xpb.SignedReceipt]:
        """Verify now (raising on refusal), store in the writer; the future gives the receipt.

        With mTLS (``bind_peers``) the TLS peer must be the member that signed the envelope:
        a valid certificate of member A cannot carry envelopes signed by member B.
        """
        try:
            return self._receive(envelope, peer_certificate)
        except Exception as error:
            if self._metrics is not None:
                self._metrics.rejections.labels(error_code(error)).inc()
            raise

    def _receive(
        self, envelope: xpb.Envelope, peer_certificate: bytes | None
    ) -> Future[xpb.SignedReceipt]:
        now = self._clock()
        manifest = self._manifest()
        opened = open_envelope(
            envelope, manifest=manifest, self_member=self._self, now=now, limits=self.limits
        )
        if self._bind_peers:
            check_peer(manifest, opened.sender, peer_certificate)
        if self._on_heard is not None:
            self._on_heard(opened.sender)  # a verified envelope: the sender is up
        window = TimeWindow.for_signer(
            manifest.member(opened.sender).joined_at, opened.signed_at, self.limits.max_clock_skew
        )
        if opened.header.kind == KIND_REPORT:
            checked = [
                self._check_report(i, p, opened, window, manifest)
                for i, p in enumerate(opened.payloads)
            ]
        elif opened.header.kind == KIND_EVENT:
            checked = self._check_by(self._inbound, "applies no case events", opened, window)
        elif opened.header.kind == KIND_TRANSFER:
            checked = self._check_by(self._arrivals, "takes in no case transfers", opened, window)
        else:
            checked = [
                self._check_announcement(i, p, opened.sender, window)
                for i, p in enumerate(opened.payloads)
            ]
        # The sender's stream waits on this receipt: the writer takes it before intake.
        return self._writer.submit(
            lambda tx: self._store(tx, opened, checked, now), Priority.DELIVERY
        )

    def _check_report(
        self, index: int, payload: bytes, opened: Opened, window: TimeWindow, manifest: Manifest
    ) -> Checked:
        try:
            msg = parse_report(payload)
            report = report_from_proto(msg)
            if report.origin_member != opened.sender:
                return _reject(index, msg.id, "origin-mismatch", "origin is not the signer")
            problem = window.problem(report.received_at, "received_at")
            if problem is not None:
                return _reject(index, msg.id, "report-time-range", problem)
            if not 1 <= msg.decision.manifest_epoch <= opened.header.manifest_epoch:
                return _reject(
                    index,
                    msg.id,
                    "decision-epoch",
                    f"decision under manifest epoch {msg.decision.manifest_epoch}, outside 1 to "
                    f"the envelope's epoch {opened.header.manifest_epoch}",
                )
            if report.decision_member != self._self:
                return _reject(
                    index, msg.id, "not-responsible", f"decision names {report.decision_member}"
                )
            canonical = canonicalize(report.url)
            if canonical.url != report.url:
                return _reject(index, msg.id, "url-not-canonical", "URL is not in canonical form")
            if hashlib.sha256(report.url.encode()).digest() != report.url_key:
                return _reject(index, msg.id, "url-key-mismatch", "url_key is not sha256(url)")
            if report_id_for(report.origin_member, report.url_key, report.items) != report.id:
                return _reject(index, msg.id, "report-id-mismatch", "id does not match contents")
            geo = review_trace(
                msg, window=window, locate=self._locate, manifest=manifest, self_member=self._self
            )
        except (ExchangeError, RoutingError) as error:
            return _reject(index, "", error_code(error), error_message(error))
        return Incoming(
            report,
            payload,
            ReportRole.RECEIVED,
            sender=opened.sender,
            sequence=opened.sequence,
            leaf_index=index,
            proof=opened.proofs[index],
            geo=geo,
        )

    def _check_by(
        self, checker: PayloadChecker | None, missing: str, opened: Opened, window: TimeWindow
    ) -> list[Checked]:
        """Each payload checked by the component of its kind (case events: ``Inbound``;
        transfers: ``Arrivals``), outside the writer; refused when the node has none."""
        if checker is None:
            return [
                _reject(i, "", "unsupported", f"this node {missing}")
                for i in range(len(opened.payloads))
            ]
        return [
            checker.check(
                i,
                p,
                sender=opened.sender,
                sequence=opened.sequence,
                proof=opened.proofs[i],
                window=window,
            )
            for i, p in enumerate(opened.payloads)
        ]

    def _check_announcement(
        self, index: int, payload: bytes, sender: str, window: TimeWindow
    ) -> Checked:
        try:
            announced = announcement_from_bytes(payload)
        except ExchangeError as error:
            return _reject(index, "", error.code, error.message)
        # A member announces only its own sightings; it cannot attribute content to another.
        if announced.member != sender:
            return _reject(index, "", "origin-mismatch", "announcement names another member")
        problem = window.problem(announced.first_seen, "first_seen")
        if problem is not None:
            return _reject(index, announced.report_id, "sighting-time-range", problem)
        return announced

    # -- in the writer ------------------------------------------------------------------------

    def _store(
        self, tx: Tx, opened: Opened, checked: Sequence[Checked], now: datetime
    ) -> xpb.SignedReceipt:
        prior = inbox.prior(tx.conn, opened.sender, opened.sequence)
        if prior is not None:
            if prior.root != opened.root:
                raise SequenceConflict(
                    f"sequence {opened.sequence} from {opened.sender} was already used "
                    "for different content"
                )
            return xpb.SignedReceipt(body=prior.body, signature=prior.signature)

        final = self._apply(tx, opened, checked, now)
        self._count(tx, final)
        for r in final:
            if r.outcome is Outcome.REJECTED:
                tx.log(
                    tx.chain.append(
                        now,
                        LogKind.REJECTED,
                        report_id=r.report_id or None,
                        member=opened.sender,
                        detail={"reason": r.reason, "sequence": opened.sequence, "index": r.index},
                    )
                )
        receipt = sign_receipt(
            self._key, issuer=self._self, opened=opened, received_at=now, results=final
        )
        ids = [r.report_id for r in final if r.report_id]
        tx.after_commit.append(
            lambda: log.info(
                "envelope accepted",
                extra={
                    "peer": opened.sender,
                    "sequence": opened.sequence,
                    "count": len(final),
                    "report_ids": ids_field(ids),
                },
            )
        )
        inbox.record(
            tx.conn,
            inbox.Accepted(
                sender=opened.sender,
                sequence=opened.sequence,
                root=opened.root,
                header=opened.header_bytes,
                signature=opened.signature,
                payload_count=len(opened.payloads),
                received_at=now,
                receipt_body=receipt.body,
                receipt_signature=receipt.signature,
            ),
        )
        return receipt

    def _apply(
        self, tx: Tx, opened: Opened, checked: Sequence[Checked], now: datetime
    ) -> list[PayloadResult]:
        """Store the payloads that passed their checks; the result of every payload, in order."""
        results: list[PayloadResult | None] = [
            c if isinstance(c, PayloadResult) else None for c in checked
        ]
        incoming = [(i, c) for i, c in enumerate(checked) if isinstance(c, Incoming)]
        if incoming:
            accepted = cases.accept(
                tx,
                [c for _, c in incoming],
                self_member=self._self,
                now=now,
                send_quality=self._send_quality,
            )
            for (i, _), r in zip(incoming, accepted.results, strict=True):
                results[i] = PayloadResult(i, r.report_id, r.outcome, r.case_id)
            if self._on_cases is not None:
                self._on_cases(tx, {r.case_id for r in accepted.results if r.case_id}, now)
            stored_now = [c for _, c in incoming if c.report.id in accepted.marks]
            self._flag_disagreements(tx, stored_now, opened, now)
        events = [c for c in checked if isinstance(c, CheckedEvent)]
        if events and self._inbound is not None:
            for r in self._inbound.apply(tx, events, now):
                results[r.index] = r
        moved = [c for c in checked if isinstance(c, CheckedTransfer)]
        if moved and self._arrivals is not None:
            for r in self._arrivals.apply(tx, moved, now):
                results[r.index] = r
        announced = [(i, c) for i, c in enumerate(checked) if isinstance(c, KnownContent)]
        if announced:
            cases.record_announcements(tx, [c for _, c in announced])
            for i, _ in announced:
                results[i] = PayloadResult(i, "", Outcome.ACCEPTED)
        return [r for r in results if r is not None]

    def _count(self, tx: Tx, final: Sequence[PayloadResult]) -> None:
        if self._metrics is None:
            return
        metrics = self._metrics
        stored = sum(1 for r in final if r.outcome in (Outcome.NEW_CASE, Outcome.MERGED))
        reasons = [r.reason.split(":", 1)[0] for r in final if r.outcome is Outcome.REJECTED]

        def count() -> None:
            metrics.reports_in.labels("peer").inc(stored)
            for reason in reasons:
                metrics.rejections.labels(reason).inc()

        tx.after_commit.append(count)

    def _flag_disagreements(
        self,
        tx: Tx,
        stored_now: Sequence[Incoming],
        opened: Opened,
        now: datetime,
    ) -> None:
        """A routing-log entry (and a count) per newly stored report whose hosting this node's
        GeoIP places elsewhere than the sender's did: GeoIP drift a coordinator can see."""
        flagged = 0
        for inc in stored_now:
            geo = inc.geo
            if geo is None or geo.agrees:
                continue
            flagged += 1
            tx.log(
                tx.chain.append(
                    now,
                    LogKind.GEO_DISAGREEMENT,
                    report_id=inc.report.id,
                    member=opened.sender,
                    country=geo.country,
                    detail={
                        "sender_country": inc.report.hosting_country,
                        "own_country": geo.country,
                        "reroute_to": geo.reroute_to,
                    },
                )
            )
        if flagged and self._metrics is not None:
            counter = self._metrics.geo_disagreements.labels(opened.sender)
            tx.after_commit.append(lambda: counter.inc(flagged))


def _reject(index: int, report_id: str, code: str, message: str) -> PayloadResult:
    return rejected(index, report_id if is_report_id(report_id) else "", code, message)
