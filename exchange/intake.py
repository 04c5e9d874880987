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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from auth.manifest import Manifest
from exchange import cases
from exchange.domain import (
    Classification,
    ItemStatus,
    Report,
    Sighting,
    Submission,
    report_id_for,
)
from exchange.errors import InvalidReport
from exchange.ops.json_logging import ids_field
from exchange.ops.metrics import Metrics
from exchange.store import outbox, schema
from exchange.store.writer import Coalescer, Tx, Writer
from exchange.wire.codec import decision_from_proto, parse_report, report_to_proto
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


@dataclass(frozen=True, slots=True)
class IntakeResult:
    report_id: str
    canonical_url: str
    decision: Decision
    items: tuple[ItemStatus, ...]
    duplicate: bool
    client_ref: str
    wire: bytes  # the stored wire report (carries the trace)


class Intake:
    def __init__(
        self,
        *,
        self_member: str,
        tracer: Tracer,
        manifest: Callable[[], Manifest],
        writer: Writer,
        clock: Callable[[], datetime],
        wake: Callable[[set[str]], None],
        on_cases: CasesHook | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._self = self_member
        self._tracer = tracer
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self._wake = wake
        self._on_cases = on_cases
        self._metrics = metrics
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
        wire = report_to_proto(report, trace, decision).SerializeToString(deterministic=True)
        if len(wire) > MAX_REPORT_BYTES:
            # Every receiver refuses a larger payload, so it could never be delivered.
            raise InvalidReport(
                f"the report is {len(wire)} bytes serialized; at most {MAX_REPORT_BYTES} can be "
                "exchanged: split its items over several reports",
                code="report-too-large",
            )
        return Prepared(submission, report, wire, decision, trace)

    def submit_prepared(self, prepared: Prepared) -> Future[IntakeResult]:
        return self._writer.submit_item(self._coalescer, prepared)

    def submit(self, submission: Submission) -> IntakeResult:
        return self.submit_prepared(self.prepare(submission)).result()

    # -- in the writer ------------------------------------------------------------------------

    def _commit(self, tx: Tx, batch: Sequence[Prepared]) -> list[IntakeResult]:
        now = self._clock()
        conn = tx.conn
        held = cases.existing_reports(conn, [p.report.id for p in batch])
        fresh: list[Prepared] = []
        seen: set[str] = set()
        for p in batch:
            if p.report.id not in held and p.report.id not in seen:
                seen.add(p.report.id)
                fresh.append(p)

        for p in fresh:
            d = p.decision
            tx.log(
                tx.chain.append(
                    now,
                    "intake",
                    report_id=p.report.id,
                    member=d.member,
                    country=d.country,
                    detail={
                        "reason": d.reason.value,
                        "epoch": d.manifest_epoch,
                        "explanation": d.explanation,
                        "addresses": [a.address for a in p.trace.addresses],
                    },
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
        local = [p for p in fresh if p.decision.local]
        remote = [p for p in fresh if not p.decision.local]
        marks: dict[str, cases.Marks] = {}
        if local:
            accepted = cases.accept(
                tx,
                [cases.Incoming(p.report, p.wire, "origin") for p in local],
                self_member=self._self,
                now=now,
            )
            marks.update(accepted.marks)
            if self._on_cases is not None:
                self._on_cases(tx, {r.case_id for r in accepted.results if r.case_id}, now)
        if remote:
            known = cases.known_content(conn, (h for p in remote for h in p.report.hashes))
            remote_marks = [cases.marks_for(p.report, known) for p in remote]
            cases.insert_report_rows(
                conn,
                [cases.Incoming(p.report, p.wire, "origin") for p in remote],
                [None] * len(remote),
                remote_marks,
                now,
            )
            marks.update({p.report.id: m for p, m in zip(remote, remote_marks, strict=True)})
            outbox.enqueue(
                conn, [outbox.Queued(p.decision.member, p.report.id, p.wire) for p in remote], now
            )
            destinations = {p.decision.member for p in remote}
            tx.after_commit.append(lambda: self._wake(destinations))

        stored = _stored(tx, [p.report.id for p in batch if p.report.id in held])
        first_of = {p.report.id: p for p in reversed(fresh)}
        results = []
        for p in batch:
            if p.report.id in held:
                results.append(stored[p.report.id].with_ref(p.submission.client_ref, self._self))
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
                )
            )
        return results


def _statuses(marks: cases.Marks) -> tuple[ItemStatus, ...]:
    return tuple(ItemStatus(i, m.sighting() if m else None) for i, m in enumerate(marks))


@dataclass(frozen=True, slots=True)
class _Stored:
    report_id: str
    url: str
    wire: bytes
    items: tuple[ItemStatus, ...]

    def with_ref(self, client_ref: str, self_member: str) -> IntakeResult:
        msg = parse_report(self.wire)
        return IntakeResult(
            self.report_id,
            self.url,
            decision_from_proto(msg.decision, self_member),
            self.items,
            duplicate=True,
            client_ref=client_ref,
            wire=self.wire,
        )


def _stored(tx: Tx, ids: Sequence[str]) -> dict[str, _Stored]:
    if not ids:
        return {}
    reports, items = schema.reports, schema.items
    out: dict[str, _Stored] = {}
    statuses: dict[str, list[ItemStatus]] = {}
    rows = tx.conn.execute(select(items).where(items.c.report_id.in_(ids)).order_by(items.c.idx))
    for r in rows:
        statuses.setdefault(r.report_id, []).append(ItemStatus(r.idx, _known_from_row(r)))
    for r in tx.conn.execute(
        select(reports.c.id, reports.c.url, reports.c.wire).where(reports.c.id.in_(ids))
    ):
        out[r.id] = _Stored(r.id, r.url, r.wire, tuple(statuses.get(r.id, ())))
    return out


def _known_from_row(r: Any) -> Sighting | None:
    if r.known_member is None:
        return None
    return Sighting(
        r.known_member,
        r.known_case,
        Classification(r.known_classification),
        r.known_first_seen,
        r.known_report or "",
    )
