"""Mutual TLS between nodes, end to end: real certificates, real handshakes, member binding.

The federation is provisioned with ``tls=True``: a development CA, one node certificate per
member (127.0.0.1 and localhost), and each member's certificate fingerprint as its
``tls_identity`` in the signed manifest — or, in the SPIFFE variant, ``spiffe://ihx/<member>``.
Every node requires a client certificate from the CA on every call, intake included.

What must hold: reports are forwarded, receipted and announced over mTLS; a valid certificate of
one member cannot carry an envelope signed by another (PERMISSION_DENIED, nothing stored); and a
client without a certificate, with a certificate from another CA, or without TLS at all never
gets past the handshake (UNAVAILABLE), whatever it sends.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from auth.manifest import bump_epoch, replace_member
from auth.tls import SPIFFE_PREFIX, create_ca, fingerprint, issue_node_certificate
from exchange.client.stubs import ClientTls, IntakeClient
from exchange.domain import Submission
from exchange.wire.codec import submission_to_proto
from exchange.wire.envelope import KIND_REPORT, open_receipt, seal
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2_grpc as igrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.ops import channel, health_status, stop_quickly
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    PLANS,
    US,
    Cluster,
    provision,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

MakeTlsCluster = Callable[..., Cluster]

# What receiving envelopes writes at a node (compared once every node's outbox is drained).
RECEIVED = ("inbox", "reports", "cases", "case_reports")

_sequences = itertools.count(1_000_000)  # far above what the nodes' own senders use


@pytest.fixture
def make_tls_cluster(tmp_path: Path) -> Iterator[MakeTlsCluster]:
    made: list[Cluster] = []

    def make(*, spiffe: bool = False) -> Cluster:
        fed = provision(tmp_path / f"tls{len(made)}", tls=True)
        if spiffe:
            manifest = fed.manifest
            for member in fed.manifest.members:
                spiffe_id = SPIFFE_PREFIX + member.id
                manifest = replace_member(
                    manifest, dataclasses.replace(member, tls_identity=spiffe_id)
                )
            fed.publish(bump_epoch(manifest, issued_at=datetime.now(UTC)))
        cluster = Cluster(fed)
        made.append(cluster)
        cluster.start(*(p.id for p in PLANS))
        return cluster

    yield make
    for cluster in made:
        stop_quickly(cluster)


Connect = Callable[[str, grpc.ChannelCredentials | ClientTls | None], grpc.Channel]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open a channel (plaintext, with credentials, or with (ca, cert, key)); closed after."""
    opened: list[grpc.Channel] = []

    def open_channel(address: str, tls: grpc.ChannelCredentials | ClientTls | None) -> grpc.Channel:
        if isinstance(tls, grpc.ChannelCredentials):
            ch = grpc.secure_channel(address, tls)
        else:
            ch = channel(address, tls)
        opened.append(ch)
        return ch

    yield open_channel
    for ch in opened:
        ch.close()


def tls_of(cluster: Cluster, member: str) -> ClientTls:
    return cluster.fed.client_tls(member)


def report_envelope(
    cluster: Cluster, signer: str, recipient: str, tag: str, n: int = 2
) -> xpb.Envelope:
    """``n`` reports built by ``signer``'s intake for ``recipient``, sealed with its real key."""
    country = {DE: "DE", US: "US", NL: "NL"}[recipient]
    intake = cluster.node(signer).intake
    payloads = []
    for i in range(n):
        prepared = intake.prepare(
            make_submission(url_in(country, f"/{tag}/{i}.jpg"), hashes=[f"{tag}-{i}"])
        )
        assert prepared.decision.member == recipient
        payloads.append(prepared.wire)
    return seal(
        cluster.fed.keys[signer],
        sender=signer,
        recipient=recipient,
        sequence=next(_sequences),
        kind=KIND_REPORT,
        payloads=payloads,
        signed_at=datetime.now(UTC),
        manifest_epoch=cluster.fed.manifest.epoch,
    ).to_proto()


def received(cluster: Cluster, member: str) -> dict[str, int]:
    return {t: cluster.count(member, t) for t in RECEIVED}


def quiet(cluster: Cluster, member: str) -> dict[str, int]:
    """``received`` once no node has anything left to send (reports or announcements)."""
    for m in cluster.nodes:
        wait_until(functools.partial(cluster.drained, m), 30, what=f"{m} drained")
    return received(cluster, member)


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def accepted_outcomes(cluster: Cluster, env: xpb.Envelope, receipt: xpb.SignedReceipt) -> list[str]:
    header = xpb.EnvelopeHeader()
    header.ParseFromString(env.header)
    opened = open_receipt(
        receipt,
        manifest=cluster.node(header.recipient).manifests.current(),
        issuer=header.recipient,
        sender=header.sender,
        sequence=header.sequence,
        root=header.merkle_root,
        count=header.count,
    )
    return [r.outcome.value for r in opened.results]


