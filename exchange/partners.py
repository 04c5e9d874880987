"""Law-enforcement partners: which cases each receives, and pulling and acknowledging them.

Rules from the settings say which partner receives which cases (e.g. the national police get
baseline and national cases hosted in the node's country). ``assign`` runs inside the writer
transaction that opens or merges a case, so an assignment is never lost or made twice.

Pulling works like a queue with a visibility timeout: a partner streams its unacknowledged,
visible cases after a cursor; each case handed out becomes invisible for the timeout and comes
again unless acknowledged. Every pull is recorded in the routing log (partner, case, time). A
partner only ever sees, pulls or acknowledges its own cases — another partner's case id is
answered exactly like an unknown one.

A pulled case carries its lifecycle as this node (the holder) knows it: each item's state, the
timeline of signed events, whether it is still open and whether every report of it was
withdrawn. A step on an acknowledged case offers it again (``store.partners.reoffer``), so the
partner's next pull shows the new state. A partner may record its own feedback on its cases
(audited in the routing log, shown in the case at this node).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from auth.errors import AuthError
from auth.manifest import Manifest
from common.clock import Clock
from exchange.domain import CaseReportView, CaseView, Classification, LogKind, is_case_id
from exchange.errors import InvalidReport, NotFound, QuotaExceeded
from exchange.lifecycle.model import CaseEvent, ItemState
from exchange.store import cases as case_store
from exchange.store import inbox, reports
from exchange.store import lifecycle as lifecycle_store
from exchange.store import partners as partner_store
from exchange.store.writer import Tx, Writer
from exchange.wire.case_codec import event_from_bytes
from exchange.wire.codec import receipt_key_and_time

MAX_PULL = 1000
MIN_VISIBILITY = timedelta(seconds=1)
MAX_VISIBILITY = timedelta(days=1)  # as [partners] visibility_timeout_s


@dataclass(frozen=True, slots=True)
class PulledPage:
    """One pull: its cases, and until when they stay hidden from the next pulls."""

    cases: list[CaseView]
    invisible_until: datetime


MAX_FEEDBACK_PER_CASE = 100  # a partner's notes on one case: far above use, far below abuse


@dataclass(frozen=True, slots=True)
class PartnerRule:
    partner: str
    countries: frozenset[str]  # empty: any hosting country
    classifications: frozenset[Classification]

    def matches(self, country: str | None, classes: set[str]) -> bool:
        if self.countries and country not in self.countries:
            return False
        return any(c.value in classes for c in self.classifications)


class Partners:
    def __init__(
        self,
        *,
        self_member: str,
        rules: Sequence[PartnerRule],
        visibility_timeout: timedelta,
        writer: Writer,
        manifest: Callable[[], Manifest],
        clock: Clock,
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
        facts = case_store.partner_facts(tx.conn, ids)
        assigned = [
            partner_store.Assignment(rule.partner, case_id)
            for case_id, (country, classes) in facts.items()
            for rule in self.rules
            if rule.matches(country, classes)
        ]
        partner_store.assign(tx.conn, assigned, now)

    # -- pull and acknowledge -----------------------------------------------------------------

    def pull(self, partner: str, after_cursor: int, limit: int) -> list[CaseView]:
        return self.pull_page(partner, after_cursor, limit).cases

    def pull_page(
        self, partner: str, after_cursor: int, limit: int, visibility: timedelta | None = None
    ) -> PulledPage:
        """The partner's next visible cases, hidden until ``invisible_until`` (``visibility``
        from now, default the node's timeout) unless acknowledged."""
        limit = max(1, min(limit or 100, MAX_PULL))
        if visibility is not None and not MIN_VISIBILITY <= visibility <= MAX_VISIBILITY:
            raise InvalidReport(
                f"visibility: from {MIN_VISIBILITY.seconds} to {MAX_VISIBILITY.days * 86400} "
                "seconds",
                code="pull-visibility",
            )
        hide_for = self._timeout if visibility is None else visibility
        return self._writer.execute(
            lambda tx: self._pull(tx, partner, after_cursor, limit, hide_for)
        )

    def _pull(
        self, tx: Tx, partner: str, after: int, limit: int, hide_for: timedelta
    ) -> PulledPage:
        now = self._clock()
        hide_until = now + hide_for
        cursors = partner_store.take_visible(
            tx.conn, partner, after=after, limit=limit, now=now, hide_until=hide_until
        )
        if not cursors:
            return PulledPage([], hide_until)
        views = _load_cases(tx.conn, cursors, self._verify_receipt)
        for view in views:
            first = view.reports[0].report_id if view.reports else None
            tx.log(
                tx.chain.append(
                    now,
                    LogKind.PULLED,
                    report_id=first,
                    member=partner,
                    country=view.hosting_country,
                    detail={"case": view.id, "cursor": view.cursor},
                )
            )
        return PulledPage(views, hide_until)

    def ack(self, partner: str, case_ids: Sequence[str]) -> tuple[int, list[str]]:
        return self._writer.execute(lambda tx: self._ack(tx, partner, case_ids))

    def _ack(self, tx: Tx, partner: str, case_ids: Sequence[str]) -> tuple[int, list[str]]:
        now = self._clock()
        wanted = sorted(set(case_ids))
        # Only ids of the form this node hands out can be held: nothing else reaches a query.
        held = partner_store.ack_state(tx.conn, partner, [c for c in wanted if is_case_id(c)])
        fresh = [cid for cid in wanted if cid in held and held[cid] is None]
        if fresh:
            partner_store.mark_acked(tx.conn, partner, fresh, now)
            for cid in fresh:
                tx.log(tx.chain.append(now, LogKind.ACKED, member=partner, detail={"case": cid}))
        return len(fresh), [cid for cid in wanted if cid not in held]

    def assigned(self, tx: Tx, partner: str, case_id: str) -> bool:
        """Is the case assigned to this partner (so it may act on it: feedback, holds)?"""
        return is_case_id(case_id) and bool(partner_store.ack_state(tx.conn, partner, [case_id]))

    def feedback(self, partner: str, case_id: str, code: str, note: str) -> datetime:
        """Record a partner's feedback on one of its cases (audited); returns when."""
        return self._writer.execute(lambda tx: self._feedback(tx, partner, case_id, code, note))

    def _feedback(self, tx: Tx, partner: str, case_id: str, code: str, note: str) -> datetime:
        now = self._clock()
        if not self.assigned(tx, partner, case_id):
            raise NotFound(f"no case {case_id} for partner {partner}")
        if partner_store.feedback_count(tx.conn, partner, case_id) >= MAX_FEEDBACK_PER_CASE:
            raise QuotaExceeded(
                f"case {case_id} holds {MAX_FEEDBACK_PER_CASE} feedback notes of {partner} "
                "already: the most a partner keeps on one case"
            )
        partner_store.add_feedback(tx.conn, partner, case_id, code, note, now)
        tx.log(
            tx.chain.append(
                now,
                LogKind.FEEDBACK,
                member=partner,
                detail={"case": case_id, "code": code, "note_chars": len(note)},
            )
        )
        return now

    def _verify_receipt(self, body: bytes, signature: bytes, at: datetime, key_id: str) -> bool:
        try:
            self._manifest().verify_member_signature(self._self, key_id, at, body, signature)
        except AuthError:
            return False
        return True


