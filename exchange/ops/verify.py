"""Re-verifying one stored report on its own from the node's database (``ihx verify-report``).

The design promises that any single report stays verifiable later (DESIGN.md "Envelope"): the
node keeps the exact wire bytes, the signed envelope header and the inclusion proof. This module
replays every check from those stored bytes — it never trusts a derived column — and reports each
check separately, so a tampered row is named rather than merely "invalid":

On the node that received the report (role ``received``):
  * contents: the wire bytes decode, ``url_key`` is sha256 of the URL and the id is the one the
    origin, URL and item hashes imply (and the row's own columns agree with the bytes);
  * inclusion: the wire bytes are leaf ``leaf_index`` of the envelope whose Merkle root the stored
    header carries (RFC 6962 proof);
  * envelope signature: the header verifies with the sender's key, valid at its signing time;
  * signer: the report's origin is the envelope's sender;
  * our receipt: the receipt we gave verifies with our key and names this report at that leaf.

On the node a report came to by a move (a ``case_transfers`` row names its envelope):
  * the transfer (carrying exactly these report bytes) is a leaf of the old holder's envelope,
    whose signature verifies with its key;
  * the origin's signed report names the old holder as its decision;
  * the origin's own envelope header (carried in the transfer) is signed by the origin's key and
    has the report as a leaf — or the old holder is the origin itself;
  * our receipt names the transfer.

On the node that sent it (role ``origin``), besides the contents:
  * our batch header verifies with our key and binds the batch root we stored;
  * the receiver's signed receipt verifies with the receiver's key, for that batch and root;
  * the receipt names this report (and its outcome matches the delivery recorded).
A report decided locally has no delivery; it must be held in a case here.
A report anonymised under the retention period (``anonymised_at``) has nothing left to check:
the answer is one failed check saying so, instead of a contents check failing obscurely.

The rows come from the read model ``store/evidence.py``, as stored. Keys come from the node's
current manifest: keys are never deleted from it, and each carries its validity window, so "the
sender's key at signing time" is always answerable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine

from auth.errors import AuthError
from auth.manifest import Manifest
from exchange.domain import Outcome, PayloadResult, report_id_for
from exchange.errors import ExchangeError, NotFound
from exchange.store.evidence import Evidence, read_evidence
from exchange.transfer.checks import check_origin, check_report
from exchange.wire.codec import from_timestamp, parse_report, report_from_proto
from exchange.wire.envelope import DEFAULT_MAX_CLOCK_SKEW, open_receipt, verify_stored_leaf
from exchange.wire.transfer_codec import transfer_from_bytes
from ihx.v1 import exchange_pb2 as xpb
from routing.errors import RoutingError


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ReportVerification:
    report_id: str
    role: str
    member: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


class _Mismatch(Exception):
    """Stored bytes that verify but disagree with each other."""


# ValueError: a tampered timestamp or length can be out of range for the decoders.
_FAILURES = (ExchangeError, AuthError, RoutingError, DecodeError, ValueError, _Mismatch)


def _run(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, True, check())
    except _FAILURES as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return Check(name, False, message)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _time(ts: Timestamp) -> str:
    return _iso(from_timestamp(ts))


def _header(data: bytes) -> xpb.EnvelopeHeader:
    header = xpb.EnvelopeHeader()
    header.ParseFromString(data)
    return header


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Mismatch(message)


def verify_report(
    engine: Engine, report_id: str, *, manifest: Manifest, self_member: str
) -> ReportVerification:
    """Run every check that applies to the stored report; raises NotFound for an unknown id."""
    evidence = read_evidence(engine, report_id)
    if evidence is None:
        raise NotFound(f"no report {report_id[:40]!r} in the database of {self_member}")
    row = evidence.report
    if row.anonymised_at is not None:
        return ReportVerification(row.id, row.role, self_member, (_anonymised(row),))
    checks = [_run("report id matches its contents", lambda: _contents(row))]
    if row.role == "received":
        checks += _received(evidence, manifest, self_member)
    else:
        checks += _origin(evidence, manifest, self_member)
    return ReportVerification(row.id, row.role, self_member, tuple(checks))


def _anonymised(row: Any) -> Check:
    """Retention overwrote the report: nothing of what was signed is left to verify."""
    return Check(
        "not anonymised",
        False,
        f"anonymised at {_iso(row.anonymised_at)} under the retention period: its URL, hashes "
        "and signed bytes were overwritten, so it can no longer be verified on its own (the "
        "routing log's entries about it still verify)",
    )


def _contents(row: Any) -> str:
    msg = parse_report(row.wire)
    report = report_from_proto(msg)
    _expect(msg.id == row.id, f"the wire bytes carry id {msg.id!r}, the row {row.id!r}")
    _expect(
        hashlib.sha256(msg.url.encode()).digest() == report.url_key,
        "url_key is not sha256 of the URL",
    )
    implied = report_id_for(report.origin_member, report.url_key, report.items)
    _expect(implied == msg.id, f"the contents imply id {implied}, the report says {msg.id}")
    _expect(
        row.url == msg.url and row.origin_member == msg.origin_member,
        "the row's URL or origin differ from the wire bytes",
    )
    return f"{implied} = H(origin {report.origin_member}, URL, {len(report.hashes)} hashes)"


# -- the receiving node ------------------------------------------------------------------------


def _received(evidence: Evidence, manifest: Manifest, self_member: str) -> list[Check]:
    row, envelope = evidence.report, evidence.envelope
    if None in (row.sender, row.envelope_sequence, row.leaf_index, row.proof):
        return [Check("arrived in a signed envelope", False, "no envelope recorded for it")]
    if envelope is None:
        return [
            Check(
                "arrived in a signed envelope",
                False,
                f"envelope {row.sender}#{row.envelope_sequence} is not in the inbox",
            )
        ]
    if evidence.transfer is not None:
        return _moved_here(row, envelope, evidence.transfer, manifest, self_member)
    return [
        _run(
            "leaf of the envelope (Merkle inclusion proof)",
            lambda: _inclusion(row, envelope, self_member),
        ),
        _run(
            "envelope signature by the sender's key",
            lambda: _envelope_signature(envelope, manifest),
        ),
        _run("origin is the envelope's signer", lambda: _signer(row, envelope)),
        _run(
            "our receipt is signed by us and names the report",
            lambda: _our_receipt(row, envelope, manifest, self_member),
        ),
    ]


def _inclusion(row: Any, envelope: Any, self_member: str) -> str:
    header = verify_stored_leaf(row.wire, row.leaf_index, envelope.header, row.proof)
    _expect(header.merkle_root == envelope.root, "the header's root differs from the inbox")
    _expect(
        header.sender == row.sender and header.sequence == row.envelope_sequence,
        "the header names another envelope",
    )
    _expect(header.recipient == self_member, f"the envelope is for {header.recipient}")
    return (
        f"leaf {row.leaf_index} of {header.count} in envelope "
        f"{row.sender}#{row.envelope_sequence}, root {header.merkle_root.hex()[:16]}…"
    )


def _envelope_signature(envelope: Any, manifest: Manifest) -> str:
    header = _header(envelope.header)
    signed_at = from_timestamp(header.signed_at)
    manifest.verify_member_signature(
        header.sender, header.key_id, signed_at, envelope.header, envelope.signature
    )
    return f"signed by {header.sender} with {header.key_id} at {_time(header.signed_at)}"


def _signer(row: Any, envelope: Any) -> str:
    origin = parse_report(row.wire).origin_member
    sender = _header(envelope.header).sender
    _expect(origin == sender, f"origin {origin} did not sign the envelope ({sender} did)")
    return f"{origin} signed it"


def _our_receipt(row: Any, envelope: Any, manifest: Manifest, self_member: str) -> str:
    opened = open_receipt(
        xpb.SignedReceipt(body=envelope.receipt_body, signature=envelope.receipt_signature),
        manifest=manifest,
        issuer=self_member,
        sender=row.sender,
        sequence=row.envelope_sequence,
        root=envelope.root,
        count=envelope.payload_count,
    )
    result = next((r for r in opened.results if r.index == row.leaf_index), None)
    _expect(
        result is not None and result.report_id == row.id,
        f"the receipt does not name {row.id} at leaf {row.leaf_index}",
    )
    assert result is not None
    _expect(result.outcome is not Outcome.REJECTED, "the receipt rejected this report")
    case = f" {result.case_id}" if result.case_id else ""
    return f"signed by {self_member} at {_iso(opened.received_at)}: {result.outcome.value}{case}"


# -- a report that came by a move -------------------------------------------------------------


def _moved_here(
    row: Any, envelope: Any, transfer: Any, manifest: Manifest, self_member: str
) -> list[Check]:
    """The old holder's transfer carried the report; the origin's own envelope proves it."""
    if transfer.payload is None:
        return [Check("carried by a transfer", False, "the transfer's payload is not kept")]
    return [
        _run(
            "leaf of the old holder's transfer envelope (Merkle inclusion proof)",
            lambda: _transfer_inclusion(row, envelope, transfer, self_member),
        ),
        _run(
            "transfer envelope signature by the old holder's key",
            lambda: _envelope_signature(envelope, manifest),
        ),
        _run(
            "the origin's signed report names the old holder",
            lambda: _decided_to(row, transfer),
        ),
        _run(
            "the origin's own envelope (its signature, the report a leaf of it)",
            lambda: _origin_evidence(row, transfer, manifest),
        ),
        _run(
            "our receipt is signed by us and names the transfer",
            lambda: _our_receipt(row, envelope, manifest, self_member),
        ),
    ]


def _transfer_inclusion(row: Any, envelope: Any, transfer: Any, self_member: str) -> str:
    header = verify_stored_leaf(transfer.payload, row.leaf_index, envelope.header, row.proof)
    _expect(header.merkle_root == envelope.root, "the header's root differs from the inbox")
    _expect(
        header.sender == transfer.from_member == row.sender
        and header.sequence == row.envelope_sequence,
        "the header names another envelope",
    )
    _expect(header.recipient == self_member, f"the envelope is for {header.recipient}")
    carried = transfer_from_bytes(transfer.payload)
    _expect(carried.report == bytes(row.wire), "the transfer carries other report bytes")
    return (
        f"leaf {row.leaf_index} of {header.count} in {row.sender}#{row.envelope_sequence}, "
        f"moved from case {transfer.from_case} to {transfer.to_case}"
    )


def _decided_to(row: Any, transfer: Any) -> str:
    report = check_report(row.wire, transfer.from_member)
    return f"{report.origin_member} decided it to {report.decision_member}"


def _origin_evidence(row: Any, transfer: Any, manifest: Manifest) -> str:
    carried = transfer_from_bytes(transfer.payload)
    report = report_from_proto(parse_report(row.wire))
    if report.origin_member == transfer.from_member:
        _expect(carried.origin is None, "evidence of another envelope for the holder's own report")
        return f"{report.origin_member} made it and held it (its signature is the transfer's)"
    _expect(carried.origin is not None, "the transfer carries no envelope of the origin")
    assert carried.origin is not None
    window = check_origin(
        row.wire, report, carried.origin, transfer.from_member, manifest, DEFAULT_MAX_CLOCK_SKEW
    )
    problem = window.problem(report.received_at, "report.received_at")
    _expect(problem is None, problem or "")
    header = _header(carried.origin.header)
    return (
        f"leaf {carried.origin.leaf_index} of {header.count} in {header.sender}#"
        f"{header.sequence} to {header.recipient}, signed by {header.sender} with "
        f"{header.key_id} at {_time(header.signed_at)}"
    )


# -- the origin node ---------------------------------------------------------------------------


def _origin(evidence: Evidence, manifest: Manifest, self_member: str) -> list[Check]:
    row, delivery, batch = evidence.report, evidence.delivery, evidence.batch
    if row.decision_member == self_member:
        return [
            Check(
                "held in a local case",
                row.case_id is not None,
                f"local decision, case {row.case_id}" if row.case_id else "no case recorded",
            )
        ]
    if delivery is None:
        why = (
            f"not receipted yet: waiting in the outbox for {row.decision_member}"
            if evidence.waiting
            else f"no delivery to {row.decision_member} recorded"
        )
        return [Check("delivered with a signed receipt", False, why)]
    if batch is None:
        return [
            Check(
                "delivered with a signed receipt",
                False,
                f"batch {delivery.destination}#{delivery.sequence} is missing",
            )
        ]
    return [
        _run("our batch header is signed by us", lambda: _our_batch(batch, manifest, self_member)),
        _run(
            "the receiver's receipt signature",
            lambda: _their_receipt(batch, manifest, self_member),
        ),
        _run(
            "the receipt names this report",
            lambda: _names_report(row, delivery, batch, manifest, self_member),
        ),
    ]


def _our_batch(batch: Any, manifest: Manifest, self_member: str) -> str:
    header = _header(batch.header)
    manifest.verify_member_signature(
        self_member,
        header.key_id,
        from_timestamp(header.signed_at),
        batch.header,
        batch.signature,
    )
    _expect(
        header.recipient == batch.destination and header.sequence == batch.sequence,
        "the signed header names another batch",
    )
    _expect(header.merkle_root == batch.root, "the signed root differs from the stored root")
    return (
        f"batch {batch.destination}#{batch.sequence} signed by {self_member} "
        f"at {_time(header.signed_at)}"
    )


def _receipt_results(
    batch: Any, manifest: Manifest, self_member: str
) -> tuple[tuple[PayloadResult, ...], datetime]:
    if batch.receipt_body is None or batch.receipt_signature is None:
        raise _Mismatch("the batch has no receipt stored")
    opened = open_receipt(
        xpb.SignedReceipt(body=batch.receipt_body, signature=batch.receipt_signature),
        manifest=manifest,
        issuer=batch.destination,
        sender=self_member,
        sequence=batch.sequence,
        root=batch.root,
        count=batch.payload_count,
    )
    return opened.results, opened.received_at


def _their_receipt(batch: Any, manifest: Manifest, self_member: str) -> str:
    _, received_at = _receipt_results(batch, manifest, self_member)
    return f"signed by {batch.destination} at {_iso(received_at)}"


def _names_report(row: Any, delivery: Any, batch: Any, manifest: Manifest, self_member: str) -> str:
    results, _ = _receipt_results(batch, manifest, self_member)
    result = next((r for r in results if r.report_id == row.id), None)
    _expect(result is not None, f"the receipt does not name {row.id}")
    assert result is not None
    _expect(
        result.outcome.value == delivery.outcome,
        f"the receipt says {result.outcome.value}, the delivery row {delivery.outcome}",
    )
    detail = f"{result.outcome.value}"
    if result.case_id:
        detail += f" {result.case_id}"
    if result.reason:
        detail += f" ({result.reason})"
    return detail


def verification_document(result: ReportVerification) -> dict[str, Any]:
    return {
        "report_id": result.report_id,
        "role": result.role,
        "member": result.member,
        "ok": result.ok,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
    }
