"""``ExchangeServicer`` (edge/exchange_service.py) on a real gRPC server on 127.0.0.1.

The server runs the node's own interceptors in the node's order (admission, access, decode
guard) in front of de-eco's real receiver over a real database; envelopes are sealed by nl-eokm's
test key. What the servicer itself adds is checked here: receipts in envelope order on a stream,
one receipt per Deliver, a refusal mapped to a status ``code: message`` with nothing stored, the
node info from the codec, and a graceful stop that ends open streams and refuses new ones.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from exchange.edge.access import AccessInterceptor
from exchange.edge.admission import Admission, AdmissionInterceptor, Budgets
from exchange.edge.decoding import DecodeGuard
from exchange.edge.exchange_service import ExchangeServicer
from exchange.ops.metrics import Metrics
from exchange.receiver import Receiver
from exchange.wire.codec import PROTOCOLS, SOFTWARE_VERSION, node_info
from exchange.wire.envelope import Limits
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from tests.auth.token_factories import make_token_world
from tests.exchange.factories import make_report, report_wire, seal_batch, table_counts, url_in


@dataclass
class Served:
    stub: xgrpc.ExchangeStub
    servicer: ExchangeServicer
    engine: Engine


@pytest.fixture
def served(receiver: Receiver, engine: Engine, tmp_path: Path) -> Iterator[Served]:
    metrics = Metrics()
    admission = Admission(Budgets(), metrics=metrics)
    access = AccessInterceptor(make_token_world(tmp_path).verifier, metrics, admission)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[AdmissionInterceptor(admission), access, DecodeGuard()],
    )
    servicer = ExchangeServicer(
        receiver, "de-eco", lambda: node_info("de-eco", 1, ["de-eco-k1"], Limits())
    )
    xgrpc.add_ExchangeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    admission.start()
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(xgrpc.ExchangeStub(channel), servicer, engine)
    finally:
        channel.close()
        server.stop(0)
        admission.stop()


def envelope(seed: str, sequence: int, recipient: str = "de-eco") -> xpb.Envelope:
    """One DE-hosted report from nl-eokm, sealed for ``recipient``."""
    report = make_report(url=url_in("DE", f"/{seed}.jpg"), hashes=[seed])
    return seal_batch([report_wire(report)], sequence=sequence, recipient=recipient).to_proto()


def body(receipt: xpb.SignedReceipt) -> xpb.ReceiptBody:
    return xpb.ReceiptBody.FromString(receipt.body)


def test_node_info_is_the_codecs(served: Served) -> None:
    info = served.stub.GetNodeInfo(xpb.NodeInfoRequest(), timeout=10)
    assert (info.member, info.manifest_epoch, list(info.key_ids)) == ("de-eco", 1, ["de-eco-k1"])
    assert (info.software_version, tuple(info.protocols)) == (SOFTWARE_VERSION, PROTOCOLS)
    assert (info.max_batch_reports, info.max_message_bytes) == (
        Limits().max_payloads,
        Limits().max_envelope_bytes,
    )


def test_a_stream_answers_every_envelope_in_order(served: Served) -> None:
    receipts = list(served.stub.Stream(iter([envelope(s, i) for i, s in enumerate("abc", 1)])))
    assert [body(r).batch_sequence for r in receipts] == [1, 2, 3]
    assert [o.outcome for r in receipts for o in body(r).outcomes] == [xpb.OUTCOME_NEW_CASE] * 3
    counts = table_counts(served.engine)
    assert (counts["inbox"], counts["reports"]) == (3, 3)


def test_deliver_answers_one_envelope(served: Served) -> None:
    receipt = served.stub.Deliver(envelope("one", 1), timeout=10)
    assert body(receipt).batch_sequence == 1
    # A replay gets the same receipt back, not a second case.
    assert served.stub.Deliver(envelope("one", 1), timeout=10) == receipt
    assert table_counts(served.engine)["reports"] == 1


def test_a_refused_envelope_is_a_status_with_its_code_and_stores_nothing(served: Served) -> None:
    before = table_counts(served.engine)
    with pytest.raises(grpc.RpcError) as raised:
        served.stub.Deliver(envelope("elsewhere", 1, recipient="us-ncmec"), timeout=10)
    call: grpc.Call = raised.value  # type: ignore[assignment]
    assert call.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    assert re.fullmatch(r"[a-z0-9-]+: .+", call.details() or ""), call.details()
    assert table_counts(served.engine) == before


def test_a_refusal_ends_the_stream_after_the_envelopes_before_it(served: Served) -> None:
    messages = [envelope("a", 1), envelope("b", 2, recipient="us-ncmec"), envelope("c", 3)]
    answers: list[xpb.SignedReceipt] = []

    def take_all() -> None:
        for receipt in served.stub.Stream(iter(messages), timeout=10):
            answers.append(receipt)

    with pytest.raises(grpc.RpcError):
        take_all()
    assert [body(r).batch_sequence for r in answers] == [1]
    assert table_counts(served.engine)["inbox"] == 1


def test_closing_ends_open_streams_and_refuses_new_ones(served: Served) -> None:
    closed = threading.Event()

    def requests() -> Iterator[xpb.Envelope]:
        yield envelope("a", 1)
        closed.wait(10)  # the client keeps its side open until the test is done

    call: Any = served.stub.Stream(requests(), timeout=10)  # the stubs know no __next__
    first = next(call)
    assert body(first).batch_sequence == 1
    served.servicer.close_streams()
    assert list(call) == []  # ended cleanly: everything sent so far was answered
    closed.set()
    with pytest.raises(grpc.RpcError) as raised:
        list(served.stub.Stream(iter([envelope("b", 2)]), timeout=10))
    refused: grpc.Call = raised.value  # type: ignore[assignment]
    assert refused.code() is grpc.StatusCode.UNAVAILABLE
    assert refused.details() == "node is shutting down"