def assert_bound_to_signer(cluster: Cluster, connect: Connect) -> None:
    """de-eco's valid certificate cannot carry nl-eokm's envelope; nl-eokm's own one can."""
    before = quiet(cluster, US)
    env = report_envelope(cluster, NL, US, "impostor")
    as_de = xgrpc.ExchangeStub(connect(cluster.address(US), tls_of(cluster, DE)))
    error = refused(lambda: as_de.Deliver(env, timeout=10))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert f"not member {NL}" in (error.details() or "")
    error = refused(lambda: list(as_de.Stream(iter([env]), timeout=10)))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert received(cluster, US) == before

    # The envelope itself is good: over nl-eokm's own certificate it is accepted.
    as_nl = xgrpc.ExchangeStub(connect(cluster.address(US), tls_of(cluster, NL)))
    receipt = as_nl.Deliver(env, timeout=10)
    assert accepted_outcomes(cluster, env, receipt) == ["new-case", "new-case"]
    after = received(cluster, US)
    assert (after["inbox"], after["reports"]) == (before["inbox"] + 1, before["reports"] + 2)


def reissued_tls(cluster: Cluster, member: str) -> ClientTls:
    """A second, equally valid certificate for ``member`` from the network's CA."""
    ca = cluster.fed.ca
    assert ca is not None
    again = issue_node_certificate(ca, member, hosts=["127.0.0.1"], now=datetime.now(UTC))
    return ca.certificate_pem, again.certificate_pem, again.key_pem


def _batch(country: str, tag: str, n: int) -> list[Submission]:
    return [
        make_submission(url_in(country, f"/{tag}/{i}.jpg"), hashes=[f"{tag}-{i}"]) for i in range(n)
    ]


def test_a_tls_federation_forwards_receipts_and_announces(
    make_tls_cluster: MakeTlsCluster,
) -> None:
    cluster = make_tls_cluster()
    fed = cluster.fed
    for p in PLANS:
        settings = fed.settings[p.id]
        assert not settings.insecure_loopback
        assert settings.tls_cert is not None
        assert settings.tls_ca is not None
        assert fed.manifest.member(p.id).tls_identity == fingerprint(settings.tls_cert.read_bytes())

    subs = [*_batch("DE", "tls-de", 4), *_batch("US", "tls-us", 3), *_batch("NL", "tls-nl", 2)]
    with IntakeClient(cluster.address(NL), token=fed.token(NL), tls=tls_of(cluster, NL)) as client:
        responses = list(client.submit_many(subs, deadline=60))
    assert [r.error_code for r in responses] == [""] * 9
    assert [r.decision.member for r in responses] == [DE] * 4 + [US] * 3 + [NL] * 2
    remote = {DE: [r.report_id for r in responses[:4]], US: [r.report_id for r in responses[4:7]]}

    wait_until(
        lambda: cluster.count(NL, "deliveries") == 7 and cluster.count(NL, "outbox") == 0,
        30,
        what="every forwarded report receipted over mTLS",
        show=lambda: cluster.delivery_state(NL),
    )
    outcomes = {
        r.report_id: (r.destination, r.outcome)
        for r in cluster.rows(
            NL,
            "SELECT r.id AS report_id, d.destination, d.outcome"
            " FROM deliveries d JOIN reports r ON r.seq = d.report_seq",
        )
    }
    for member, ids in remote.items():
        assert sorted(r.id for r in cluster.rows(member, "SELECT id FROM reports")) == sorted(ids)
        assert all(outcomes[rid] == (member, "new-case") for rid in ids)
        assert cluster.count(member, "inbox", "sender = :s", s=NL) >= 1

    # Hash announcements travel the same mTLS streams: nl-eokm's local items and de-eco's new
    # cases reach every other member's hash index.
    def indexed(member: str, origin: str, n: int) -> bool:
        return cluster.count(member, "hash_index", "member = :m", m=origin) == n

    for member in (DE, US, COORDINATOR):
        wait_until(functools.partial(indexed, member, NL, 2), 30, what=f"{NL} hashes at {member}")
    for member in (NL, US, COORDINATOR):
        wait_until(functools.partial(indexed, member, DE, 4), 30, what=f"{DE} hashes at {member}")
    for member in cluster.nodes:
        wait_until(functools.partial(cluster.drained, member), 30, what=f"{member} drained")


