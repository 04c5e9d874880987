"""A signed hello: "I, member S, am back", said to member R — and opened as hostile input.

A node that starts has often nothing to send its peers, so nothing of it reaches them and their
senders to it wait out their backoff (up to 5 minutes). Its hello (``Exchange.Hello``) tells each
peer at once. The body binds sender, recipient, signing time, manifest epoch and key id; the
signature is Ed25519 over ``DOMAIN + body`` (the domain tag keeps a hello's signature from ever
passing for an envelope header's, a receipt's, a checkpoint's or a statistics answer's, and the
reverse: none of those begins with these bytes, which are no valid encoding of any of them).

``open_hello`` trusts nothing until it has checked, cheapest first: size, the body strictly
decoded (known fields only, canonical bytes), complete, addressed to this node, from a member of
the manifest, signed within the clock skew of our time either way (a hello is not stored and
proves liveness only *now*: an old one proves nothing), the key valid at that time
(``vet_hello``: all free), then the signature (``verify_hello``). The caller
(``exchange/hellos.py``) adds the TLS binding, the rate limits and the replay guard. A newer
manifest epoch than ours is no refusal: the signature verified with the keys we hold, and the
epoch is only reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import DecodeError

from auth.errors import KeyNotValid, UnknownKey
from auth.keys import SigningKey
from auth.manifest import Manifest
from exchange.errors import InvalidHello, InvalidReport, WrongRecipient
from exchange.time_window import TimeWindow
from exchange.wire.codec import from_timestamp, timestamp
from exchange.wire.known_fields import require_exact
from ihx.v1 import exchange_pb2 as xpb

__all__ = [
    "DOMAIN",
    "MAX_BODY_BYTES",
    "Hello",
    "decode_body",
    "open_hello",
    "sign_hello",
    "verify_hello",
    "vet_hello",
]

DOMAIN = b"ihx-hello-v1\0"
# Two member ids (63 characters), a time, an epoch and a key id: a few hundred bytes at most.
MAX_BODY_BYTES = 512


@dataclass(frozen=True, slots=True)
class Hello:
    """A hello that verified: who said it, when, under which manifest epoch."""

    sender: str
    signed_at: datetime
    manifest_epoch: int
    key_id: str


def sign_hello(
    key: SigningKey, *, sender: str, recipient: str, signed_at: datetime, manifest_epoch: int
) -> xpb.SignedHello:
    body = xpb.HelloBody(
        sender=sender,
        recipient=recipient,
        signed_at=timestamp(signed_at),
        manifest_epoch=manifest_epoch,
        key_id=key.key_id,
    ).SerializeToString(deterministic=True)
    return xpb.SignedHello(body=body, signature=key.sign(DOMAIN + body))


def decode_body(signed: xpb.SignedHello) -> xpb.HelloBody:
    """The body strictly decoded and complete — nothing in it verified yet."""
    if len(signed.body) > MAX_BODY_BYTES:
        raise InvalidHello(
            f"hello body is {len(signed.body)} bytes, at most {MAX_BODY_BYTES}",
            code="hello-size",
        )
    body = xpb.HelloBody()
    try:
        body.ParseFromString(signed.body)
    except DecodeError:
        raise InvalidHello("hello body is not a HelloBody", code="hello-malformed") from None
    require_exact(body, signed.body, "the hello body")
    if not (body.sender and body.recipient and body.key_id and body.HasField("signed_at")):
        raise InvalidHello("hello lacks sender, recipient, key id or time", code="hello-incomplete")
    if body.manifest_epoch < 1:
        raise InvalidHello("hello names no manifest epoch", code="hello-incomplete")
    return body


def vet_hello(
    body: xpb.HelloBody,
    *,
    manifest: Manifest,
    self_member: str,
    now: datetime,
    max_skew: timedelta,
) -> Hello:
    """Every check of ``body`` (from ``decode_body``) that costs nothing: the signature is not
    looked at yet, so the ``Hello`` returned is only what the body *claims*.

    Raises ``WrongRecipient``, ``InvalidHello`` (time), and the manifest's ``UnknownMember``,
    ``UnknownKey`` and ``KeyNotValid``.
    """
    if body.recipient != self_member:
        raise WrongRecipient(
            f"hello is addressed to {body.recipient[:64]!r}, this node is {self_member!r}"
        )
    member = manifest.member(body.sender)  # UnknownMember before any signature work
    try:
        signed_at = from_timestamp(body.signed_at)
    except InvalidReport as error:
        raise InvalidHello(error.message, code="hello-time") from None
    # The signer's window (never before it joined) as for every time a peer states, and no
    # older than the skew: an old hello proves nothing about now.
    window = TimeWindow.for_signer(member.joined_at, now, max_skew)
    floor = max(window.floor, now - max_skew)
    if not floor <= signed_at <= window.ceiling:
        raise InvalidHello(
            f"hello signed at {signed_at.isoformat()}, outside {floor.isoformat()} to "
            f"{window.ceiling.isoformat()} (this node's time and clock skew)",
            code="hello-time",
        )
    key = member.key(body.key_id)
    if key is None:
        raise UnknownKey(f"member {body.sender!r} has no key {body.key_id[:64]!r}")
    reason = key.invalid_reason(signed_at)
    if reason is not None:
        raise KeyNotValid(
            f"key {body.key_id!r} of member {body.sender!r} is {reason}; the hello was signed "
            f"at {signed_at.isoformat()}"
        )
    return Hello(body.sender, signed_at, body.manifest_epoch, body.key_id)


def verify_hello(signed: xpb.SignedHello, hello: Hello, manifest: Manifest) -> None:
    """The signature of ``signed`` (vetted as ``hello``), or ``SignatureInvalid``."""
    manifest.verify_member_signature(
        hello.sender, hello.key_id, hello.signed_at, DOMAIN + signed.body, signed.signature
    )


def open_hello(
    signed: xpb.SignedHello,
    body: xpb.HelloBody,
    *,
    manifest: Manifest,
    self_member: str,
    now: datetime,
    max_skew: timedelta,
) -> Hello:
    """Verify ``body`` (from ``decode_body``) and its signature; a typed error names what failed
    (those of ``vet_hello``, then ``SignatureInvalid``)."""
    hello = vet_hello(body, manifest=manifest, self_member=self_member, now=now, max_skew=max_skew)
    verify_hello(signed, hello, manifest)
    return hello
