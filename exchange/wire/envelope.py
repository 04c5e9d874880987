"""Sealing and opening batch envelopes (DESIGN.md "Exchange between nodes").

A batch is sealed once: the header (sender, recipient, sequence, time, count, Merkle root of the
exact payload bytes, kind, key id, manifest epoch) is serialized, and that byte string is signed
with Ed25519 — one signature per batch instead of one per report. The sealed bytes are stored and
resent unchanged until receipted, so a retry can never look like a conflicting reuse of the
sequence number.

Opening checks, in order, everything a receiver must refuse before touching its store: limits,
header decoding, recipient, sender membership, key validity at signing time, the signature over
the header bytes received, count and Merkle root over the payload bytes received. It never
re-serializes anything. The per-leaf inclusion proofs come out of the same pass that checks the
root, so storing them costs no extra hashing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import DecodeError

from auth import merkle
from auth.keys import SigningKey
from auth.manifest import Manifest
from exchange.domain import MAX_REASON, PayloadResult, is_case_id, is_report_id
from exchange.errors import (
    EpochAhead,
    InvalidEnvelope,
    InvalidReport,
    UnknownFields,
    WrongRecipient,
)
from exchange.lifecycle.model import is_event_id
from exchange.wire.codec import from_timestamp, outcome_from_proto, outcome_to_proto, timestamp
from exchange.wire.known_fields import find_unknown, require_exact
from ihx.v1 import exchange_pb2 as xpb

# Sequences are stored as signed 64-bit integers and start at 1 (0 is "unset" in proto3).
MAX_SEQUENCE = 2**63 - 1
KIND_REPORT = xpb.PAYLOAD_KIND_REPORT
KIND_ANNOUNCEMENT = xpb.PAYLOAD_KIND_HASH_ANNOUNCEMENT
KIND_EVENT = xpb.PAYLOAD_KIND_CASE_EVENT
KIND_TRANSFER = xpb.PAYLOAD_KIND_CASE_TRANSFER
DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Limits:
    max_payloads: int = 1000
    max_payload_bytes: int = 64 * 1024
    max_envelope_bytes: int = 16 * 1024 * 1024
    # How far a peer's clock may run ahead of ours. NTP keeps nodes within a second, but a
    # node whose time source failed drifts by minutes; the exchange must go on through that
    # (batches are resent unchanged, so a refused one is accepted once our clock catches up).
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW


@dataclass(frozen=True, slots=True)
class Sealed:
    header: bytes
    signature: bytes
    root: bytes
    payloads: tuple[bytes, ...]

    def to_proto(self) -> xpb.Envelope:
        return xpb.Envelope(header=self.header, signature=self.signature, payloads=self.payloads)


@dataclass(frozen=True, slots=True)
class Opened:
    header: xpb.EnvelopeHeader
    header_bytes: bytes
    signature: bytes
    payloads: tuple[bytes, ...]
    proofs: tuple[bytes, ...]  # encoded inclusion proof per payload

    @property
    def sender(self) -> str:
        return self.header.sender

    @property
    def sequence(self) -> int:
        return self.header.sequence

    @property
    def root(self) -> bytes:
        return self.header.merkle_root

    @property
    def signed_at(self) -> datetime:
        return from_timestamp(self.header.signed_at)


def seal(
    key: SigningKey,
    *,
    sender: str,
    recipient: str,
    sequence: int,
    kind: int,
    payloads: Sequence[bytes],
    signed_at: datetime,
    manifest_epoch: int,
) -> Sealed:
    root = merkle.root(payloads)
    header = xpb.EnvelopeHeader(
        sender=sender,
        recipient=recipient,
        sequence=sequence,
        signed_at=timestamp(signed_at),
        count=len(payloads),
        merkle_root=root,
        kind=kind,  # type: ignore[arg-type]
        key_id=key.key_id,
        manifest_epoch=manifest_epoch,
    ).SerializeToString(deterministic=True)
    return Sealed(header, key.sign(header), root, tuple(payloads))


def open_envelope(
    envelope: xpb.Envelope,
    *,
    manifest: Manifest,
    self_member: str,
    now: datetime,
    limits: Limits,
) -> Opened:
    """Verify an envelope completely; raise a typed error naming the first problem found."""
    payloads = tuple(envelope.payloads)
    _check_envelope_limits(envelope, payloads, limits)
    header = _parse_envelope_header(envelope.header)
    _check_addressing(header, manifest=manifest, self_member=self_member)
    signed_at = from_timestamp(header.signed_at)
    if signed_at > now + limits.max_clock_skew:
        raise InvalidEnvelope(
            f"envelope signed {int((signed_at - now).total_seconds())} s in the future",
            code="envelope-future",
        )
    # Raises UnknownMember / UnknownKey / KeyNotValid / SignatureInvalid (auth errors).
    manifest.verify_member_signature(
        header.sender, header.key_id, signed_at, envelope.header, envelope.signature
    )
    proofs = _payload_proofs(header, payloads)
    return Opened(header, envelope.header, envelope.signature, payloads, proofs)


def _check_envelope_limits(
    envelope: xpb.Envelope, payloads: tuple[bytes, ...], limits: Limits
) -> None:
    """The size limits, checked before anything in the envelope is decoded."""
    if not payloads:
        raise InvalidEnvelope("envelope has no payloads", code="envelope-empty")
    if len(payloads) > limits.max_payloads:
        raise InvalidEnvelope(
            f"envelope has {len(payloads)} payloads; the limit is {limits.max_payloads}",
            code="envelope-too-many",
        )
    total = len(envelope.header) + len(envelope.signature)
    for i, p in enumerate(payloads):
        total += len(p)
        if len(p) > limits.max_payload_bytes:
            raise InvalidEnvelope(
                f"payload {i} is {len(p)} bytes; the limit is {limits.max_payload_bytes}",
                code="payload-too-large",
            )
    if total > limits.max_envelope_bytes:
        raise InvalidEnvelope(
            f"envelope is {total} bytes; the limit is {limits.max_envelope_bytes}",
            code="envelope-too-large",
        )


def _parse_envelope_header(header_bytes: bytes) -> xpb.EnvelopeHeader:
    """The header decoded strictly (known fields only) and complete, with a known payload kind."""
    header = xpb.EnvelopeHeader()
    try:
        header.ParseFromString(header_bytes)
    except DecodeError:
        raise InvalidEnvelope(
            "header is not a valid EnvelopeHeader", code="header-malformed"
        ) from None
    require_exact(header, header_bytes, "envelope header")
    if not header.sender or not header.HasField("signed_at") or not header.key_id:
        raise InvalidEnvelope("header lacks sender, time or key id", code="header-incomplete")
    if header.kind not in (KIND_REPORT, KIND_ANNOUNCEMENT, KIND_EVENT, KIND_TRANSFER):
        raise InvalidEnvelope(f"unknown payload kind {header.kind}", code="header-kind")
    return header


def _check_addressing(header: xpb.EnvelopeHeader, *, manifest: Manifest, self_member: str) -> None:
    """The recipient is this node, the sequence is in range, the manifest epoch is not ahead."""
    if header.recipient != self_member:
        raise WrongRecipient(
            f"envelope is addressed to {header.recipient[:64]!r}, this node is {self_member!r}"
        )
    if not 1 <= header.sequence <= MAX_SEQUENCE:
        raise InvalidEnvelope(
            f"sequence {header.sequence} is outside 1 to 2^63-1", code="header-sequence"
        )
    if header.manifest_epoch > manifest.epoch:
        # The sender knows a newer manifest (a member added, a key rotated): we will too once
        # ours is updated, and the sender's retry of the same batch then goes through.
        raise EpochAhead(
            f"envelope was signed under manifest epoch {header.manifest_epoch}; this node has "
            f"epoch {manifest.epoch} and will accept it once it holds the newer manifest"
        )


def _payload_proofs(header: xpb.EnvelopeHeader, payloads: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The encoded inclusion proof of each payload, once count and Merkle root match the header."""
    if header.count != len(payloads):
        raise InvalidEnvelope(
            f"header counts {header.count} payloads, envelope carries {len(payloads)}",
            code="count-mismatch",
        )
    root, proofs = merkle.root_and_proofs(payloads)
    if root != header.merkle_root:
        raise InvalidEnvelope(
            "Merkle root of the payloads does not match the signed header", code="root-mismatch"
        )
    return tuple(merkle.encode_proof(p) for p in proofs)