def test_a_members_certificate_cannot_carry_another_members_envelope(
    make_tls_cluster: MakeTlsCluster, connect: Connect
) -> None:
    cluster = make_tls_cluster()
    assert_bound_to_signer(cluster, connect)

    # Another certificate for de-eco from the same CA, not the one the manifest names: refused
    # too, because a fingerprint pins one certificate.
    before = quiet(cluster, US)
    env = report_envelope(cluster, DE, US, "reissued")
    stub = xgrpc.ExchangeStub(connect(cluster.address(US), reissued_tls(cluster, DE)))
    error = refused(lambda: stub.Deliver(env, timeout=10))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert received(cluster, US) == before


def _no_certificate(cluster: Cluster) -> grpc.ChannelCredentials:
    ca, _, _ = tls_of(cluster, DE)
    return grpc.ssl_channel_credentials(ca)  # trusts the network's CA, presents nothing


def _other_ca(cluster: Cluster) -> ClientTls:
    rogue = create_ca("rogue CA", now=datetime.now(UTC))
    cert = issue_node_certificate(rogue, DE, hosts=["127.0.0.1"], now=datetime.now(UTC))
    ca, _, _ = tls_of(cluster, DE)  # trusts the network's CA, presents the rogue CA's cert
    return ca, cert.certificate_pem, cert.key_pem


def _plaintext(cluster: Cluster) -> None:
    return None


@pytest.mark.parametrize(
    "client",
    [_no_certificate, _other_ca, _plaintext],
    ids=["no-client-certificate", "certificate-from-another-ca", "plaintext"],
)
def test_clients_without_a_valid_certificate_never_get_past_the_handshake(
    make_tls_cluster: MakeTlsCluster,
    connect: Connect,
    client: Callable[[Cluster], grpc.ChannelCredentials | ClientTls | None],
) -> None:
    cluster = make_tls_cluster()
    before = quiet(cluster, US)
    env = report_envelope(cluster, DE, US, "handshake")
    ch = connect(cluster.address(US), client(cluster))
    exchange = xgrpc.ExchangeStub(ch)
    intake = igrpc.IntakeStub(ch)
    token = (("authorization", f"Bearer {cluster.fed.token(US)}"),)
    submission = submission_to_proto(make_submission(url_in("US", "/handshake.jpg")))

    calls: list[Callable[[], object]] = [
        lambda: exchange.GetNodeInfo(xpb.NodeInfoRequest(), timeout=5),
        lambda: exchange.Deliver(env, timeout=5),
        lambda: list(exchange.Stream(iter([env]), timeout=5)),
        # Intake too, even with a valid token: the certificate comes first.
        lambda: intake.SubmitReport(submission, timeout=5, metadata=token),
    ]
    for call in calls:
        assert refused(call).code() is grpc.StatusCode.UNAVAILABLE
    assert received(cluster, US) == before
    assert cluster.count(US, "outbox") == 0

    # The node itself is fine: the same envelope over de-eco's certificate is accepted.
    assert health_status(cluster.address(US), tls=tls_of(cluster, DE)) == "SERVING"
    good = xgrpc.ExchangeStub(connect(cluster.address(US), tls_of(cluster, DE)))
    assert accepted_outcomes(cluster, env, good.Deliver(env, timeout=10)) == ["new-case"] * 2


def test_spiffe_identities_bind_members_too(
    make_tls_cluster: MakeTlsCluster, connect: Connect
) -> None:
    cluster = make_tls_cluster(spiffe=True)
    fed = cluster.fed
    assert fed.manifest.epoch == 2
    for p in PLANS:
        assert fed.manifest.member(p.id).tls_identity == f"spiffe://ihx/{p.id}"

    with IntakeClient(cluster.address(NL), token=fed.token(NL), tls=tls_of(cluster, NL)) as client:
        ids = [r.report_id for r in client.submit_many(_batch("DE", "spiffe", 3), deadline=60)]
    wait_until(
        lambda: cluster.count(NL, "deliveries", "outcome = 'new-case'") == 3,
        30,
        what="reports forwarded over mTLS with SPIFFE identities",
        show=lambda: cluster.delivery_state(NL),
    )
    assert sorted(r.id for r in cluster.rows(DE, "SELECT id FROM reports")) == sorted(ids)

    assert_bound_to_signer(cluster, connect)

    # A SPIFFE identity names the member, not one certificate: a reissued de-eco certificate
    # from the network's CA speaks for de-eco (and still for no one else).
    env = report_envelope(cluster, DE, US, "spiffe-reissued")
    stub = xgrpc.ExchangeStub(connect(cluster.address(US), reissued_tls(cluster, DE)))
    assert accepted_outcomes(cluster, env, stub.Deliver(env, timeout=10)) == ["new-case"] * 2
    impostor = report_envelope(cluster, NL, US, "spiffe-impostor")
    error = refused(lambda: stub.Deliver(impostor, timeout=10))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
