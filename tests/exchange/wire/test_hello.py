"""The signed hello's bytes: what is signed, and that its signature passes for nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auth.errors import SignatureInvalid
from exchange.errors import InvalidEnvelope, UnknownFields
from exchange.wire.envelope import KIND_REPORT, Limits, open_envelope, seal
from exchange.wire.hello import DOMAIN, Hello, decode_body, open_hello, sign_hello
from ihx.v1 import exchange_pb2 as xpb
from tests.auth.factories import make_network, signing_key

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=15)


def _signed(at: datetime = NOW) -> xpb.SignedHello:
    return sign_hello(
        signing_key("de-eco"), sender="de-eco", recipient="nl-eokm", signed_at=at, manifest_epoch=3
    )


def _open(signed: xpb.SignedHello) -> Hello:
    return open_hello(
        signed,
        decode_body(signed),
        manifest=make_network().manifest,
        self_member="nl-eokm",
        now=NOW,
        max_skew=SKEW,
    )


def test_a_hello_opens_to_what_was_signed() -> None:
    signed = _signed(NOW - timedelta(seconds=3))
    assert signed.body == xpb.HelloBody.FromString(signed.body).SerializeToString(
        deterministic=True
    ), "signed canonically"
    assert _open(signed) == Hello(
        "de-eco", NOW - timedelta(seconds=3), 3, signing_key("de-eco").key_id
    )


def test_the_signature_covers_the_domain_tag_and_every_byte() -> None:
    signed = _signed()
    signing_key("de-eco").public.verify(signed.signature, DOMAIN + signed.body)
    with pytest.raises(SignatureInvalid):
        signing_key("de-eco").public.verify(signed.signature, signed.body)
    other = xpb.HelloBody.FromString(signed.body)
    other.manifest_epoch = 4
    changed = xpb.SignedHello(
        body=other.SerializeToString(deterministic=True), signature=signed.signature
    )
    with pytest.raises(SignatureInvalid):
        _open(changed)


def test_hello_bytes_never_pass_for_an_envelope_header() -> None:
    """A hello's signed bytes start with the domain tag, which no signed message of ihx begins
    with: presented as an envelope header they are refused before any signature check."""
    signed = _signed()
    sealed = seal(
        signing_key("de-eco"),
        sender="de-eco",
        recipient="nl-eokm",
        sequence=1,
        kind=KIND_REPORT,
        payloads=[b"x"],
        signed_at=NOW,
        manifest_epoch=1,
    )
    forged = xpb.Envelope(
        header=DOMAIN + signed.body, signature=signed.signature, payloads=sealed.payloads
    )
    with pytest.raises((InvalidEnvelope, UnknownFields)):
        open_envelope(
            forged,
            manifest=make_network().manifest,
            self_member="nl-eokm",
            now=NOW,
            limits=Limits(),
        )
