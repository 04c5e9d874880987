"""A client that floods a stream without reading the answers, then hangs up, leaves nothing behind.

Bulk intake reads requests on a reader thread into a bounded queue. When the client stops
reading, the answers back up (HTTP/2 flow control), the answering loop stops taking from the
queue and the reader waits on it. If the client then cancels, the reader must notice that the
call is over and end — not wait for ever, one stuck thread per abandoned stream.
"""

from __future__ import annotations

import threading

import pytest

from exchange.wire.codec import submission_to_proto
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import NL, Cluster, wait_until


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ihx-intake-reader"]


@pytest.mark.timeout(90)
def test_a_cancelled_flood_leaves_no_reader_behind(cluster: Cluster) -> None:
    import grpc

    chunks = [
        ipb.SubmitReportsRequest(
            reports=[
                submission_to_proto(
                    make_submission(url_in("NL", f"/flood/{c}/{i}.jpg"), hashes=[f"f-{c}-{i}"])
                )
                for i in range(100)
            ]
        )
        for c in range(60)
    ]
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        call = igrpc.IntakeStub(channel).SubmitReports(
            iter(chunks),
            metadata=(("authorization", f"Bearer {cluster.token(NL)}"),),
            timeout=60,
        )
        # Never read an answer: wait until the node has a reader blocked behind them.
        wait_until(
            lambda: _readers() and cluster.count(NL, "reports") >= 1000,
            30,
            what="the node reading the flood while its answers back up",
            show=lambda: (len(_readers()), cluster.count(NL, "reports")),
        )
        call.cancel()
    wait_until(
        lambda: not _readers(),
        15,
        what="the reader thread ending after the client hung up",
        show=lambda: [t.name for t in _readers()],
    )
    # And the node still takes submissions.
    cluster.submit(NL, [make_submission(url_in("NL", "/after.jpg"), hashes=["after"])])
