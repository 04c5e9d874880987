"""Law-enforcement partners: which cases each receives, and pulling and acknowledging them.

Rules from the settings say which partner receives which cases (e.g. the national police get
baseline and national cases hosted in the node's country). ``assign`` runs inside the writer
transaction that opens or merges a case, so an assignment is never lost or made twice.

Pulling works like a queue with a visibility timeout: a partner streams its unacknowledged,
visible cases after a cursor; each case handed out becomes invisible for the timeout and comes
again unless acknowledged. Every pull is recorded in the routing log (partner, case, time). A
partner only ever sees, pulls or acknowledges its own cases — another partner's case id is
answered exactly like an unknown one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from auth.errors import AuthError
from auth.manifest import Manifest
from exchange.domain import Classification
from exchange.store import schema
from exchange.store.sql import chunks, insert_ignore
from exchange.store.writer import Tx, Writer
from exchange.wire.codec import receipt_key_and_time

MAX_PULL = 1000


@dataclass(frozen=True, slots=True)
class PartnerRule:
    partner: str
    countries: frozenset[str]  # empty: any hosting country
    classifications: frozenset[Classification]

    def matches(self, country: str | None, classes: set[str]) -> bool:
        if self.countries and country not in self.countries:
            return False
        return any(c.value in classes for c in self.classifications)


@dataclass(frozen=True, slots=True)
class CaseReportView:
    report_id: str
    wire: bytes
    reporting_member: str
    receipt_body: bytes | None
    receipt_signature: bytes | None
    receipt_verified: bool
    receipt_time: datetime | None


@dataclass(frozen=True, slots=True)
class CaseView:
    id: str
    cursor: int
    url: str
    hosting_country: str | None
    opened_at: datetime
    reports: tuple[CaseReportView, ...]

    @property
    def reporting_members(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.reporting_member for r in self.reports))

    @property
    def takedown_clock_started(self) -> datetime | None:
        times = [r.receipt_time for r in self.reports if r.receipt_time is not None]
        return min(times) if times else None


class Partners:
    def __init__(
        self,
        *,
        self_member: str,
        rules: Sequence[PartnerRule],
        visibility_timeout: timedelta,
        writer: Writer,
        manifest: Callable[[], Manifest],
        clock: Callable[[], datetime],
    ) -> None:
        self._self = self_member
        self.rules = tuple(rules)
        self.partners = frozenset(r.partner for r in rules)
        self._timeout = visibility_timeout
        self._writer = writer
        self._manifest = manifest
        self._clock = clock

    # -- assignment (inside the writer transaction that opened or merged the cases) ----------

    def assign(self, tx: Tx, case_ids: Iterable[str], now: datetime) -> None:
        ids = sorted(set(case_ids))
        if not ids or not self.rules:
            return
        c, cr, it = schema.cases, schema.case_reports, schema.items
        facts: dict[str, tuple[str | None, set[str]]] = {}
        for part in chunks(ids):
            rows = tx.conn.execute(
                select(c.c.id, c.c.hosting_country, it.c.classification)
                .join(cr, cr.c.case_id == c.c.id)
                .join(it, it.c.report_id == cr.c.report_id)
                .where(c.c.id.in_(part))
            )
            for r in rows:
                facts.setdefault(r.id, (r.hosting_country, set()))[1].add(r.classification)
        assigned = [
            {
                "partner": rule.partner,
                "case_id": case_id,
                "assigned_at": now,
                "visible_after": None,
                "pulls": 0,
                "acked_at": None,
            }
            for case_id, (country, classes) in facts.items()
            for rule in self.rules
            if rule.matches(country, classes)
        ]
        insert_ignore(tx.conn, schema.partner_cases, assigned)

    # -- pull and acknowledge -----------------------------------------------------------------

    def pull(self, partner: str, after_cursor: int, limit: int) -> list[CaseView]:
        limit = max(1, min(limit or 100, MAX_PULL))
        return self._writer.execute(lambda tx: self._pull(tx, partner, after_cursor, limit))

    def _pull(self, tx: Tx, partner: str, after: int, limit: int) -> list[CaseView]:
        now = self._clock()
        pc = schema.partner_cases
        rows = tx.conn.execute(
            select(pc.c.cursor, pc.c.case_id)
            .where(
                pc.c.partner == partner,
                pc.c.acked_at.is_(None),
                pc.c.cursor > after,
                (pc.c.visible_after.is_(None)) | (pc.c.visible_after <= now),
            )
            .order_by(pc.c.cursor)
            .limit(limit)
        ).all()
        if not rows:
            return []
        tx.conn.execute(
            update(pc)
            .where(pc.c.cursor.in_([r.cursor for r in rows]))
            .values(visible_after=now + self._timeout, pulls=pc.c.pulls + 1)
        )
        views = _load_cases(tx.conn, {r.case_id: r.cursor for r in rows}, self._verify_receipt)
        for view in views:
            first = view.reports[0].report_id if view.reports else None
            tx.log(
                tx.chain.append(
                    now,
                    "pulled",
                    report_id=first,
                    member=partner,
                    country=view.hosting_country,
                    detail={"case": view.id, "cursor": view.cursor},
                )
            )
        return views

    def ack(self, partner: str, case_ids: Sequence[str]) -> tuple[int, list[str]]:
        return self._writer.execute(lambda tx: self._ack(tx, partner, case_ids))

    def _ack(self, tx: Tx, partner: str, case_ids: Sequence[str]) -> tuple[int, list[str]]:
        now = self._clock()
        pc = schema.partner_cases
        wanted = sorted(set(case_ids))
        held = {
            r.case_id: r.acked_at
            for r in tx.conn.execute(
                select(pc.c.case_id, pc.c.acked_at).where(
                    pc.c.partner == partner, pc.c.case_id.in_(wanted)
                )
            )
        }
        fresh = [cid for cid in wanted if cid in held and held[cid] is None]
        if fresh:
            tx.conn.execute(
                update(pc)
                .where(pc.c.partner == partner, pc.c.case_id.in_(fresh))
                .values(acked_at=now)
            )
            for cid in fresh:
                tx.log(tx.chain.append(now, "acked", member=partner, detail={"case": cid}))
        return len(fresh), [cid for cid in wanted if cid not in held]

    def _verify_receipt(self, body: bytes, signature: bytes, at: datetime, key_id: str) -> bool:
        try:
            self._manifest().verify_member_signature(self._self, key_id, at, body, signature)
        except AuthError:
            return False
        return True


ReceiptCheck = Callable[[bytes, bytes, datetime, str], bool]


def _load_cases(conn: Connection, cursors: dict[str, int], check: ReceiptCheck) -> list[CaseView]:
    c, cr, r, inbox = schema.cases, schema.case_reports, schema.reports, schema.inbox
    ids = sorted(cursors)
    cases = {row.id: row for row in conn.execute(select(c).where(c.c.id.in_(ids)))}
    members: dict[str, list[tuple[str, str]]] = {}
    for row in conn.execute(
        select(cr.c.case_id, cr.c.report_id, cr.c.reporting_member)
        .where(cr.c.case_id.in_(ids))
        .order_by(cr.c.at, cr.c.report_id)
    ):
        members.setdefault(row.case_id, []).append((row.report_id, row.reporting_member))
    report_ids = [rid for pairs in members.values() for rid, _ in pairs]
    reports = {
        row.id: row
        for part in chunks(report_ids)
        for row in conn.execute(
            select(r.c.id, r.c.wire, r.c.sender, r.c.envelope_sequence).where(r.c.id.in_(part))
        )
    }
    receipts: dict[tuple[str, int], tuple[bytes, bytes]] = {}
    for rep in reports.values():
        if rep.sender is not None and rep.envelope_sequence is not None:
            key = (rep.sender, rep.envelope_sequence)
            if key not in receipts:
                found = conn.execute(
                    select(inbox.c.receipt_body, inbox.c.receipt_signature).where(
                        inbox.c.sender == key[0], inbox.c.sequence == key[1]
                    )
                ).first()
                if found is not None:
                    receipts[key] = (found.receipt_body, found.receipt_signature)
    views = []
    for cid in sorted(ids, key=lambda i: cursors[i]):
        case = cases[cid]
        parts = []
        for rid, member in members.get(cid, []):
            rep = reports[rid]
            receipt = receipts.get((rep.sender, rep.envelope_sequence)) if rep.sender else None
            verified, at = False, None
            if receipt is not None:
                key_id, at = receipt_key_and_time(receipt[0])
                verified = check(receipt[0], receipt[1], at, key_id)
            parts.append(
                CaseReportView(
                    rid,
                    rep.wire,
                    member,
                    receipt[0] if receipt else None,
                    receipt[1] if receipt else None,
                    verified,
                    at,
                )
            )
        views.append(
            CaseView(
                cid, cursors[cid], case.url, case.hosting_country, case.opened_at, tuple(parts)
            )
        )
    return views
