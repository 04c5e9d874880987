"""The hello desk: verified hellos wake the sender of their member, and nothing else does.

Real keys and signatures from the test network (tests/auth/factories.py), a fixed clock. Each
refusal is a typed error (mapped to its status once, at the edge) and calls nobody; a flood is
refused before the signature is checked; a replay is refused after it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from auth.errors import (
    KeyNotValid,
    PermissionDenied,
    SignatureInvalid,
    UnknownKey,
    UnknownMember,
)
from auth.keys import SigningKey
from auth.manifest import Manifest
from auth.tls import create_ca, issue_node_certificate
from common.clock import Clock
from exchange.edge.status import status_for
from exchange.errors import (
    HelloFlood,
    HelloReplayed,
    InvalidHello,
    UnknownFields,
    WrongRecipient,
)
from exchange.hellos import HelloDesk
from exchange.ops.metrics import Metrics
from exchange.wire.hello import DOMAIN, sign_hello
from ihx.v1 import exchange_pb2 as xpb
from tests.auth.factories import make_member, make_network, member_key, signing_key

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=15)
NL, DE = "nl-eokm", "de-eco"


class Clocked:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _desk(
    manifest: Manifest | None = None, clock: Clock | None = None, **options: object
) -> tuple[HelloDesk, list[str], Metrics]:
    heard: list[str] = []
    metrics = Metrics()
    net = manifest or make_network().manifest
    desk = HelloDesk(
        self_member=NL,
        manifest=lambda: net,
        clock=clock or Clocked(NOW),
        max_skew=SKEW,
        on_hello=heard.append,
        metrics=metrics,
        **options,  # type: ignore[arg-type]
    )
    return desk, heard, metrics


def _hello(
    key: SigningKey | None = None,
    *,
    sender: str = DE,
    recipient: str = NL,
    at: datetime = NOW,
) -> xpb.SignedHello:
    return sign_hello(
        key or signing_key(sender),
        sender=sender,
        recipient=recipient,
        signed_at=at,
        manifest_epoch=1,
    )


def test_a_valid_hello_is_acknowledged_and_wakes_its_member() -> None:
    desk, heard, metrics = _desk()
    ack = desk.take(_hello(), None)
    assert ack.member == NL
    assert heard == [DE]
    assert metrics.hellos_received.labels(DE)._value.get() == 1


def _resigned(body: bytes, key: SigningKey) -> xpb.SignedHello:
    return xpb.SignedHello(body=body, signature=key.sign(DOMAIN + body))


@pytest.mark.parametrize(
    ("name", "hello", "error", "status"),
    [
        (
            "forged",
            xpb.SignedHello(
                body=_hello().body, signature=signing_key("mallory").sign(DOMAIN + _hello().body)
            ),
            SignatureInvalid,
            grpc.StatusCode.UNAUTHENTICATED,
        ),
        (
            "no domain tag",
            xpb.SignedHello(body=_hello().body, signature=signing_key(DE).sign(_hello().body)),
            SignatureInvalid,
            grpc.StatusCode.UNAUTHENTICATED,
        ),
        (
            "wrong recipient",
            _hello(recipient="us-ncmec"),
            WrongRecipient,
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            "stale",
            _hello(at=NOW - SKEW - timedelta(seconds=1)),
            InvalidHello,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "future",
            _hello(at=NOW + SKEW + timedelta(seconds=1)),
            InvalidHello,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "unknown member",
            _hello(signing_key("x"), sender="xx-nobody"),
            UnknownMember,
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            "unknown field",
            _resigned(_hello().body + b"\xf8\x06\x01", signing_key(DE)),
            UnknownFields,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "not canonical",
            # the same fields, in reverse order: not the bytes ihx signs
            _resigned(
                b"".join(
                    reversed(
                        [
                            f.SerializeToString(deterministic=True)
                            for f in (
                                xpb.HelloBody(sender=DE),
                                xpb.HelloBody(recipient=NL),
                                xpb.HelloBody(key_id=signing_key(DE).key_id, manifest_epoch=1),
                            )
                        ]
                    )
                )
                + xpb.HelloBody(
                    signed_at=xpb.HelloBody.FromString(_hello().body).signed_at
                ).SerializeToString(deterministic=True),
                signing_key(DE),
            ),
            UnknownFields,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "garbage",
            xpb.SignedHello(body=b"\xff\xff", signature=b""),
            InvalidHello,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "incomplete",
            _resigned(xpb.HelloBody(sender=DE).SerializeToString(), signing_key(DE)),
            InvalidHello,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "oversized",
            xpb.SignedHello(body=b"\x0a" + b"\x7f" + b"a" * 600),
            InvalidHello,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
def test_a_hostile_hello_is_refused_with_its_status_and_wakes_nobody(
    name: str, hello: xpb.SignedHello, error: type[Exception], status: grpc.StatusCode
) -> None:
    desk, heard, metrics = _desk()
    with pytest.raises(error) as caught:
        desk.take(hello, None)
    assert status_for(caught.value) is status, name
    assert heard == []
    assert metrics.hellos_refused.labels(caught.value.code)._value.get() == 1  # type: ignore[attr-defined]


def test_a_key_not_valid_at_the_signing_time_is_refused() -> None:
    kit = make_network()
    revoked = replace(
        kit.manifest,
        members=tuple(
            make_member(
                m.id,
                m.countries,
                keys=[member_key(signing_key(m.id), revoked_at=NOW - timedelta(days=1))],
            )
            if m.id == DE
            else m
            for m in kit.manifest.members
        ),
    )
    desk, heard, _ = _desk(revoked)
    with pytest.raises(KeyNotValid):
        desk.take(_hello(), None)
    assert heard == []


def test_a_replay_is_refused_and_a_newer_hello_taken() -> None:
    desk, heard, _ = _desk()
    first = _hello(at=NOW - timedelta(seconds=5))
    desk.take(first, None)
    with pytest.raises(HelloReplayed) as caught:
        desk.take(first, None)
    assert status_for(caught.value) is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(HelloReplayed):
        desk.take(_hello(at=NOW - timedelta(seconds=6)), None)  # older than the one taken
    desk.take(_hello(at=NOW), None)
    assert heard == [DE, DE]


def test_a_flood_is_refused_per_member_and_the_budget_refills() -> None:
    clock = Clocked(NOW)
    desk, heard, _ = _desk(clock=clock, burst=3, every_s=10.0)
    for i in range(3):
        desk.take(_hello(at=NOW - timedelta(seconds=10 - i)), None)
    with pytest.raises(HelloFlood) as caught:
        desk.take(_hello(at=NOW - timedelta(seconds=5)), None)
    assert status_for(caught.value) is grpc.StatusCode.RESOURCE_EXHAUSTED
    desk.take(_hello(signing_key("us-ncmec"), sender="us-ncmec"), None)  # another member's own
    clock.at = NOW + timedelta(seconds=10)
    desk.take(_hello(at=NOW + timedelta(seconds=10)), None)
    assert heard == [DE, DE, DE, "us-ncmec", DE]


def test_forged_and_misaddressed_hellos_never_spend_the_named_members_allowance() -> None:
    desk, heard, _ = _desk(burst=2, every_s=600.0)
    real = _hello(at=NOW - timedelta(seconds=30))
    for _ in range(5):  # a forger's: the member's body, any signature
        with pytest.raises(SignatureInvalid):
            desk.take(xpb.SignedHello(body=real.body, signature=b"x" * 64), None)
    for _ in range(5):  # refused by a free check: another recipient, too old, unknown key
        with pytest.raises(WrongRecipient):
            desk.take(_hello(recipient="us-ncmec", at=NOW - timedelta(seconds=20)), None)
        with pytest.raises(InvalidHello):
            desk.take(_hello(at=NOW - SKEW - timedelta(seconds=1)), None)
        with pytest.raises(UnknownKey):
            desk.take(_hello(SigningKey.generate(), at=NOW - timedelta(seconds=20)), None)
    desk.take(_hello(at=NOW - timedelta(seconds=2)), None)  # de-eco's own hellos: both taken
    desk.take(_hello(at=NOW - timedelta(seconds=1)), None)
    assert heard == [DE, DE]


def test_forgeries_share_one_allowance_then_hellos_are_refused_unread_until_it_refills() -> None:
    clock = Clocked(NOW)
    desk, heard, _ = _desk(clock=clock, forged_burst=2, forged_every_s=5.0)
    forged = xpb.SignedHello(body=_hello(at=NOW - timedelta(seconds=9)).body, signature=b"x" * 64)
    for _ in range(2):
        with pytest.raises(SignatureInvalid):
            desk.take(forged, None)
    with pytest.raises(HelloFlood) as caught:
        desk.take(forged, None)  # the signature is not looked at any more
    assert "bad signature" in caught.value.message
    with pytest.raises(HelloFlood):
        desk.take(_hello(at=NOW - timedelta(seconds=8)), None)  # the price, without mTLS
    clock.at = NOW + timedelta(seconds=5)
    desk.take(_hello(at=NOW), None)  # one forgery's worth refilled: genuine hellos pass
    assert heard == [DE]


def test_with_mtls_the_client_must_be_the_member_it_names() -> None:
    ca = create_ca("test-ca", now=NOW - timedelta(days=1))
    de_cert = issue_node_certificate(ca, DE, hosts=["127.0.0.1"], now=NOW - timedelta(days=1))
    us_cert = issue_node_certificate(
        ca, "us-ncmec", hosts=["127.0.0.1"], now=NOW - timedelta(days=1)
    )
    kit = make_network()
    bound = replace(
        kit.manifest,
        members=tuple(
            replace(m, tls_identity=de_cert.fingerprint) if m.id == DE else m
            for m in kit.manifest.members
        ),
    )
    desk, heard, _ = _desk(bound, bind_peers=True)
    for certificate in (None, us_cert.certificate_pem):
        with pytest.raises(PermissionDenied):
            desk.take(_hello(at=NOW - timedelta(seconds=1)), certificate)
    desk.take(_hello(), de_cert.certificate_pem)
    assert heard == [DE]
