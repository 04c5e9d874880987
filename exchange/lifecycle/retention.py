"""Retention: closed cases older than the configured period are anonymised, and the purge logged.

INHOPE members keep the figures and drop what could lead back to the content: once a case has
been closed longer than ``[lifecycle] retention_days`` (0 = never), its URL, its key, the
reports' notes, the traced host and addresses and every content hash are overwritten — the
classification, countries, hoster (ASN and AS organisation), site facts, the consented
reporter region and every time of the takedown clock stay for statistics (store/retention.py
says exactly what). At the origin, a report it sent is anonymised the same way once all its
items closed at the holder before the cutoff.

This node's own hash sightings of those reports are retracted, here and — through retraction
announcements, as for a withdrawal — at every peer, so no index links a hash to the case any
more. Each batch (at most ``batch`` cases) is one writer transaction ending in one
``anonymised`` routing-log entry (counts, case and report ids, the cutoff): the purge is itself
part of the tamper-evident history, and the log's earlier entries are untouched, so it still
verifies. What the log's earlier entries themselves say (report ids, the intake entry's
addresses) stays, as any rewrite would break the chain.

Anonymised reports' wire bytes are the redacted report, no longer what was signed: the row's
``anonymised_at`` says so and ``ihx verify-report`` answers "anonymised". A report id is implied
by its origin, URL and items, so the same submission later would be that report again: intake
refuses it (``report-anonymised``) instead of answering "duplicate" of a report with no URL.

The node runs ``Retention`` in a background thread every ``retention_check_s`` seconds;
``ihx cases purge`` runs the same purge (or a dry run) from the command line. The clock is
injected, so tests move time instead of waiting a year.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from common.clock import Clock
from common.periodic import Periodic
from exchange.domain import LogKind
from exchange.lifecycle.sightings import retract_unsupported
from exchange.store import retention as store
from exchange.store import transfers
from exchange.store.writer import Priority, Tx, Writer
from exchange.wire.codec import anonymised_report

log = logging.getLogger(__name__)

BATCH = 200


@dataclass(frozen=True, slots=True)
class Purge:
    """What a purge anonymised (or, in a dry run, would anonymise)."""

    retention_days: int
    cutoff: datetime | None  # None: retention is off (0 days)
    cases: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()
    sightings_retracted: int = 0
    dry_run: bool = False

    def __add__(self, other: Purge) -> Purge:
        return Purge(
            self.retention_days,
            self.cutoff,
            self.cases + other.cases,
            self.reports + other.reports,
            self.sightings_retracted + other.sightings_retracted,
            self.dry_run,
        )


@dataclass(frozen=True, slots=True)
class _Due:
    cases: list[str]
    reports: list[str]


class Retention:
    """Anonymises what is due; ``start`` runs it periodically in the background."""

    def __init__(
        self,
        *,
        self_member: str,
        writer: Writer,
        engine: Engine,
        clock: Clock,
        retention_days: int,
        check_interval: float = 3600.0,
        batch: int = BATCH,
    ) -> None:
        self._self = self_member
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self.retention_days = retention_days
        self._batch = batch
        self._loop = Periodic("ihx-retention", check_interval, self._round)

    # -- one purge --------------------------------------------------------------------------

    def purge(self, *, dry_run: bool = False) -> Purge:
        """Anonymise everything due now (batch after batch); a dry run only reports it."""
        now = self._clock()
        if self.retention_days == 0:
            return Purge(0, None, dry_run=dry_run)
        cutoff = now - timedelta(days=self.retention_days)
        total = Purge(self.retention_days, cutoff, dry_run=dry_run)
        if dry_run:
            with self._engine.connect() as conn:
                due = self._due(conn, cutoff, limit=2**31 - 1)
            return total + Purge(self.retention_days, cutoff, tuple(due.cases), tuple(due.reports))
        while True:
            done = self._writer.execute(
                lambda tx: self._anonymise(tx, now, cutoff), Priority.BACKGROUND
            )
            if not done.cases and not done.reports:
                return total
            total = total + done

    def _due(self, conn: Connection, cutoff: datetime, limit: int) -> _Due:
        cases = store.cases_due(conn, cutoff, limit)
        held = store.reports_of(conn, cases)
        sent = store.sent_reports_due(conn, self._self, cutoff, limit)
        return _Due(cases, [*held, *sent])

    def _anonymise(self, tx: Tx, now: datetime, cutoff: datetime) -> Purge:
        due = self._due(tx.conn, cutoff, self._batch)
        if not due.cases and not due.reports:
            return Purge(self.retention_days, cutoff)
        redacted = {
            rid: anonymised_report(w) for rid, w in store.wires(tx.conn, due.reports).items()
        }
        store.anonymise_cases(tx.conn, due.cases, now)
        store.anonymise_reports(tx.conn, redacted, now)
        transfers.redact(tx.conn, due.cases)  # a moved case's transfers carry its URL too
        retracted = self._retract_sightings(tx, due.reports, now)
        done = Purge(self.retention_days, cutoff, tuple(due.cases), tuple(due.reports), retracted)
        tx.log(
            tx.chain.append(
                now,
                LogKind.ANONYMISED,
                member=self._self,
                detail={
                    "retention_days": self.retention_days,
                    "cutoff": cutoff.isoformat(),
                    "cases": len(done.cases),
                    "case_ids": list(done.cases),
                    "reports": len(done.reports),
                    "report_ids": list(done.reports),
                    "sightings_retracted": retracted,
                },
            )
        )
        return done

    def _retract_sightings(self, tx: Tx, report_ids: list[str], now: datetime) -> int:
        """This node's sightings of the purged reports, here and at every peer — unless a live
        report still carries the hash (the purged ones' hashes are gone already)."""
        return len(retract_unsupported(tx, self._self, report_ids, now))

    # -- in the background --------------------------------------------------------------------

    def start(self) -> None:
        """Purge every ``check_interval`` seconds until ``stop`` (nothing when retention is 0)."""
        if self.retention_days != 0:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _round(self) -> None:
        done = self.purge()
        if done.cases or done.reports:
            log.info(
                "retention anonymised closed cases",
                extra={"cases": len(done.cases), "reports": len(done.reports)},
            )