def verify_stored_leaf(
    payload: bytes, index: int, header_bytes: bytes, proof: bytes
) -> xpb.EnvelopeHeader:
    """Check one stored payload against its envelope header (signature checked by the caller)."""
    header = xpb.EnvelopeHeader()
    header.ParseFromString(header_bytes)
    merkle.verify_inclusion(
        payload, index, header.count, merkle.decode_proof(proof), header.merkle_root
    )
    return header


# -- receipts -------------------------------------------------------------------------------


def sign_receipt(
    key: SigningKey,
    *,
    issuer: str,
    opened: Opened,
    received_at: datetime,
    results: Sequence[PayloadResult],
) -> xpb.SignedReceipt:
    body = xpb.ReceiptBody(
        issuer=issuer,
        batch_sender=opened.sender,
        batch_sequence=opened.sequence,
        batch_root=opened.root,
        received_at=timestamp(received_at),
        outcomes=[outcome_to_proto(r) for r in results],
        key_id=key.key_id,
    ).SerializeToString(deterministic=True)
    return xpb.SignedReceipt(body=body, signature=key.sign(body))


@dataclass(frozen=True, slots=True)
class Receipt:
    issuer: str
    sequence: int
    root: bytes
    received_at: datetime
    results: tuple[PayloadResult, ...]
    body: bytes
    signature: bytes


