"""The new holder's side of a move: a transfer checked, then taken in exactly once.

Outside the writer (``check``), a transfer payload is decoded and verified (``checks.py``);
anything wrong is refused in the receipt, with its reason, and nothing of it is stored. Inside
the writer (``apply``), each transfer runs in its own savepoint:

* a transfer already taken in (the same move and report) is answered as before; one naming an
  item this node holds already (brought by another move) is refused (``already-held``);
* the report's items go into the case an earlier part of the same move opened, else this
  node's open case for the URL, else a new case hosted in the move's country — linked to the old
  holder's case (``cases.moved_from_*``); parts of one move must share one URL;
* the report is stored as a received report (``cases.accept_moved``), its origin the reporting
  member, so this node's later steps go to the origins and the coordinator;
* the moved items start here unassessed — national classification is each country's own law —
  with their takedown clock at this receipt; the old holder's steps stay readable as its
  history (``case_transfers``), never folded into this node's states;
* a signed take-over (``EventKind.TAKEN_OVER``) goes to every member of the case and the
  coordinator, who accept it only from the member the move named;
* the routing log gets a ``transferred`` entry, and a ``geo-disagreement`` when this node's
  GeoIP places the old holder's trace elsewhere than the move said.

After all of an envelope's transfers, the cases touched go to the node's cases hook (partners'
rules, catching up members that joined a case with a history), like reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.manifest import Manifest
from exchange import cases
from exchange.domain import LogKind, Outcome, PayloadResult, ReportRole, rejected
from exchange.errors import ExchangeError, TransferRefused, error_code, error_message
from exchange.intake import CasesHook
from exchange.lifecycle.model import (
    CaseEvent,
    EventKind,
    ItemState,
    Stage,
    TakeOver,
    event_id_for,
    take_over_scope,
)
from exchange.lifecycle.record import Carrier, Recorder
from exchange.store import cases as case_store
from exchange.store import lifecycle as lifecycle_store
from exchange.store import transfers
from exchange.store.reports import Incoming
from exchange.store.writer import Tx
from exchange.time_window import TimeWindow
from exchange.trace_review import Locate
from exchange.transfer.checks import Verified, verify_transfer
from exchange.wire.transfer_codec import transfer_from_bytes
from routing.errors import RoutingError


@dataclass(frozen=True, slots=True)
class CheckedTransfer:
    """A transfer that passed its checks, with where it sat in its envelope."""

    index: int
    payload: bytes
    carrier: Carrier
    verified: Verified


def transfer_case_id(moved_event: str, report_id: str) -> str:
    """The id of a case a transfer opens: implied by the move and the report, so it can never
    be the id of a case this node opened before for the same report (it came back)."""
    digest = hashlib.sha256(f"transfer\x00{moved_event}\x00{report_id}".encode()).hexdigest()
    return "c-" + digest[:32]


class Arrivals:
    def __init__(
        self,
        *,
        self_member: str,
        manifest: Callable[[], Manifest],
        recorder: Recorder,
        max_skew: timedelta,
        locate: Locate | None = None,
        on_cases: CasesHook | None = None,
    ) -> None:
        self._self = self_member
        self._manifest = manifest
        self._recorder = recorder
        self._max_skew = max_skew
        self._locate = locate
        self._on_cases = on_cases

    def check(
        self,
        index: int,
        payload: bytes,
        *,
        sender: str,
        sequence: int,
        proof: bytes,
        window: TimeWindow,
    ) -> CheckedTransfer | PayloadResult:
        try:
            verified = verify_transfer(
                transfer_from_bytes(payload),
                sender=sender,
                self_member=self._self,
                manifest=self._manifest(),
                window=window,
                max_skew=self._max_skew,
                locate=self._locate,
            )
        except (ExchangeError, RoutingError) as error:
            return rejected(index, "", error_code(error), error_message(error))
        return CheckedTransfer(index, payload, Carrier(sender, sequence, index, proof), verified)

    def apply(
        self, tx: Tx, checked: Sequence[CheckedTransfer], now: datetime
    ) -> list[PayloadResult]:
        """Take in an envelope's transfers, in order, each on its own; one result per transfer."""
        out: list[PayloadResult] = []
        touched: set[str] = set()
        for c in checked:
            try:
                result = tx.attempt(lambda c=c: self._take(tx, c, now))  # type: ignore[misc]
            except ExchangeError as error:
                out.append(rejected(c.index, "", error_code(error), error_message(error)))
                continue
            out.append(result)
            touched.add(result.case_id)
        if touched and self._on_cases is not None:
            self._on_cases(tx, touched, now)
        return out

    def _take(self, tx: Tx, c: CheckedTransfer, now: datetime) -> PayloadResult:
        v = c.verified
        moved, report = v.transfer.moved, v.report
        earlier = transfers.received(tx.conn, moved.id, report.id)
        if earlier is not None:  # exactly once: the same answer again, nothing changed
            return PayloadResult(
                c.index, report.id, Outcome(earlier.outcome or "merged"), earlier.to_case or ""
            )
        self._check_not_held(tx, v)
        case_id, opened = self._case_for(tx, v)
        inc = Incoming(
            report,
            v.transfer.report,
            ReportRole.RECEIVED,
            sender=c.carrier.sender,
            sequence=c.carrier.sequence,
            leaf_index=c.carrier.leaf_index,
            proof=c.carrier.proof,
            geo=v.geo,
        )
        states = cases.accept_moved(
            tx,
            inc,
            case_id=case_id,
            opened=opened,
            country=v.country,
            items=v.items,
            orphaned=v.orphaned,
            self_member=self._self,
            now=now,
        )
        case_store.set_moved_from(tx.conn, case_id, moved.member, moved.case_id)
        outcome = Outcome.NEW_CASE if opened else Outcome.MERGED
        transfers.record(tx.conn, [self._row(c, case_id, outcome, now)])
        self._log(tx, c, case_id, len(states), now)
        if states:
            self._take_over(tx, v, case_id, states, now)
        return PayloadResult(c.index, report.id, outcome, case_id)

    def _check_not_held(self, tx: Tx, v: Verified) -> None:
        """A moved item this node holds already (an earlier transfer brought it, whatever its
        move) is refused: a former holder's fresh ``moved`` must not re-open a case worked to
        its end here, nor open a second one. An item this node moved on since may come back."""
        moved = set(v.items)
        for case_id, s in lifecycle_store.states_of_report(tx.conn, v.report.id):
            if s.ref.index in moved and s.holder == self._self and s.stage is not Stage.MOVED:
                earlier = transfers.latest_received(tx.conn, v.report.id)
                by = f" since move {earlier.moved_event}" if earlier is not None else ""
                raise TransferRefused(
                    f"item {v.report.id}#{s.ref.index} is held here already, in case "
                    f"{case_id}{by} ({s.stage.value}); a new move of it takes nothing in",
                    code="already-held",
                )

    def _case_for(self, tx: Tx, v: Verified) -> tuple[str, bool]:
        """The case the report's items go into, and whether it is opened now."""
        conn, report = tx.conn, v.report
        earlier = transfers.case_of_move(conn, v.transfer.moved.id)
        if earlier is not None and case_store.url_key_of(conn, earlier) != report.url_key:
            raise TransferRefused(
                f"report {report.id} is about another URL than the move's other reports",
                code="url-key-mismatch",
            )
        found = case_store.open_by_url(conn, [report.url_key]).get(report.url_key)
        if found is not None:
            return found, False
        return transfer_case_id(v.transfer.moved.id, report.id), True

    def _row(
        self, c: CheckedTransfer, case_id: str, outcome: Outcome, now: datetime
    ) -> transfers.Transfer:
        v = c.verified
        moved = v.transfer.moved
        return transfers.Transfer(
            moved_event=moved.id,
            report_id=v.report.id,
            role=transfers.RECEIVED,
            from_member=moved.member,
            from_case=moved.case_id,
            to_member=self._self,
            to_case=case_id,
            country=v.country,
            moved_at=moved.at,
            items=len(v.items),
            stored_at=now,
            outcome=outcome.value,
            payload=c.payload,
            sender=c.carrier.sender,
            envelope_sequence=c.carrier.sequence,
            leaf_index=c.carrier.leaf_index,
            proof=c.carrier.proof,
            geo_country=v.geo.country if v.geo is not None else None,
            geo_agrees=v.geo.agrees if v.geo is not None else None,
            receipted_at=now,
        )

    def _log(self, tx: Tx, c: CheckedTransfer, case_id: str, new: int, now: datetime) -> None:
        v = c.verified
        moved = v.transfer.moved
        detail: dict[str, object] = {
            "case": case_id,
            "from": moved.member,
            "from_case": moved.case_id,
            "event": moved.id,
            "items": new,
            "sha256": hashlib.sha256(c.payload).hexdigest(),
        }
        tx.log(
            tx.chain.append(
                now,
                LogKind.TRANSFERRED,
                report_id=v.report.id,
                member=moved.member,
                country=v.country,
                detail=detail,
            )
        )
        if v.geo is not None and not v.geo.agrees:
            tx.log(
                tx.chain.append(
                    now,
                    LogKind.GEO_DISAGREEMENT,
                    report_id=v.report.id,
                    member=moved.member,
                    country=v.geo.country,
                    detail={
                        "sender_country": v.country,
                        "own_country": v.geo.country,
                        "reroute_to": v.geo.reroute_to,
                        "moved": moved.id,
                    },
                )
            )

    def _take_over(
        self, tx: Tx, v: Verified, case_id: str, states: Sequence[ItemState], now: datetime
    ) -> None:
        """This node's signed take-over of the items, to every member of the case and the
        coordinator (the members that joined now get the case's earlier steps after it)."""
        moved = v.transfer.moved
        scope = take_over_scope(moved.id, v.report.id)
        event = CaseEvent(
            id=event_id_for(self._self, scope, 1),
            case_id=case_id,
            member=self._self,
            sequence=1,
            at=now,
            items=tuple(s.ref for s in states),
            kind=EventKind.TAKEN_OVER,
            body=TakeOver(moved.member, moved.case_id, moved.id, v.country),
        )
        linked = case_store.members(tx.conn, [case_id]).get(case_id, [])
        recipients = {m for _, m in linked} | {self._manifest().coordinator}
        self._recorder.own(tx, event, states, sorted(recipients), now)
