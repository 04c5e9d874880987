"""Signed statistics: a node signs its own snapshot; a gatherer opens a member's answer.

The node signs the exact body bytes it sends, Ed25519 over ``DOMAIN + body`` (the domain tag
keeps a statistics signature from ever passing for a checkpoint's, a receipt's or an
envelope's). ``open_statistics`` takes the answer's raw bytes and trusts nothing in them until
the signature verifies: size first, then the outer message (known fields only), then the
signature against the asked member's key in the signed manifest — all *before* the body is
parsed — then the body must be the canonical encoding of what it parses to (no unknown field,
no duplicate, nothing unaccounted for), and only then is it decoded and checked field by field
(``stats_codec.snapshot_from_body``). Every refusal is a ``StatisticsRefused`` whose ``code``
names the check.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf.message import DecodeError

from auth.errors import AuthError
from auth.keys import SigningKey
from auth.manifest import Manifest
from exchange.errors import StatisticsRefused, UnknownFields
from exchange.stats.model import Period, Snapshot
from exchange.wire.known_fields import require_exact, require_known
from exchange.wire.stats_codec import body_from_snapshot, snapshot_from_body
from ihx.v1 import statistics_pb2 as spb

__all__ = ["DOMAIN", "MAX_BODY_BYTES", "open_statistics", "sign_statistics", "signed_bytes"]

DOMAIN = b"ihx-statistics-v1\0"
# A body above this is refused by both sides (the node tells the caller to ask for less): a
# year by day with thousands of hosters fits many times over; gRPC's own limit is 16 MiB.
MAX_BODY_BYTES = 8 * 1024 * 1024
_MAX_ANSWER_BYTES = MAX_BODY_BYTES + 1024  # the body, its key id and its signature
_MAX_KEY_ID = 128


def signed_bytes(body: bytes) -> bytes:
    """What the signature covers."""
    return DOMAIN + body


def sign_statistics(key: SigningKey, snapshot: Snapshot) -> spb.SignedStatistics:
    """``snapshot`` (one member's own) encoded canonically and signed with ``key``."""
    body = body_from_snapshot(snapshot).SerializeToString(deterministic=True)
    return spb.SignedStatistics(
        body=body, key_id=key.key_id, signature=key.sign(signed_bytes(body))
    )


def open_statistics(
    data: bytes,
    *,
    member: str,
    period: Period,
    manifest: Manifest,
    now: datetime,
    max_skew: timedelta,
) -> Snapshot:
    """``member``'s snapshot of ``period`` from its answer's bytes, or ``StatisticsRefused``."""
    signed = _outer(data)
    if len(signed.key_id) > _MAX_KEY_ID:  # before it is quoted in any message
        raise StatisticsRefused(
            f"key_id of {len(signed.key_id)} characters, at most {_MAX_KEY_ID}",
            code="stats-signature",
        )
    try:
        # Key validity is judged at our own time: the body's claimed time is not read yet.
        manifest.verify_member_signature(
            member, signed.key_id, now, signed_bytes(signed.body), signed.signature
        )
    except AuthError as error:
        raise StatisticsRefused(
            f"signature of {member} refused: {error.message}", code="stats-signature"
        ) from None
    body = spb.StatisticsBody()
    try:
        body.ParseFromString(signed.body)
        require_exact(body, signed.body, "the statistics body")
    except DecodeError:
        raise StatisticsRefused(
            "the signed body is not a StatisticsBody", code="stats-malformed"
        ) from None
    except UnknownFields as error:
        code = "stats-not-canonical" if error.code == "not-canonical" else "stats-unknown-field"
        raise StatisticsRefused(error.message, code=code) from None
    return snapshot_from_body(body, member=member, period=period, now=now, max_skew=max_skew)


def _outer(data: bytes) -> spb.SignedStatistics:
    if len(data) > _MAX_ANSWER_BYTES:
        raise StatisticsRefused(
            f"the answer is {len(data)} bytes, at most {_MAX_ANSWER_BYTES}", code="stats-size"
        )
    signed = spb.SignedStatistics()
    try:
        signed.ParseFromString(data)
        require_known(signed, data, "the signed statistics")
    except DecodeError:
        raise StatisticsRefused(
            "the answer is not a SignedStatistics message", code="stats-malformed"
        ) from None
    except UnknownFields as error:
        raise StatisticsRefused(error.message, code="stats-unknown-field") from None
    return signed