ReceiptCheck = Callable[[bytes, bytes, datetime, str], bool]


def _load_cases(conn: Connection, cursors: dict[str, int], check: ReceiptCheck) -> list[CaseView]:
    """The cases as the partner receives them, in cursor order, each report with the receipt
    that started the takedown clock (verified against this node's key)."""
    ids = sorted(cursors)
    heads = case_store.headers(conn, ids)
    members = case_store.members(conn, ids)
    origins = reports.origins(conn, [rid for pairs in members.values() for rid, _ in pairs])
    lifecycle = _lifecycle(conn, {cid: members.get(cid, []) for cid in ids})
    receipts: dict[tuple[str, int], tuple[bytes, bytes] | None] = {}
    for rep in origins.values():
        if rep.sender is not None and rep.envelope_sequence is not None:
            key = (rep.sender, rep.envelope_sequence)
            if key not in receipts:
                receipts[key] = inbox.receipt_of(conn, *key)
    views = []
    for cid in sorted(ids, key=lambda i: cursors[i]):
        parts = []
        for rid, member in members.get(cid, []):
            rep = origins[rid]
            receipt = (
                receipts.get((rep.sender, rep.envelope_sequence))
                if rep.sender and rep.envelope_sequence is not None
                else None
            )
            parts.append(_report_view(rid, rep.wire, member, receipt, check))
        head = heads[cid]
        items, timeline, withdrawn = lifecycle[cid]
        views.append(
            CaseView(
                cid,
                cursors[cid],
                head.url,
                head.hosting_country,
                head.opened_at,
                tuple(parts),
                items=items,
                timeline=timeline,
                withdrawn=withdrawn,
            )
        )
    return views


Lifecycle = tuple[tuple[ItemState, ...], tuple[CaseEvent, ...], bool]


def _lifecycle(conn: Connection, members: dict[str, list[tuple[str, str]]]) -> dict[str, Lifecycle]:
    """Case id → (its items' states, its timeline in this node's order, all reports withdrawn)."""
    ids = sorted(members)
    states = lifecycle_store.states(conn, ids)
    timelines: dict[str, list[CaseEvent]] = {}
    for _, payload in lifecycle_store.case_payloads(conn, ids):
        event = event_from_bytes(payload)
        timelines.setdefault(event.case_id, []).append(event)
    facts = reports.facts(conn, [rid for pairs in members.values() for rid, _ in pairs])
    return {
        cid: (
            tuple(states.get(cid, ())),
            tuple(timelines.get(cid, ())),
            bool(members[cid])
            and all(facts[rid].withdrawn_at is not None for rid, _ in members[cid]),
        )
        for cid in ids
    }


def _report_view(
    rid: str, wire: bytes, member: str, receipt: tuple[bytes, bytes] | None, check: ReceiptCheck
) -> CaseReportView:
    if receipt is None:
        return CaseReportView(rid, wire, member, None, None, False, None)
    key_id, at = receipt_key_and_time(receipt[0])
    return CaseReportView(
        rid, wire, member, receipt[0], receipt[1], check(receipt[0], receipt[1], at, key_id), at
    )
