"""What the new holder verifies of a transfer before it believes any of it.

The envelope's signature proves the old holder sent it, nothing more. A transfer is taken in
only if every one of these holds (the first that fails names the refusal, in the receipt):

* the ``moved`` event is the signer's own (maker, implied id, a time in its window), a move
  naming this member, to a country this member serves by the routing rules;
* the report is sound (canonical URL, key, the id its contents imply) and its origin's own
  signed decision names the signer — the member a report went to is the one that may pass it
  on (a report the signer made itself and decided locally needs no other evidence);
* otherwise the origin's evidence verifies: the origin's envelope header, addressed to the
  signer, signed by the origin's key valid at that time, with the report's bytes as a leaf of
  its Merkle root;
* the report passes what a report sent directly passes (its origin's window: the envelope's
  for the signer's own report, the origin's envelope's otherwise): its ``received_at`` in that
  window, its decision under a manifest epoch this node knows, its trace well formed — a move
  is no way around the report checks;
* the moved items are items of this report, with the origin's own classification;
* the history is the signer's own earlier steps on this report's items, in order;
* the signer's trace is well formed and placed with this node's own GeoIP (agreement recorded).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import DecodeError

from auth import merkle
from auth.errors import AuthError
from auth.manifest import Manifest
from exchange.cases import ORPHAN_REASONS
from exchange.domain import Report, report_id_for
from exchange.errors import ExchangeError, TransferRefused
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    CaseEvent,
    EventKind,
    TakeOver,
    event_id_for,
    take_over_scope,
)
from exchange.time_window import TimeWindow
from exchange.trace_review import GeoCheck, Locate, review_moved_trace, review_trace
from exchange.wire.codec import from_timestamp, parse_report, report_from_proto
from exchange.wire.envelope import KIND_REPORT
from exchange.wire.known_fields import require_exact
from exchange.wire.transfer_codec import OriginEvidence, ReceivedTransfer
from ihx.v1 import exchange_pb2 as xpb
from routing.canonical import canonicalize
from routing.decision import decide
from routing.errors import RoutingError


@dataclass(frozen=True, slots=True)
class Verified:
    """A transfer that passed every check: its report, the moved items and this node's view
    of the old holder's trace."""

    transfer: ReceivedTransfer
    report: Report
    country: str
    items: tuple[int, ...]
    geo: GeoCheck | None
    orphaned: bool  # this member serves the country by an orphan rule or as the fallback


def _refuse(code: str, message: str) -> TransferRefused:
    return TransferRefused(message, code=code)


def verify_transfer(
    t: ReceivedTransfer,
    *,
    sender: str,
    self_member: str,
    manifest: Manifest,
    window: TimeWindow,
    max_skew: timedelta,
    locate: Locate | None,
) -> Verified:
    """Every check of the module docstring, in order; raises ``TransferRefused`` (or the
    report's own ``InvalidReport``) naming the first that fails."""
    moved = t.moved
    country, orphaned = _check_move(moved, sender, self_member, manifest, window)
    report = check_report(t.report, sender)
    origin_window = window
    if report.origin_member == sender:
        if t.origin is not None:
            raise _refuse("transfer-invalid", "origin evidence for a report the signer made")
    elif t.origin is None:
        raise _refuse("origin-evidence", f"no evidence from {report.origin_member}, its origin")
    else:
        origin_window = check_origin(t.report, report, t.origin, sender, manifest, max_skew)
    check_report_claims(t.report, report, origin_window, manifest, self_member)
    items = _check_items(moved, report)
    _check_history(t.history, moved, report.id, window)
    geo = None
    if t.trace is not None:
        try:
            geo = review_moved_trace(
                t.trace,
                host=canonicalize(report.url).host,
                country=country,
                window=window,
                locate=locate,
                manifest=manifest,
                self_member=self_member,
            )
        except (ExchangeError, RoutingError) as error:
            raise _refuse("transfer-trace", error.message) from None
    return Verified(t, report, country, items, geo, orphaned)


def _check_move(
    moved: CaseEvent, sender: str, self_member: str, manifest: Manifest, window: TimeWindow
) -> tuple[str, bool]:
    if moved.member != sender:
        raise _refuse("origin-mismatch", f"the move was made by {moved.member}, not the signer")
    if event_id_for(moved.member, moved.case_id, moved.sequence) != moved.id:
        raise _refuse("event-id-mismatch", "the move's id does not match its contents")
    body = moved.body
    if moved.kind is not EventKind.ACTION or not isinstance(body, Action):
        raise _refuse("transfer-invalid", "moved: not an action")
    if body.kind is not ActionKind.MOVED:
        raise _refuse("transfer-invalid", f"moved: a {body.kind} action, not a move")
    problem = window.problem(moved.at, "moved.at")
    if problem is not None:
        raise _refuse("event-time-range", problem)
    if body.moved_to_member != self_member:
        raise _refuse("not-responsible", f"the move names {body.moved_to_member}")
    decision = decide(body.moved_to_country, manifest, self_member)
    if decision.member != self_member:
        raise _refuse(
            "not-responsible",
            f"{body.moved_to_country} is {decision.member}'s by the routing rules, not ours",
        )
    return body.moved_to_country, decision.reason.value in ORPHAN_REASONS