def _outcome_problem(position: int, r: PayloadResult, kind: int) -> str | None:
    """Why one outcome of a receipt is not one an ihx receiver could have signed, or None.

    Its strings are stored with the delivery and shown to analysts: only the forms ihx makes.
    The id echoed is the payload's own: an event id for a batch of case events, else a report id.
    """
    if r.index != position:
        return f"index {r.index} at position {position}"
    if kind == KIND_EVENT:
        if r.report_id and not is_event_id(r.report_id):
            return "report_id is not an event id"
    elif r.report_id and not is_report_id(r.report_id):
        return "report_id is not a report id"
    if r.case_id and not is_case_id(r.case_id):
        return "case_id is not a case id"
    if len(r.reason) > MAX_REASON or not r.reason.isprintable():
        return f"reason is not printable text of at most {MAX_REASON} characters"
    return None


def open_receipt(
    receipt: xpb.SignedReceipt,
    *,
    manifest: Manifest,
    issuer: str,
    sender: str,
    sequence: int,
    root: bytes,
    count: int,
    sent_at: datetime | None = None,
    now: datetime | None = None,
    max_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
    kind: int = KIND_REPORT,
) -> Receipt:
    """Verify a receipt for the batch we sent: right issuer, batch, count; valid signature.

    ``kind`` is the batch's payload kind: the ids its outcomes echo are of that kind's form.

    With ``sent_at`` (when the batch was signed) and ``now``, the receipt time must also be
    plausible: not before the batch was signed, not after now, each within ``max_skew``. The
    receipt time starts the takedown clock, so a receiver may not predate or postdate it.
    (A replayed receipt keeps its original time, which is still within these bounds.)
    """
    body = _parse_receipt_body(receipt)
    _check_receipt_batch(body, issuer=issuer, sender=sender, sequence=sequence, root=root)
    if len(body.outcomes) != count:
        raise InvalidEnvelope(
            f"receipt has {len(body.outcomes)} outcomes for {count} payloads",
            code="receipt-count",
        )
    received_at = _receipt_time(body, sent_at=sent_at, now=now, max_skew=max_skew)
    manifest.verify_member_signature(
        issuer, body.key_id, received_at, receipt.body, receipt.signature
    )
    results = _receipt_results(body, kind)
    return Receipt(
        issuer=issuer,
        sequence=sequence,
        root=root,
        received_at=received_at,
        results=results,
        body=receipt.body,
        signature=receipt.signature,
    )


def _parse_receipt_body(receipt: xpb.SignedReceipt) -> xpb.ReceiptBody:
    body = xpb.ReceiptBody()
    try:
        body.ParseFromString(receipt.body)
    except DecodeError:
        raise InvalidEnvelope("receipt body is malformed", code="receipt-malformed") from None
    # The body is stored and served to partners as the takedown clock's proof: known bytes only.
    require_exact(body, receipt.body, "receipt body")
    extra = find_unknown(receipt)
    if extra is not None:
        raise UnknownFields(f"receipt carries field {extra}, which the ihx.v1 schema lacks")
    return body


def _check_receipt_batch(
    body: xpb.ReceiptBody, *, issuer: str, sender: str, sequence: int, root: bytes
) -> None:
    """The receipt is from the batch's recipient and for this very batch."""
    if body.issuer != issuer or body.batch_sender != sender:
        raise InvalidEnvelope(
            f"receipt from {body.issuer[:64]!r} for {body.batch_sender[:64]!r} does not match "
            f"the batch {sender}→{issuer}",
            code="receipt-mismatch",
        )
    if body.batch_sequence != sequence or body.batch_root != root:
        raise InvalidEnvelope(
            f"receipt is for batch {body.batch_sequence}, expected {sequence}",
            code="receipt-mismatch",
        )


def _receipt_time(
    body: xpb.ReceiptBody,
    *,
    sent_at: datetime | None,
    now: datetime | None,
    max_skew: timedelta,
) -> datetime:
    """The receipt time, present, in range and plausible (see ``open_receipt``)."""
    if not body.HasField("received_at"):
        raise InvalidEnvelope("receipt has no time", code="receipt-time")
    try:
        received_at = from_timestamp(body.received_at)
    except InvalidReport:
        raise InvalidEnvelope("receipt time is out of range", code="receipt-time") from None
    if sent_at is not None and received_at < sent_at - max_skew:
        raise InvalidEnvelope(
            f"receipt time {received_at.isoformat()} is before the batch was signed",
            code="receipt-time",
        )
    if now is not None and received_at > now + max_skew:
        raise InvalidEnvelope(
            f"receipt time {received_at.isoformat()} is in the future", code="receipt-time"
        )
    return received_at


def _receipt_results(body: xpb.ReceiptBody, kind: int) -> tuple[PayloadResult, ...]:
    """The outcomes, each one an ihx receiver could have signed."""
    results = tuple(outcome_from_proto(o) for o in body.outcomes)
    for i, result in enumerate(results):
        problem = _outcome_problem(i, result, kind)
        if problem is not None:
            raise InvalidEnvelope(f"receipt outcome {i}: {problem}", code="receipt-outcome")
    return results
