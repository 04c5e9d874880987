"""Intake: a submission becomes a stored, routed report — or a clear error and nothing stored.

``prepare`` does the per-report CPU work outside the database: canonicalise, trace, decide,
build and serialize the wire report once (the same bytes are stored, queued and later signed
into a batch). ``submit`` hands prepared reports to the writer through a ``Coalescer``, so
concurrent submissions share one transaction and one fsync; the answer is given only after
COMMIT.

In that transaction: a report id already held (same origin, URL and item hashes) returns the
stored report marked ``duplicate``; a local decision opens or merges a case here (see cases.py);
anything else is queued in the outbox for its destination. Every report gets an ``intake`` entry
in the routing log with its decision.

A reporter's region, given with consent, is stored in the report's row only (the first
submission's stays): it is no field of the wire report, so it never leaves this node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime

from auth.manifest import Manifest
from common.clock import Clock
from exchange import cases
from exchange.domain import (
    ContentHash,
    HashAlgorithm,
    Item,
    ItemStatus,
    LogKind,
    Report,
    ReportRole,
    Submission,
    report_id_for,
)
from exchange.errors import ExchangeError, InvalidReport
from exchange.ops.json_logging import ids_field
from exchange.ops.metrics import Metrics
from exchange.pdq.matcher import PdqMatcher
from exchange.routing_log import DetailText, detail_json
from exchange.store import hash_index, outbox, reports
from exchange.store.reports import Incoming, Marks, StoredReport
from exchange.store.writer import Coalescer, Tx, Writer
from exchange.wire.codec import (
    decision_from_proto,
    parse_report,
    report_to_proto,
)
from exchange.wire.envelope import Limits
from routing.canonical import canonicalize
from routing.decision import Decider, Decision
from routing.trace import Trace, Tracer

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = Limits().max_payload_bytes


# Called in the writer transaction with the cases a batch opened or merged into.
CasesHook = Callable[[Tx, set[str], datetime], None]


@dataclass(frozen=True, slots=True)
class Prepared:
    submission: Submission
    report: Report
    wire: bytes
    decision: Decision
    trace: Trace
    # The detail of its ``intake`` log entry (``_log_detail``): made here, off the writer's path.
    log_detail: DetailText
    # Per item, its PDQ hash as submitted (``_pdq_of``): found here too.
    pdq: tuple[ContentHash | None, ...] = ()


@dataclass(frozen=True, slots=True)
class IntakeResult:
    report_id: str
    canonical_url: str
    decision: Decision
    items: tuple[ItemStatus, ...]
    duplicate: bool
    client_ref: str
    wire: bytes  # the stored wire report (carries the trace)
    # Per item, its PDQ hash with the quality as submitted here: with ``[pdq] send_quality``
    # off the wire bytes carry no quality, and matching needs no parse of them.
    pdq: tuple[ContentHash | None, ...] = ()


class Intake:
    def __init__(
        self,
        *,
        self_member: str,
        tracer: Tracer,
        manifest: Callable[[], Manifest],
        writer: Writer,
        clock: Clock,
        wake: Callable[[set[str]], None],
        seal_early: Callable[[Tx, set[str]], None] | None = None,
        on_cases: CasesHook | None = None,
        metrics: Metrics | None = None,
        pdq: PdqMatcher | None = None,
        send_quality: bool = False,
    ) -> None:
        self._self = self_member
        self._tracer = tracer
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self._wake = wake
        self._seal_early = seal_early
        self._on_cases = on_cases
        self._metrics = metrics
        self._pdq = pdq
        self._send_quality = send_quality  # [pdq] send_quality: qualities on the wire
        self._decider = Decider(self_member)
        self._coalescer: Coalescer[Prepared, IntakeResult] = Coalescer(self._commit)

    def prepare(self, submission: Submission) -> Prepared:
        """Canonicalise, trace and decide. Raises InvalidUrl; touches no storage."""
        canonical = canonicalize(submission.url)
        trace = self._tracer.trace(canonical)
        decision = self._decider.decide(
            trace.country, self._manifest(), untraceable_reason=trace.untraceable_reason
        )
        report = Report(
            id=report_id_for(self._self, canonical.url_key, submission.items),
            origin_member=self._self,
            url=canonical.url,
            url_key=canonical.url_key,
            received_at=self._clock(),
            facts=submission.facts,
            items=submission.items,
            hosting_country=trace.country,
            decision_member=decision.member,
            decision_reason=decision.reason.value,
        )
        wire = report_to_proto(
            report, trace, decision, with_quality=self._send_quality
        ).SerializeToString(deterministic=True)
        if len(wire) > MAX_REPORT_BYTES:
            # Every receiver refuses a larger payload, so it could never be delivered.
            raise InvalidReport(
                f"the report is {len(wire)} bytes serialized; at most {MAX_REPORT_BYTES} can be "
                "exchanged: split its items over several reports",
                code="report-too-large",
            )
        return Prepared(
            submission,
            report,
            wire,
            decision,
            trace,
            _log_detail(decision, trace),
            _pdq_of(submission.items),
        )

    def submit_prepared(self, prepared: Prepared) -> Future[IntakeResult]:
        return self._writer.submit_item(self._coalescer, prepared)

    def submit(self, submission: Submission) -> IntakeResult:
        return self.with_near([self.submit_prepared(self.prepare(submission)).result()])[0]

    def with_near(self, results: Sequence[IntakeResult]) -> list[IntakeResult]:
        """The results with each item's near-known content (PDQ), matched in one call for the
        whole batch after COMMIT — outside the writer, which never waits for a search. A batch
        without a PDQ hash returns at once: no parse, no query."""
        if self._pdq is None:
            return list(results)
        pdq = [h for r in results for h in r.pdq]
        if all(h is None for h in pdq):
            return [_no_pdq(r) for r in results]
        own = [r.report_id for r in results for _ in r.pdq]  # a report's items: not near
        answers = iter(self._pdq.match(pdq, own=own))
        out = []
        for result in results:
            statuses = tuple(
                replace(status, near=near, pdq_not_matched=why)
                for status, (near, why) in zip(
                    result.items, (next(answers) for _ in result.pdq), strict=True
                )
            )
            out.append(replace(result, items=statuses))
        return out

    # -- in the writer ------------------------------------------------------------------------

    def _commit(self, tx: Tx, batch: Sequence[Prepared]) -> list[IntakeResult | ExchangeError]:
        now = self._clock()
        held = reports.existing(tx.conn, [p.report.id for p in batch])
        fresh: list[Prepared] = []
        seen: set[str] = set()
        for p in batch:
            if p.report.id not in held and p.report.id not in seen:
                seen.add(p.report.id)
                fresh.append(p)
        self._log_intake(tx, fresh, now)
        marks = self._store_local(tx, [p for p in fresh if p.decision.local], now)
        marks.update(self._store_remote(tx, [p for p in fresh if not p.decision.local], now))

        stored = reports.stored(tx.conn, [p.report.id for p in batch if p.report.id in held])
        first_of = {p.report.id: p for p in reversed(fresh)}
        results: list[IntakeResult | ExchangeError] = []
        for p in batch:
            if p.report.id in held:
                again = _again(stored[p.report.id], p.submission.client_ref, self._self)
                if isinstance(again, IntakeResult):
                    again = replace(again, pdq=p.pdq)
                results.append(again)
                continue
            first = first_of[p.report.id]
            results.append(
                IntakeResult(
                    first.report.id,
                    first.report.url,
                    first.decision,
                    _statuses(marks[first.report.id]),
                    duplicate=p is not first,  # the same submission twice in one batch
                    client_ref=p.submission.client_ref,
                    wire=first.wire,
                    pdq=p.pdq,
                )
            )
        return results

    def _log_intake(self, tx: Tx, fresh: Sequence[Prepared], now: datetime) -> None:
        """An ``intake`` entry per new report with its decision; a log line and a count after
        COMMIT."""
        for p in fresh:
            d = p.decision
            tx.log(
                tx.chain.append(
                    now,
                    LogKind.INTAKE,
                    report_id=p.report.id,
                    member=d.member,
                    country=d.country,
                    detail=p.log_detail,
                )
            )
        if fresh:
            ids = [p.report.id for p in fresh]
            tx.after_commit.append(
                lambda: log.info(
                    "reports stored", extra={"count": len(ids), "report_ids": ids_field(ids)}
                )
            )
        if self._metrics is not None and fresh:
            counter = self._metrics.reports_in.labels("intake")
            tx.after_commit.append(lambda: counter.inc(len(fresh)))

    def _store_local(self, tx: Tx, local: Sequence[Prepared], now: datetime) -> dict[str, Marks]:
        """Reports this node is responsible for open or merge a case here."""
        if not local:
            return {}
        accepted = cases.accept(
            tx,
            [_incoming(p) for p in local],
            self_member=self._self,
            now=now,
            send_quality=self._send_quality,
        )
        if self._on_cases is not None:
            self._on_cases(tx, {r.case_id for r in accepted.results if r.case_id}, now)
        return dict(accepted.marks)

    def _store_remote(self, tx: Tx, remote: Sequence[Prepared], now: datetime) -> dict[str, Marks]:
        """Reports for another member are stored with their known-content marks and queued."""
        conn = tx.conn
        marks: dict[str, Marks] = {}
        if remote:
            known = hash_index.known_content(conn, (h for p in remote for h in p.report.hashes))
            remote_marks = [cases.marks_for(p.report, known) for p in remote]
            reports.insert(
                conn,
                [_incoming(p) for p in remote],
                [None] * len(remote),
                remote_marks,
                now,
            )
            marks.update({p.report.id: m for p, m in zip(remote, remote_marks, strict=True)})
            outbox.enqueue_stored(conn, [(p.decision.member, p.report.id) for p in remote], now)
            destinations = {p.decision.member for p in remote}
            if self._seal_early is not None:
                # Seals what it may and wakes, after COMMIT, the senders that must look.
                self._seal_early(tx, destinations)
            else:
                tx.after_commit.append(lambda: self._wake(destinations))
        return marks


def _incoming(p: Prepared) -> Incoming:
    """A report entered here; the consented region is stored beside it, never in its wire bytes."""
    region = p.submission.reporter_region
    return Incoming(p.report, p.wire, ReportRole.ORIGIN, reporter_region=region)


def _log_detail(decision: Decision, trace: Trace) -> DetailText:
    """The ``intake`` entry's detail: the decision and the addresses it rests on."""
    return detail_json(
        {
            "reason": decision.reason.value,
            "epoch": decision.manifest_epoch,
            "explanation": decision.explanation,
            "addresses": [a.address for a in trace.addresses],
        }
    )


