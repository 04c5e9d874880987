"""Refusals over real gRPC: what a node must not accept, the status it answers, nothing stored.

The test plays de-eco talking to us-ncmec's Exchange service directly (``Deliver`` and
``Stream``), sealing envelopes with ``exchange.wire.envelope.seal`` and the federation's real keys,
around report payloads built by de-eco's own intake (so they are exactly what de-eco would
send). Each refusal must come with its specific status code and leave us-ncmec's store as it
was; afterwards a valid envelope must still be accepted — a refusal never wedges the node.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from auth.keys import SigningKey
from auth.manifest import MemberKey, add_key, bump_epoch, revoke_key
from exchange.wire.envelope import KIND_REPORT, Sealed, open_receipt, seal
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import DE, NL, US, Cluster, wait_until

pytestmark = pytest.mark.timeout(60)

# Tables that only the receiving of envelopes writes to (at a node nobody else sends to).
STORE_TABLES = (
    "inbox",
    "reports",
    "items",
    "item_hashes",
    "cases",
    "case_reports",
    "hash_index",
    "announcements",
    "routing_log",
)


class Peer:
    """de-eco's side of a connection to us-ncmec, driven by hand."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.channel = grpc.insecure_channel(cluster.address(US))
        self.stub = xgrpc.ExchangeStub(self.channel)
        self.key = cluster.fed.keys[DE]
        # Far above anything de-eco's own sender uses, so the two never collide.
        self._sequences = itertools.count(1_000_000)
        self._reports = itertools.count()

    def close(self) -> None:
        self.channel.close()

    def payloads(self, n: int = 2) -> list[bytes]:
        """Fresh US-hosted reports from de-eco, serialized by de-eco's intake."""
        intake = self.cluster.node(DE).intake
        out = []
        for _ in range(n):
            i = next(self._reports)
            sub = make_submission(url_in("US", f"/peer/{i}.jpg"), hashes=[f"peer-{i}"])
            prepared = intake.prepare(sub)
            assert prepared.decision.member == US
            out.append(prepared.wire)
        return out

    def seal(
        self,
        payloads: list[bytes] | None = None,
        *,
        key: SigningKey | None = None,
        sender: str = DE,
        recipient: str = US,
        sequence: int | None = None,
        signed_at: datetime | None = None,
    ) -> Sealed:
        return seal(
            key or self.key,
            sender=sender,
            recipient=recipient,
            sequence=sequence if sequence is not None else next(self._sequences),
            kind=KIND_REPORT,
            payloads=payloads if payloads is not None else self.payloads(),
            signed_at=signed_at or datetime.now(UTC),
            manifest_epoch=self.epoch(),
        )

    def epoch(self) -> int:
        info = self.stub.GetNodeInfo(xpb.NodeInfoRequest(), timeout=5)
        return int(info.manifest_epoch)

    def deliver(self, sealed: Sealed | xpb.Envelope) -> xpb.SignedReceipt:
        env = sealed.to_proto() if isinstance(sealed, Sealed) else sealed
        receipt: xpb.SignedReceipt = self.stub.Deliver(env, timeout=10)
        return receipt

    def stream(self, envelopes: list[xpb.Envelope]) -> list[xpb.SignedReceipt]:
        return list(self.stub.Stream(iter(envelopes), timeout=10))

    def refused(self, sealed: Sealed | xpb.Envelope, *, via_stream: bool = False) -> grpc.RpcError:
        env = sealed.to_proto() if isinstance(sealed, Sealed) else sealed
        send = (lambda: self.stream([env])) if via_stream else (lambda: self.deliver(env))
        with pytest.raises(grpc.RpcError) as info:
            send()
        return info.value

    def accepted(self, sealed: Sealed) -> list[str]:
        """Deliver a valid envelope; check its signed receipt; return the per-report outcomes."""
        receipt = self.deliver(sealed)
        opened = open_receipt(
            receipt,
            manifest=self.cluster.node(US).manifests.current(),
            issuer=US,
            sender=DE,
            sequence=_sequence(sealed),
            root=sealed.root,
            count=len(sealed.payloads),
        )
        return [r.outcome.value for r in opened.results]

    def assert_still_serves(self) -> None:
        assert self.accepted(self.seal()) == ["new-case", "new-case"]

    def store(self) -> dict[str, int]:
        return {t: self.cluster.count(US, t) for t in STORE_TABLES}

    def quiet_store(self) -> dict[str, int]:
        """The store once us-ncmec has finished announcing what it accepted so far."""
        wait_until(lambda: self.cluster.drained(US), 20, what="us-ncmec's outbox drained")
        return self.store()


def _sequence(sealed: Sealed) -> int:
    header = xpb.EnvelopeHeader()
    header.ParseFromString(sealed.header)
    return header.sequence


@pytest.fixture
def peer(cluster: Cluster) -> Iterator[Peer]:
    p = Peer(cluster)
    yield p
    p.close()