def check_report(wire: bytes, sender: str) -> Report:
    """The report as its origin signed it, sound, and decided to the signer."""
    report = report_from_proto(parse_report(wire))
    if canonicalize(report.url).url != report.url:
        raise _refuse("url-not-canonical", "the report's URL is not in canonical form")
    if hashlib.sha256(report.url.encode()).digest() != report.url_key:
        raise _refuse("url-key-mismatch", "the report's url_key is not sha256(url)")
    if report_id_for(report.origin_member, report.url_key, report.items) != report.id:
        raise _refuse("report-id-mismatch", "the report's id does not match its contents")
    if report.decision_member != sender:
        raise _refuse(
            "not-holder",
            f"report {report.id} was decided to {report.decision_member} (its origin's signed "
            f"report says so), not to {sender}",
        )
    return report


def check_origin(
    wire: bytes,
    report: Report,
    origin: OriginEvidence,
    sender: str,
    manifest: Manifest,
    max_skew: timedelta,
) -> TimeWindow:
    """The origin's envelope to the signer carried exactly these report bytes, signed by it;
    the origin's window then (its reports' times must lie in it)."""
    header = xpb.EnvelopeHeader()
    try:
        header.ParseFromString(origin.header)
        require_exact(header, origin.header, "origin envelope header")
    except (DecodeError, ExchangeError):
        raise _refuse("origin-evidence", "the origin's envelope header is malformed") from None
    if header.sender != report.origin_member or header.recipient != sender:
        raise _refuse(
            "origin-evidence",
            f"the envelope is {header.sender[:64]}→{header.recipient[:64]}, not "
            f"{report.origin_member}→{sender}",
        )
    if header.kind != KIND_REPORT or not header.HasField("signed_at"):
        raise _refuse("origin-evidence", "the origin's envelope is not a signed report batch")
    try:
        signed_at = from_timestamp(header.signed_at)
        merkle.verify_inclusion(
            wire,
            origin.leaf_index,
            header.count,
            merkle.decode_proof(origin.proof),
            header.merkle_root,
        )
        manifest.verify_member_signature(
            header.sender, header.key_id, signed_at, origin.header, origin.signature
        )
    except (AuthError, ExchangeError) as error:
        raise _refuse("origin-evidence", error.message) from None
    joined = manifest.member(report.origin_member).joined_at
    return TimeWindow.for_signer(joined, signed_at, max_skew)


def check_report_claims(
    wire: bytes, report: Report, window: TimeWindow, manifest: Manifest, self_member: str
) -> None:
    """What the receiver checks of a report sent to it directly, in its origin's ``window``:
    the report's time, its decision's manifest epoch, its trace (``trace_review``)."""
    problem = window.problem(report.received_at, "report.received_at")
    if problem is not None:
        raise _refuse("report-time-range", problem)
    msg = parse_report(wire)
    if not 1 <= msg.decision.manifest_epoch <= manifest.epoch:
        raise _refuse(
            "decision-epoch",
            f"decision under manifest epoch {msg.decision.manifest_epoch}, outside 1 to "
            f"{manifest.epoch}",
        )
    try:
        review_trace(msg, window=window, locate=None, manifest=manifest, self_member=self_member)
    except (ExchangeError, RoutingError) as error:
        raise _refuse("report-trace", error.message) from None


def _check_items(moved: CaseEvent, report: Report) -> tuple[int, ...]:
    """The moved items: items of this report, as its origin classified them."""
    out = []
    for i, ref in enumerate(moved.items):
        if (
            ref.report_id != report.id
            or ref.index >= len(report.items)
            or ref.origin_member != report.origin_member
            or report.items[ref.index].classification is not ref.origin_classification
        ):
            raise _refuse(
                "transfer-items",
                f"moved.items[{i}]: {ref.report_id}#{ref.index} is no item of report "
                f"{report.id} (or not with its origin's classification)",
            )
        out.append(ref.index)
    return tuple(out)


def _check_history(
    history: tuple[CaseEvent, ...], moved: CaseEvent, report_id: str, window: TimeWindow
) -> None:
    """The signer's own earlier steps on this report's items, in its order, before the move."""
    last = 0
    for i, e in enumerate(history):
        where = f"history[{i}]"
        body = e.body
        taken = isinstance(body, TakeOver)
        scope = e.case_id
        if isinstance(body, TakeOver):
            scope = take_over_scope(body.moved_event, report_id)
        if (
            e.member != moved.member
            or e.case_id != moved.case_id
            or event_id_for(e.member, scope, e.sequence) != e.id
            or e.kind is EventKind.WITHDRAWAL
            or any(r.report_id != report_id for r in e.items)
        ):
            raise _refuse("transfer-history", f"{where}: not a step of the signer on this case")
        if not taken:
            if not last < e.sequence < moved.sequence:
                raise _refuse("transfer-history", f"{where}: out of the case's order")
            last = e.sequence
        problem = window.problem(e.at, f"{where}.at")
        if problem is not None or e.at > moved.at:
            raise _refuse("transfer-history", problem or f"{where}: after the move")