def _pdq_of(items: Sequence[Item]) -> tuple[ContentHash | None, ...]:
    """Per item, its PDQ hash (with the submitted quality) or ``None``."""
    out: list[ContentHash | None] = []
    for item in items:
        found = None
        for h in item.hashes:
            if h.algorithm is HashAlgorithm.PDQ:
                found = h
                break
        out.append(found)
    return tuple(out)


def _no_pdq(result: IntakeResult) -> IntakeResult:
    """The answer ``PdqMatcher.match`` would give an item without a PDQ hash, without asking.
    (Built field by field: ``dataclasses.replace`` cost more than the rest of the answer.)"""
    items = tuple(ItemStatus(s.index, s.known, s.near, "no pdq hash") for s in result.items)
    r = result
    return IntakeResult(
        r.report_id, r.canonical_url, r.decision, items, r.duplicate, r.client_ref, r.wire, r.pdq
    )


def _statuses(marks: Marks) -> tuple[ItemStatus, ...]:
    return tuple(ItemStatus(i, m.sighting() if m else None) for i, m in enumerate(marks))


def _again(stored: StoredReport, client_ref: str, self_member: str) -> IntakeResult | InvalidReport:
    """The answer for a report id already held: the stored report, marked duplicate — or, for
    one anonymised under the retention period, a refusal: its URL is gone, and the same
    submission can never be a new report (its id is taken), so "duplicate" would mislead."""
    if stored.anonymised_at is not None:
        return InvalidReport(
            f"this node held the same report ({stored.report_id}: same URL and items) and "
            f"anonymised it on {stored.anonymised_at.date().isoformat()} under the retention "
            "period; it cannot be submitted again unchanged (report the items found now)",
            code="report-anonymised",
        )
    msg = parse_report(stored.wire)
    return IntakeResult(
        stored.report_id,
        stored.url,
        decision_from_proto(msg.decision, self_member),
        stored.items,
        duplicate=True,
        client_ref=client_ref,
        wire=stored.wire,
    )
