"""Sealing and opening envelopes, signed receipts, and stored-leaf verification.

Every refusal is checked by its specific type and code: a receiver maps them to distinct gRPC
statuses, so "some error" is not good enough.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from auth import merkle
from auth.errors import KeyNotValid, ProofInvalid, SignatureInvalid, UnknownKey, UnknownMember
from auth.manifest import Manifest, replace_member, revoke_key
from exchange.domain import Outcome, PayloadResult
from exchange.errors import InvalidEnvelope, WrongRecipient
from exchange.wire.codec import timestamp
from exchange.wire.envelope import (
    KIND_EVENT,
    KIND_REPORT,
    Limits,
    Opened,
    Sealed,
    open_envelope,
    open_receipt,
    sign_receipt,
    verify_stored_leaf,
)
from ihx.v1 import exchange_pb2 as xpb
from tests.auth.factories import member_key
from tests.exchange.factories import (
    T0,
    make_report,
    report_wire,
    seal_batch,
    signing_key,
)

PAYLOADS = tuple(report_wire(make_report(hashes=[f"p{i}"])) for i in range(5))


def open_(
    envelope: xpb.Envelope | Sealed,
    manifest: Manifest,
    *,
    me: str = "de-eco",
    now: datetime = T0,
    limits: Limits | None = None,
) -> Opened:
    msg = envelope.to_proto() if isinstance(envelope, Sealed) else envelope
    return open_envelope(msg, manifest=manifest, self_member=me, now=now, limits=limits or Limits())


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def signed_header(**fields: object) -> tuple[bytes, bytes]:
    """A header with the given fields, correctly signed by nl-eokm."""
    values: dict[str, object] = {
        "sender": "nl-eokm",
        "recipient": "de-eco",
        "sequence": 1,
        "signed_at": timestamp(T0),
        "count": len(PAYLOADS),
        "merkle_root": merkle.root(PAYLOADS),
        "kind": KIND_REPORT,
        "key_id": signing_key("nl-eokm").key_id,
        "manifest_epoch": 1,
    }
    values.update(fields)
    header = xpb.EnvelopeHeader(**values).SerializeToString()  # type: ignore[arg-type]
    return header, signing_key("nl-eokm").sign(header)


# -- the happy path -----------------------------------------------------------------------------


def test_seal_then_open(manifest: Manifest) -> None:
    sealed = seal_batch(PAYLOADS, sequence=7)
    opened = open_(sealed, manifest)
    assert opened.sender == "nl-eokm"
    assert opened.sequence == 7
    assert opened.root == sealed.root == merkle.root(PAYLOADS)
    assert opened.signed_at == T0
    assert opened.payloads == PAYLOADS
    assert opened.header_bytes == sealed.header
    assert opened.header.recipient == "de-eco"
    assert opened.header.count == len(PAYLOADS)
    assert len(opened.proofs) == len(PAYLOADS)
    for i, payload in enumerate(PAYLOADS):
        header = verify_stored_leaf(payload, i, opened.header_bytes, opened.proofs[i])
        assert header.sequence == 7


def test_opening_survives_a_wire_round_trip(manifest: Manifest) -> None:
    wire = seal_batch(PAYLOADS).to_proto().SerializeToString()
    assert open_(xpb.Envelope.FromString(wire), manifest).payloads == PAYLOADS


# -- who signed, for whom, with what -------------------------------------------------------------


def test_wrong_recipient(manifest: Manifest) -> None:
    with pytest.raises(WrongRecipient) as info:
        open_(seal_batch(PAYLOADS, recipient="us-ncmec"), manifest, me="de-eco")
    assert info.value.code == "wrong-recipient"


def test_unknown_sender(manifest: Manifest) -> None:
    sealed = seal_batch(PAYLOADS, sender="xx-rogue", key=signing_key("xx-rogue"))
    with pytest.raises(UnknownMember):
        open_(sealed, manifest)


def test_unknown_key_id(manifest: Manifest) -> None:
    sealed = seal_batch(PAYLOADS, key=signing_key("not-in-the-manifest"))
    with pytest.raises(UnknownKey):
        open_(sealed, manifest)


def test_key_of_another_member_is_unknown_for_this_sender(manifest: Manifest) -> None:
    sealed = seal_batch(PAYLOADS, sender="nl-eokm", key=signing_key("us-ncmec"))
    with pytest.raises(UnknownKey):
        open_(sealed, manifest)


def _revoked(manifest: Manifest, at: datetime) -> Manifest:
    return revoke_key(manifest, "nl-eokm", signing_key("nl-eokm").key_id, at=at)


def test_key_revoked_before_signing_is_refused(manifest: Manifest) -> None:
    revoked = _revoked(manifest, T0 - timedelta(hours=1))
    with pytest.raises(KeyNotValid) as info:
        open_(seal_batch(PAYLOADS, signed_at=T0), revoked)
    assert "revoked" in info.value.message


def test_key_revoked_at_the_signing_instant_is_refused(manifest: Manifest) -> None:
    with pytest.raises(KeyNotValid):
        open_(seal_batch(PAYLOADS, signed_at=T0), _revoked(manifest, T0))


def test_key_revoked_after_signing_still_verifies(manifest: Manifest) -> None:
    revoked = _revoked(manifest, T0 + timedelta(hours=1))
    opened = open_(seal_batch(PAYLOADS, signed_at=T0), revoked, now=T0 + timedelta(hours=2))
    assert opened.payloads == PAYLOADS


def _with_nl_key(manifest: Manifest, **validity: datetime) -> Manifest:
    member = manifest.member("nl-eokm")
    key = member_key(signing_key("nl-eokm"), **validity)
    return replace_member(manifest, dataclasses.replace(member, keys=(key,)))


def test_expired_key_is_refused(manifest: Manifest) -> None:
    expired = _with_nl_key(manifest, not_after=T0 - timedelta(days=1))
    with pytest.raises(KeyNotValid) as info:
        open_(seal_batch(PAYLOADS, signed_at=T0), expired)
    assert "expired" in info.value.message


def test_key_that_expired_after_signing_still_verifies(manifest: Manifest) -> None:
    expired = _with_nl_key(manifest, not_after=T0 + timedelta(seconds=1))
    opened = open_(seal_batch(PAYLOADS, signed_at=T0), expired, now=T0 + timedelta(days=30))
    assert opened.sequence == 1


def test_key_not_yet_valid_is_refused(manifest: Manifest) -> None:
    future = _with_nl_key(manifest, not_before=T0 + timedelta(days=1))
    with pytest.raises(KeyNotValid):
        open_(seal_batch(PAYLOADS, signed_at=T0), future)


def test_signed_too_far_in_the_future(manifest: Manifest) -> None:
    skew = Limits().max_clock_skew
    sealed = seal_batch(PAYLOADS, signed_at=T0 + skew + timedelta(seconds=1))
    with pytest.raises(InvalidEnvelope) as info:
        open_(sealed, manifest, now=T0)
    assert info.value.code == "envelope-future"


def test_signed_slightly_in_the_future_is_clock_skew(manifest: Manifest) -> None:
    sealed = seal_batch(PAYLOADS, signed_at=T0 + Limits().max_clock_skew)
    assert open_(sealed, manifest, now=T0).payloads == PAYLOADS


# -- tampering ----------------------------------------------------------------------------------


def test_tampered_header_byte(manifest: Manifest) -> None:
    sealed = seal_batch(PAYLOADS)
    # Flip a byte of the Merkle root inside the header: still a valid header, now unsigned.
    at = sealed.header.index(sealed.root) + 5
    envelope = sealed.to_proto()
    envelope.header = flip(sealed.header, at)
    with pytest.raises(SignatureInvalid):
        open_(envelope, manifest)


def test_tampered_signature(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    envelope.signature = flip(envelope.signature, 10)
    with pytest.raises(SignatureInvalid):
        open_(envelope, manifest)


def test_truncated_signature(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    envelope.signature = envelope.signature[:-1]
    with pytest.raises(SignatureInvalid):
        open_(envelope, manifest)


@pytest.mark.parametrize("index", [0, 2, 4])
def test_tampered_payload_byte(manifest: Manifest, index: int) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    envelope.payloads[index] = flip(envelope.payloads[index], len(envelope.payloads[index]) // 2)
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "root-mismatch"


def test_payload_removed(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    del envelope.payloads[3]
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "count-mismatch"


def test_payload_added(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    envelope.payloads.append(PAYLOADS[0])
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "count-mismatch"


def test_payloads_reordered(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    reordered = [PAYLOADS[1], PAYLOADS[0], *PAYLOADS[2:]]
    del envelope.payloads[:]
    envelope.payloads.extend(reordered)
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "root-mismatch"


def test_payload_replaced_keeping_the_count(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    envelope.payloads[4] = report_wire(make_report(hashes=["substitute"]))
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "root-mismatch"


def test_signed_count_differs_from_the_payloads(manifest: Manifest) -> None:
    header, signature = signed_header(count=len(PAYLOADS) + 1)
    envelope = xpb.Envelope(header=header, signature=signature, payloads=PAYLOADS)
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "count-mismatch"


def test_a_correctly_signed_hand_made_header_opens(manifest: Manifest) -> None:
    header, signature = signed_header()
    envelope = xpb.Envelope(header=header, signature=signature, payloads=PAYLOADS)
    assert open_(envelope, manifest).root == merkle.root(PAYLOADS)


# -- shape and limits ---------------------------------------------------------------------------


def test_empty_envelope(manifest: Manifest) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    del envelope.payloads[:]
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "envelope-empty"


def test_too_many_payloads(manifest: Manifest) -> None:
    limits = Limits(max_payloads=len(PAYLOADS) - 1)
    with pytest.raises(InvalidEnvelope) as info:
        open_(seal_batch(PAYLOADS), manifest, limits=limits)
    assert info.value.code == "envelope-too-many"
    assert open_(seal_batch(PAYLOADS), manifest, limits=Limits(max_payloads=len(PAYLOADS)))


def test_payload_too_large(manifest: Manifest) -> None:
    biggest = max(len(p) for p in PAYLOADS)
    with pytest.raises(InvalidEnvelope) as info:
        open_(seal_batch(PAYLOADS), manifest, limits=Limits(max_payload_bytes=biggest - 1))
    assert info.value.code == "payload-too-large"
    assert open_(seal_batch(PAYLOADS), manifest, limits=Limits(max_payload_bytes=biggest))


@pytest.mark.parametrize("header", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08"])
def test_malformed_header_bytes(manifest: Manifest, header: bytes) -> None:
    envelope = seal_batch(PAYLOADS).to_proto()
    envelope.header = header
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "header-malformed"


@pytest.mark.parametrize("missing", [{"sender": ""}, {"key_id": ""}, {"signed_at": None}], ids=str)
def test_incomplete_header(manifest: Manifest, missing: dict[str, object]) -> None:
    header, signature = signed_header(**missing)
    envelope = xpb.Envelope(header=header, signature=signature, payloads=PAYLOADS)
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "header-incomplete"


@pytest.mark.parametrize("kind", [0, 5, 99])  # 3, 4: PAYLOAD_KIND_CASE_EVENT, _CASE_TRANSFER
def test_unknown_payload_kind(manifest: Manifest, kind: int) -> None:
    header, signature = signed_header(kind=kind)
    envelope = xpb.Envelope(header=header, signature=signature, payloads=PAYLOADS)
    with pytest.raises(InvalidEnvelope) as info:
        open_(envelope, manifest)
    assert info.value.code == "header-kind"


# -- receipts -----------------------------------------------------------------------------------

RESULTS = (
    PayloadResult(0, "r-" + "1" * 32, Outcome.NEW_CASE, "c-" + "1" * 32),
    PayloadResult(1, "r-" + "2" * 32, Outcome.MERGED, "c-" + "1" * 32),
    PayloadResult(2, "", Outcome.REJECTED, reason="origin-mismatch: origin is not the signer"),
)


@pytest.fixture
def opened(manifest: Manifest) -> Opened:
    return open_(seal_batch(PAYLOADS[:3], sequence=9), manifest)


def _receipt(opened: Opened, *, key_of: str = "de-eco") -> xpb.SignedReceipt:
    at = T0 + timedelta(seconds=3)
    return sign_receipt(
        signing_key(key_of), issuer="de-eco", opened=opened, received_at=at, results=RESULTS
    )


def _open_receipt(
    receipt: xpb.SignedReceipt, manifest: Manifest, opened: Opened, **override: object
) -> object:
    args: dict[str, object] = {
        "issuer": "de-eco",
        "sender": "nl-eokm",
        "sequence": opened.sequence,
        "root": opened.root,
        "count": len(opened.payloads),
    }
    args.update(override)
    return open_receipt(receipt, manifest=manifest, **args)  # type: ignore[arg-type]


def test_receipt_round_trip(manifest: Manifest, opened: Opened) -> None:
    receipt = _receipt(opened)
    got = open_receipt(
        receipt, manifest=manifest, issuer="de-eco", sender="nl-eokm", sequence=9,
        root=opened.root, count=3,
    )  # fmt: skip
    assert got.issuer == "de-eco"
    assert got.sequence == 9
    assert got.root == opened.root
    assert got.received_at == T0 + timedelta(seconds=3)
    assert got.results == RESULTS
    assert got.body == receipt.body
    assert got.signature == receipt.signature
    signing_key("de-eco").public.verify(receipt.signature, receipt.body)


def test_a_receipt_of_case_events_echoes_their_ids(manifest: Manifest, opened: Opened) -> None:
    # A case-event batch's receipt names each event by its id (e- and 32 hex digits).
    events = (
        PayloadResult(0, "e-" + "a" * 32, Outcome.ACCEPTED),
        PayloadResult(1, "e-" + "b" * 32, Outcome.REJECTED, reason="not-assigned: held by x"),
        PayloadResult(2, "", Outcome.REJECTED, reason="invalid-event: items"),
    )
    at = T0 + timedelta(seconds=3)
    receipt = sign_receipt(
        signing_key("de-eco"), issuer="de-eco", opened=opened, received_at=at, results=events
    )
    got = open_receipt(
        receipt, manifest=manifest, issuer="de-eco", sender="nl-eokm", sequence=9,
        root=opened.root, count=3, kind=KIND_EVENT,
    )  # fmt: skip
    assert got.results == events


@pytest.mark.parametrize(
    "override",
    [
        {"issuer": "us-ncmec"},
        {"sender": "ro-safernet"},
        {"sequence": 10},
        {"root": bytes(32)},
    ],
    ids=str,
)
def test_receipt_for_another_batch(
    manifest: Manifest, opened: Opened, override: dict[str, object]
) -> None:
    with pytest.raises(InvalidEnvelope) as info:
        _open_receipt(_receipt(opened), manifest, opened, **override)
    assert info.value.code == "receipt-mismatch"


def test_receipt_with_the_wrong_number_of_outcomes(manifest: Manifest, opened: Opened) -> None:
    with pytest.raises(InvalidEnvelope) as info:
        _open_receipt(_receipt(opened), manifest, opened, count=4)
    assert info.value.code == "receipt-count"


def test_receipt_signed_by_another_member(manifest: Manifest, opened: Opened) -> None:
    # Claims to be de-eco's receipt, signed with us-ncmec's key: not one of de-eco's keys.
    with pytest.raises(UnknownKey):
        _open_receipt(_receipt(opened, key_of="us-ncmec"), manifest, opened)


def test_tampered_receipt_body(manifest: Manifest, opened: Opened) -> None:
    receipt = _receipt(opened)
    at = receipt.body.index(b"origin-mismatch")
    receipt.body = flip(receipt.body, at)
    with pytest.raises(SignatureInvalid):
        _open_receipt(receipt, manifest, opened)


def test_malformed_receipt_body(manifest: Manifest, opened: Opened) -> None:
    receipt = _receipt(opened)
    receipt.body = b"\xff\xff"
    with pytest.raises(InvalidEnvelope) as info:
        _open_receipt(receipt, manifest, opened)
    assert info.value.code == "receipt-malformed"


# -- stored leaves ------------------------------------------------------------------------------


def test_stored_leaf_with_a_flipped_proof_byte(manifest: Manifest) -> None:
    opened = open_(seal_batch(PAYLOADS), manifest)
    proof = opened.proofs[2]
    assert proof  # five leaves: a real path
    verify_stored_leaf(PAYLOADS[2], 2, opened.header_bytes, proof)
    for at in (0, len(proof) - 1):
        with pytest.raises(ProofInvalid):
            verify_stored_leaf(PAYLOADS[2], 2, opened.header_bytes, flip(proof, at))


def test_stored_leaf_at_the_wrong_index_or_with_other_bytes(manifest: Manifest) -> None:
    opened = open_(seal_batch(PAYLOADS), manifest)
    with pytest.raises(ProofInvalid):
        verify_stored_leaf(PAYLOADS[2], 3, opened.header_bytes, opened.proofs[2])
    with pytest.raises(ProofInvalid):
        verify_stored_leaf(PAYLOADS[3], 2, opened.header_bytes, opened.proofs[2])
    with pytest.raises(ProofInvalid):
        verify_stored_leaf(flip(PAYLOADS[2], 0), 2, opened.header_bytes, opened.proofs[2])


# A receipt's time starts the takedown clock: it must fall between the batch's signing and now.
SKEW = timedelta(minutes=15)


def _signed_at(opened: Opened, at: datetime) -> xpb.SignedReceipt:
    return sign_receipt(
        signing_key("de-eco"), issuer="de-eco", opened=opened, received_at=at, results=RESULTS
    )


@pytest.mark.parametrize(
    ("received", "sent", "now", "ok"),
    [
        (T0, T0, T0, True),
        (T0 - SKEW, T0, T0, True),  # the receiver's clock is behind ours by the tolerance
        (T0 + SKEW, T0, T0, True),  # ... or ahead of it
        (T0 - SKEW - timedelta(seconds=1), T0, T0, False),  # before the batch was signed
        (T0 + SKEW + timedelta(seconds=1), T0, T0, False),  # after now
        # A replayed receipt keeps its time, long before this resend of the batch.
        (T0, T0, T0 + timedelta(days=3), True),
    ],
    ids=["same", "behind", "ahead", "predated", "postdated", "replayed-days-later"],
)
def test_receipt_time_must_be_plausible(
    manifest: Manifest,
    opened: Opened,
    received: datetime,
    sent: datetime,
    now: datetime,
    ok: bool,
) -> None:
    receipt = _signed_at(opened, received)
    if ok:
        got = _open_receipt(receipt, manifest, opened, sent_at=sent, now=now, max_skew=SKEW)
        assert got.received_at == received  # type: ignore[attr-defined]
        return
    with pytest.raises(InvalidEnvelope) as info:
        _open_receipt(receipt, manifest, opened, sent_at=sent, now=now, max_skew=SKEW)
    assert info.value.code == "receipt-time"
    # Without the bounds (re-verifying a stored receipt later) the same receipt verifies.
    assert _open_receipt(receipt, manifest, opened)


@pytest.mark.parametrize(
    "time",
    [None, {"seconds": 253402300800}, {"seconds": 0, "nanos": -1}],
    ids=["missing", "after-9999", "bad-nanos"],
)
def test_receipt_time_missing_or_out_of_range(
    manifest: Manifest, opened: Opened, time: dict[str, int] | None
) -> None:
    body = xpb.ReceiptBody()
    body.ParseFromString(_receipt(opened).body)
    body.ClearField("received_at")
    if time is not None:
        body.received_at.seconds = time["seconds"]
        body.received_at.nanos = time.get("nanos", 0)
    data = body.SerializeToString(deterministic=True)
    receipt = xpb.SignedReceipt(body=data, signature=signing_key("de-eco").sign(data))
    with pytest.raises(InvalidEnvelope) as info:
        _open_receipt(receipt, manifest, opened)
    assert info.value.code == "receipt-time"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("case_id", "c-'; DROP TABLE deliveries; --"),
        ("report_id", "x" * 40),
        ("reason", "r" * 301),
        ("reason", "line\nbreak"),
        ("index", 7),
    ],
)
def test_a_receipt_outcome_of_a_form_ihx_never_signs_is_refused(
    manifest: Manifest, field: str, value: object
) -> None:
    sealed = seal_batch([b"payload"])
    body = xpb.ReceiptBody(
        issuer="de-eco",
        batch_sender="nl-eokm",
        batch_sequence=1,
        batch_root=sealed.root,
        key_id=signing_key("de-eco").key_id,
    )
    body.received_at.CopyFrom(timestamp(T0))
    outcome = body.outcomes.add(index=0, outcome=xpb.OUTCOME_NEW_CASE, case_id="c-" + "0" * 32)
    setattr(outcome, field, value)
    raw = body.SerializeToString(deterministic=True)
    receipt = xpb.SignedReceipt(body=raw, signature=signing_key("de-eco").sign(raw))
    with pytest.raises(InvalidEnvelope) as refused:
        open_receipt(
            receipt,
            manifest=manifest,
            issuer="de-eco",
            sender="nl-eokm",
            sequence=1,
            root=sealed.root,
            count=1,
        )
    assert refused.value.code == "receipt-outcome"


def _one_outcome_receipt(echoed: str) -> tuple[xpb.SignedReceipt, bytes]:
    sealed = seal_batch([b"payload"])
    body = xpb.ReceiptBody(
        issuer="de-eco",
        batch_sender="nl-eokm",
        batch_sequence=1,
        batch_root=sealed.root,
        key_id=signing_key("de-eco").key_id,
    )
    body.received_at.CopyFrom(timestamp(T0))
    body.outcomes.add(index=0, outcome=xpb.OUTCOME_ACCEPTED, report_id=echoed)
    raw = body.SerializeToString(deterministic=True)
    return xpb.SignedReceipt(body=raw, signature=signing_key("de-eco").sign(raw)), sealed.root


EVENT_ID = "e-" + "3" * 32
REPORT_ID = "r-" + "3" * 32


@pytest.mark.parametrize(
    ("kind", "echoed", "ok"),
    [
        (KIND_EVENT, EVENT_ID, True),  # a receiver applying case events echoes their ids
        (KIND_EVENT, "", True),
        (KIND_EVENT, REPORT_ID, False),
        (KIND_REPORT, EVENT_ID, False),
        (KIND_REPORT, REPORT_ID, True),
    ],
    ids=["event-id", "event-none", "event-report-id", "report-event-id", "report-id"],
)
def test_a_receipt_echoes_ids_of_its_batch_kind(
    manifest: Manifest, kind: int, echoed: str, ok: bool
) -> None:
    receipt, root = _one_outcome_receipt(echoed)
    args = {"issuer": "de-eco", "sender": "nl-eokm", "sequence": 1, "root": root, "count": 1}
    if ok:
        got = open_receipt(receipt, manifest=manifest, kind=kind, **args)  # type: ignore[arg-type]
        assert got.results[0].report_id == echoed
        return
    with pytest.raises(InvalidEnvelope) as refused:
        open_receipt(receipt, manifest=manifest, kind=kind, **args)  # type: ignore[arg-type]
    assert refused.value.code == "receipt-outcome"