def _flip(data: bytes, at: int | None = None) -> bytes:
    b = bytearray(data)
    b[len(b) // 2 if at is None else at] ^= 0x01
    return bytes(b)


def test_a_valid_envelope_is_accepted_and_receipted(peer: Peer) -> None:
    before = peer.quiet_store()
    assert peer.accepted(peer.seal(peer.payloads(3))) == ["new-case"] * 3
    after = peer.store()
    assert after["inbox"] == before["inbox"] + 1
    assert after["reports"] == before["reports"] + 3
    assert after["cases"] == before["cases"] + 3


def test_tampered_envelope_is_refused_and_nothing_is_stored(peer: Peer) -> None:
    before = peer.quiet_store()

    sealed = peer.seal()
    env = sealed.to_proto()
    env.payloads[0] = _flip(env.payloads[0])
    error = peer.refused(env)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "root-mismatch" in (error.details() or "")
    # The same over the stream the senders use.
    error = peer.refused(env, via_stream=True)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT

    # A flipped signature bit, and a header that no longer matches its signature.
    env = sealed.to_proto()
    env.signature = _flip(env.signature)
    assert peer.refused(env).code() is grpc.StatusCode.UNAUTHENTICATED
    other = peer.seal(list(sealed.payloads))
    env = xpb.Envelope(header=other.header, signature=sealed.signature, payloads=sealed.payloads)
    assert peer.refused(env).code() is grpc.StatusCode.UNAUTHENTICATED
    # A payload dropped after sealing.
    env = sealed.to_proto()
    del env.payloads[-1]
    assert peer.refused(env).code() is grpc.StatusCode.INVALID_ARGUMENT

    assert peer.store() == before
    # The untouched envelope is still good: nothing about it was recorded by the refusals.
    assert peer.accepted(sealed) == ["new-case", "new-case"]
    peer.assert_still_serves()


def test_envelope_for_another_member_is_refused(peer: Peer) -> None:
    before = peer.quiet_store()
    error = peer.refused(peer.seal(recipient=NL))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "wrong-recipient" in (error.details() or "")
    assert peer.refused(peer.seal(recipient=NL), via_stream=True).code() is (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert peer.store() == before
    peer.assert_still_serves()


def test_key_revoked_before_signing_is_refused(cluster: Cluster, peer: Peer) -> None:
    fed = cluster.fed
    extra = SigningKey.generate()
    start = datetime.now(UTC) - timedelta(minutes=1)

    # Epoch 2: de-eco gets a second key; us-ncmec picks it up without a restart.
    fed.publish(
        bump_epoch(
            add_key(fed.manifest, DE, MemberKey.of(extra.public, start)),
            issued_at=datetime.now(UTC),
        )
    )
    wait_until(lambda: peer.epoch() == 2, 20, what="us-ncmec on epoch 2")
    good = peer.seal(key=extra)
    assert peer.accepted(good) == ["new-case", "new-case"]

    # Epoch 3: that key is revoked from now on.
    revoked_at = datetime.now(UTC)
    fed.publish(
        bump_epoch(revoke_key(fed.manifest, DE, extra.key_id, at=revoked_at), issued_at=revoked_at)
    )
    wait_until(lambda: peer.epoch() == 3, 20, what="us-ncmec on epoch 3")
    before = peer.quiet_store()

    late = peer.seal(key=extra, signed_at=revoked_at + timedelta(seconds=1))
    error = peer.refused(late)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in (error.details() or "")
    assert peer.refused(late, via_stream=True).code() is grpc.StatusCode.PERMISSION_DENIED
    assert peer.store() == before

    # What the key signed before its revocation stays verifiable: the replay gets its receipt.
    assert peer.accepted(good) == ["new-case", "new-case"]
    assert peer.store() == before
    peer.assert_still_serves()  # de-eco's node key is untouched


def test_replayed_sequence(peer: Peer) -> None:
    before = peer.quiet_store()
    sealed = peer.seal(peer.payloads(3))
    env = sealed.to_proto()

    first = peer.deliver(env)
    again = peer.deliver(env)
    streamed = peer.stream([env, env])
    assert again.SerializeToString() == first.SerializeToString()
    assert [r.SerializeToString() for r in streamed] == [first.SerializeToString()] * 2
    stored = peer.store()
    assert stored["inbox"] == before["inbox"] + 1
    assert stored["reports"] == before["reports"] + 3
    assert stored["case_reports"] == before["case_reports"] + 3

    # The same sequence number with other content: refused, nothing stored.
    conflict = peer.seal(sequence=_sequence(sealed))
    error = peer.refused(conflict)
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "sequence-conflict" in (error.details() or "")
    assert peer.refused(conflict, via_stream=True).code() is grpc.StatusCode.ALREADY_EXISTS
    assert peer.quiet_store() == stored
    # ... and the original still gets its receipt, byte for byte.
    assert peer.deliver(env).SerializeToString() == first.SerializeToString()
    peer.assert_still_serves()


def test_unknown_sender_key_and_unknown_member_are_refused(peer: Peer) -> None:
    before = peer.quiet_store()
    stranger = SigningKey.generate()

    error = peer.refused(peer.seal(key=stranger))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert stranger.key_id in (error.details() or "")
    assert peer.refused(peer.seal(key=stranger), via_stream=True).code() is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # A member the manifest does not know at all.
    error = peer.refused(peer.seal(key=stranger, sender="xx-rogue"))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    # Another member's real key claiming to be de-eco.
    error = peer.refused(peer.seal(key=peer.cluster.fed.keys[NL]))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED

    assert peer.store() == before
    peer.assert_still_serves()


def test_envelopes_over_the_limits_or_from_the_future_are_refused(peer: Peer) -> None:
    before = peer.quiet_store()
    limits = peer.cluster.node(US).limits
    one = peer.payloads(1)
    cases: list[tuple[str, Sealed]] = [
        ("envelope-too-many", peer.seal(one * (limits.max_payloads + 1))),
        ("payload-too-large", peer.seal([*one, b"\x0a" * (limits.max_payload_bytes + 1)])),
        ("envelope-empty", peer.seal([])),
        ("envelope-future", peer.seal(signed_at=datetime.now(UTC) + timedelta(minutes=30))),
    ]
    for code, sealed in cases:
        error = peer.refused(sealed)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, code
        assert (error.details() or "").startswith(code), (code, error.details())
    assert peer.store() == before
    peer.assert_still_serves()
