"""A receipt that does not verify is never taken as delivery: the batch stays queued and is resent.

In de-eco's place (on its port) runs a hostile Exchange server that answers every envelope with a
receipt that must be refused — predated, for another batch, signed by a stranger, signed with
another member's key. nl-eokm must keep every report in its outbox, record no delivery, and say
why in de-eco's peer row. When the real de-eco takes the port back, everything is delivered
exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import timedelta
from typing import Any

import grpc
import pytest

from auth.keys import SigningKey
from exchange.wire.codec import from_timestamp, timestamp
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, wait_until

Forge = Callable[[xpb.EnvelopeHeader, Cluster], xpb.SignedReceipt]


def _receipt(header: xpb.EnvelopeHeader, key: SigningKey, **change: Any) -> xpb.SignedReceipt:
    fields: dict[str, Any] = {
        "issuer": DE,
        "batch_sender": header.sender,
        "batch_sequence": header.sequence,
        "batch_root": header.merkle_root,
        "received_at": header.signed_at,
        "outcomes": [
            xpb.PayloadOutcome(index=i, outcome=xpb.OUTCOME_NEW_CASE, case_id=f"c-{i:032d}")
            for i in range(header.count)
        ],
        "key_id": key.key_id,
    }
    fields.update(change)
    body = xpb.ReceiptBody(**fields).SerializeToString(deterministic=True)
    return xpb.SignedReceipt(body=body, signature=key.sign(body))


def _predated(h: xpb.EnvelopeHeader, c: Cluster) -> xpb.SignedReceipt:
    earlier = timestamp(from_timestamp(h.signed_at) - timedelta(days=1))
    return _receipt(h, c.fed.keys[DE], received_at=earlier)


def _stranger(h: xpb.EnvelopeHeader, c: Cluster) -> xpb.SignedReceipt:
    receipt = _receipt(h, c.fed.keys[DE])
    receipt.signature = SigningKey.generate().sign(receipt.body)
    return receipt


FORGERIES: dict[str, tuple[Forge, str]] = {
    "predated-by-a-day": (_predated, "receipt-time"),
    "for-the-next-batch": (
        lambda h, c: _receipt(h, c.fed.keys[DE], batch_sequence=h.sequence + 1),
        "receipt-mismatch",
    ),
    "signed-by-a-stranger": (_stranger, "signature-invalid"),
    "signed-with-another-members-key": (
        lambda h, c: _receipt(h, c.fed.keys[US]),
        "unknown-key",
    ),
}


class Hostile(xgrpc.ExchangeServicer):
    def __init__(self, forge: Forge, cluster: Cluster) -> None:
        self.forge, self.cluster = forge, cluster
        self.served = 0

    def Stream(self, request_iterator: Iterator[xpb.Envelope], context: Any) -> Any:
        for envelope in request_iterator:
            header = xpb.EnvelopeHeader()
            header.ParseFromString(envelope.header)
            self.served += 1
            yield self.forge(header, self.cluster)


def _peer(cluster: Cluster) -> tuple[int, str | None]:
    row = cluster.rows(NL, "SELECT failures, last_error FROM peers WHERE member = :p", p=DE)[0]
    return row.failures, row.last_error


@pytest.mark.timeout(90)
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_an_invalid_receipt_delivers_nothing(make_cluster: MakeCluster, forgery: str) -> None:
    cluster = make_cluster(start=(NL, US, COORDINATOR))
    forge, code = FORGERIES[forgery]
    hostile = Hostile(forge, cluster)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    xgrpc.add_ExchangeServicer_to_server(hostile, server)
    assert server.add_insecure_port(cluster.fed.settings[DE].listen) != 0
    server.start()
    try:
        queued = [
            make_submission(url_in("DE", f"/forged/{i}.jpg"), hashes=[f"forged-{i}"])
            for i in range(5)
        ]
        cluster.submit(NL, queued)
        wait_until(
            lambda: hostile.served >= 2 and _peer(cluster)[0] >= 2,
            30,
            what="nl-eokm refusing the hostile receipts and retrying",
            show=lambda: (hostile.served, _peer(cluster)),
        )
        last_error = _peer(cluster)[1]
        assert last_error is not None
        assert last_error.startswith(code), last_error
        assert cluster.count(NL, "deliveries") == 0
        assert cluster.count(NL, "outbox", "destination = :d", d=DE) == len(queued)
        assert (
            cluster.count(NL, "batches", "destination = :d AND receipted_at IS NOT NULL", d=DE) == 0
        )
    finally:
        server.stop(0).wait()

    cluster.start(DE)
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") == len(queued),
        30,
        what="everything delivered once the real de-eco is back",
        show=lambda: (cluster.delivery_state(NL), _peer(cluster)),
    )
    assert cluster.count(DE, "case_reports") == len(queued)
    assert cluster.rows(
        NL, "SELECT outcome, count(*) FROM deliveries WHERE destination = :d GROUP BY outcome", d=DE
    ) == [("new-case", len(queued))]
    assert _peer(cluster) == (0, None)
