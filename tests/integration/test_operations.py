"""Running a node: health checking, Prometheus metrics, JSON logs and graceful shutdown.

Each test runs real nodes on 127.0.0.1 with a metrics port and a plaintext health port of their
own. Health: SERVING on the main port and on the health port once started; the health port
serves health and nothing else; NOT_SERVING as soon as ``stop()`` begins. Metrics: the counters,
histogram and outbox gauges after known traffic — forwarded reports, a refused envelope, refused
tokens, a peer that is down. Logs: one JSON object per line, and never a reported URL's path or
query. Shutdown: ``stop(grace)`` during a bulk intake stream ends within a deadline, keeps every
report it acknowledged, and the node starts again on the same files.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from exchange.client.stubs import IntakeClient
from exchange.domain import Submission
from exchange.node import Node
from exchange.ops import json_logging as logs
from exchange.wire.codec import submission_to_proto
from exchange.wire.envelope import KIND_REPORT, seal
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.ops import (
    health_status,
    sample,
    scrape,
    stop_quickly,
    with_operations_ports,
)
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    UNRESOLVABLE_HOST,
    US,
    Cluster,
    provision,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

MakeOpsCluster = Callable[..., Cluster]

# The stop deadline these tests hold a node to: the grace period they pass plus generous slack
# for the senders, the writer and the database to close on a loaded machine. Not a speed figure.
STOP_DEADLINE_S = 15.0
GAUGES_READ = "ihx_gauges_read_timestamp_seconds"


@pytest.fixture
def make_ops_cluster(tmp_path: Path) -> Iterator[MakeOpsCluster]:
    """A federation whose members have metrics and health ports; starts the members asked for."""
    made: list[Cluster] = []

    def make(*members: str) -> Cluster:
        fed = provision(tmp_path / f"ops{len(made)}")
        with_operations_ports(fed)
        cluster = Cluster(fed)
        made.append(cluster)
        cluster.start(*members)
        return cluster

    yield make
    for cluster in made:
        stop_quickly(cluster)


def health_port(node: Node) -> str:
    assert node.health_port is not None
    return f"127.0.0.1:{node.health_port}"


def health_or_error(address: str) -> str:
    try:
        return health_status(address, timeout=2)
    except grpc.RpcError as error:
        return str(error.code().name)


def batch(country: str, tag: str, n: int) -> list[Submission]:
    return [
        make_submission(url_in(country, f"/{tag}/{i}.jpg"), hashes=[f"{tag}-{i}"]) for i in range(n)
    ]


class HeldStream:
    """A bulk intake stream that sends ``first`` reports, then stays open until released."""

    def __init__(self, cluster: Cluster, member: str, first: list[Submission]) -> None:
        self.responses: list[ipb.SubmitReportResponse] = []
        self.error: grpc.RpcError | None = None
        self._release = threading.Event()
        self._first = first
        self._client = IntakeClient(cluster.address(member), token=cluster.token(member))
        self._thread = threading.Thread(target=self._run, name="held-stream")
        self._thread.start()
        wait_until(lambda: len(self.responses) == len(first), 20, what="the held stream's acks")

    def _requests(self) -> Iterator[Submission]:
        yield from self._first
        self._release.wait(30)

    def _run(self) -> None:
        try:
            for response in self._client.submit_many(self._requests(), chunk=1, deadline=40):
                self.responses.append(response)
        except grpc.RpcError as error:
            self.error = error

    def release(self) -> None:
        self._release.set()
        self._thread.join(30)
        self._client.close()


@pytest.mark.timeout(40)
def test_no_other_server_can_share_the_nodes_ports(make_ops_cluster: MakeOpsCluster) -> None:
    cluster = make_ops_cluster(NL)
    node = cluster.node(NL)
    for address in (cluster.address(NL), health_port(node)):
        # gRPC's default sets SO_REUSEPORT: it could share a port whose holder set it too.
        intruder = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        try:
            with pytest.raises(RuntimeError):
                intruder.add_insecure_port(address)
        finally:
            intruder.stop(0)


@pytest.mark.timeout(40)
def test_health_serving_then_not_serving_once_stop_begins(make_ops_cluster: MakeOpsCluster) -> None:
    cluster = make_ops_cluster(NL)
    node = cluster.node(NL)
    assert health_status(cluster.address(NL)) == "SERVING"
    assert health_status(health_port(node)) == "SERVING"

    # Reflection on the main port names the node's services.
    with grpc.insecure_channel(cluster.address(NL)) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        services = {s.name for a in answers for s in a.list_services_response.service}
    assert {"ihx.v1.Intake", "ihx.v1.Exchange", "grpc.health.v1.Health"} <= services

    # The plaintext health port serves health checks and nothing else.
    with grpc.insecure_channel(health_port(node)) as ch:
        request = submission_to_proto(make_submission(url_in("NL", "/probe.jpg")))
        token = (("authorization", f"Bearer {cluster.token(NL)}"),)
        calls: list[Callable[[], object]] = [
            lambda: igrpc.IntakeStub(ch).SubmitReport(request, timeout=5, metadata=token),
            lambda: xgrpc.ExchangeStub(ch).GetNodeInfo(xpb.NodeInfoRequest(), timeout=5),
            lambda: list(
                reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
                )
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert cluster.count(NL, "reports") == 0

    # An intake stream in flight keeps the server in its grace period while we look.
    held = HeldStream(cluster, NL, batch("NL", "held", 1))
    cluster.nodes.pop(NL)
    started = time.monotonic()
    stopping = threading.Thread(target=node.stop, kwargs={"grace": 10.0})
    stopping.start()
    try:
        wait_until(
            lambda: health_or_error(health_port(node)) == "NOT_SERVING",
            5,
            what="NOT_SERVING on the health port once stop() began",
        )
        # New calls are no longer taken on the main port.
        late = make_submission(url_in("NL", "/late.jpg"), hashes=["late"])
        with (
            IntakeClient(cluster.address(NL), token=cluster.token(NL), timeout=5) as client,
            pytest.raises(grpc.RpcError) as info,
        ):
            client.submit(late)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        held.release()
        stopping.join(STOP_DEADLINE_S + 5)
    elapsed = time.monotonic() - started
    assert not stopping.is_alive()
    assert elapsed < STOP_DEADLINE_S, elapsed
    # The stream in flight was finished, not cut: its report was acknowledged and kept.
    assert held.error is None, held.error
    assert [r.error_code for r in held.responses] == [""]
    assert cluster.count(NL, "reports", "id = :id", id=held.responses[0].report_id) == 1
    assert cluster.count(NL, "reports") == 1
    assert health_or_error(health_port(node)) == "UNAVAILABLE"  # the health port is closed


@pytest.mark.timeout(60)
def test_metrics_count_reports_receipts_refusals_and_the_outbox(
    make_ops_cluster: MakeOpsCluster,
) -> None:
    # The coordinator is down: what is routed to it waits in nl-eokm's outbox.
    cluster = make_ops_cluster(NL, DE, US)
    untraceable = [
        make_submission(f"https://{UNRESOLVABLE_HOST}/x/{i}.jpg", hashes=[f"gone-{i}"])
        for i in range(2)
    ]
    first = cluster.submit(
        NL,
        [*batch("DE", "m-de", 3), *batch("US", "m-us", 2), *batch("NL", "m-nl", 2), *untraceable],
    )
    assert [r.decision.member for r in first] == [DE] * 3 + [US] * 2 + [NL] * 2 + [COORDINATOR] * 2
    wait_until(
        lambda: cluster.count(NL, "deliveries") == 5,
        30,
        what="five reports receipted",
        show=lambda: cluster.delivery_state(NL),
    )
    # The same URL again with another item: merged into de-eco's case; a repeat: no new report.
    merged = make_submission(url_in("DE", "/m-de/0.jpg"), hashes=["m-de-0", "m-de-extra"])
    second = cluster.submit(NL, [merged, batch("DE", "m-de", 1)[0]])
    assert [r.duplicate for r in second] == [False, True]
    wait_until(
        lambda: cluster.count(NL, "deliveries") == 6,
        30,
        what="the merged report receipted",
        show=lambda: cluster.delivery_state(NL),
    )

    # Refused tokens at nl-eokm: none, garbage, and one issued by another node.
    for bad in (None, "not-a-jwt", cluster.token(DE)):
        with (
            IntakeClient(cluster.address(NL), token=bad, timeout=10) as client,
            pytest.raises(grpc.RpcError) as info,
        ):
            client.submit(make_submission(url_in("DE", "/refused.jpg")))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert cluster.count(NL, "reports") == 10

    # Refused envelopes at us-ncmec: signed with nl-eokm's key but claiming to be de-eco, and
    # one addressed to another member.
    payload = cluster.node(DE).intake.prepare(batch("US", "m-forged", 1)[0]).wire
    with grpc.insecure_channel(cluster.address(US)) as ch:
        exchange = xgrpc.ExchangeStub(ch)
        for key, recipient, code in (
            (cluster.fed.keys[NL], US, grpc.StatusCode.PERMISSION_DENIED),
            (cluster.fed.keys[DE], NL, grpc.StatusCode.FAILED_PRECONDITION),
        ):
            env = seal(
                key,
                sender=DE,
                recipient=recipient,
                sequence=1_000_000,
                kind=KIND_REPORT,
                payloads=[payload],
                signed_at=datetime.now(UTC),
                manifest_epoch=1,
            ).to_proto()
            with pytest.raises(grpc.RpcError) as info:
                exchange.Deliver(env, timeout=10)
            assert info.value.code() is code

    # The database gauges are a reading taken every 0.1 s: wait for one taken after all this.
    done = time.time()
    wait_until(
        lambda: (sample(scrape(metrics_port(cluster, NL)), GAUGES_READ) or 0.0) > done,
        30,
        what="a gauge reading after the last change",
    )
    nl = scrape(metrics_port(cluster, NL))
    assert sample(nl, "ihx_reports_in_total", source="intake") == 10.0
    assert sample(nl, "ihx_reports_out_total", destination=DE) == 4.0
    assert sample(nl, "ihx_reports_out_total", destination=US) == 2.0
    assert sample(nl, "ihx_reports_out_total", destination=COORDINATOR) is None
    assert sample(nl, "ihx_receipts_total", outcome="new-case") == 5.0
    assert sample(nl, "ihx_receipts_total", outcome="merged") == 1.0
    assert sample(nl, "ihx_delivery_latency_seconds_count") == 6.0
    assert sample(nl, "ihx_delivery_latency_seconds_bucket", le="+Inf") == 6.0
    latency_sum = sample(nl, "ihx_delivery_latency_seconds_sum")
    assert latency_sum is not None
    assert 0.0 < latency_sum < 6 * 30.0
    assert sample(nl, "ihx_token_failures_total", reason="token-missing") == 1.0
    assert sample(nl, "ihx_token_failures_total", reason="token-malformed") == 1.0
    assert sample(nl, "ihx_token_failures_total", reason="token-issuer") == 1.0
    # Waiting for the coordinator: its two reports, the oldest since the first submission.
    assert sample(nl, "ihx_outbox_pending", destination=COORDINATOR) == 2.0
    age = sample(nl, "ihx_outbox_oldest_pending_seconds", destination=COORDINATOR)
    assert age is not None
    assert age > 0.0
    for member in (DE, US):  # delivered: nothing pending
        assert sample(nl, "ihx_outbox_pending", destination=member) in (None, 0.0)
    # The work queues: nl-eokm holds its two NL-hosted cases, neither assessed yet.
    assert sample(nl, "ihx_case_queue", queue="unassessed") == 2.0
    assert sample(nl, "ihx_case_queue", queue="unactioned") == 0.0

    # The age grows while the coordinator stays away (read again every 0.1 s).
    def oldest() -> float:
        samples = scrape(metrics_port(cluster, NL))
        value = sample(samples, "ihx_outbox_oldest_pending_seconds", destination=COORDINATOR)
        assert value is not None
        return value

    wait_until(lambda: oldest() >= age + 0.2, 10, what="the oldest pending age growing")

    de = scrape(metrics_port(cluster, DE))
    assert sample(de, "ihx_reports_in_total", source="peer") == 4.0
    assert sample(de, "ihx_reports_in_total", source="intake") is None
    us = scrape(metrics_port(cluster, US))
    assert sample(us, "ihx_reports_in_total", source="peer") == 2.0
    assert sample(us, "ihx_rejections_total", reason="unknown-key") == 1.0
    assert sample(us, "ihx_rejections_total", reason="wrong-recipient") == 1.0
    assert sum(v for (name, _), v in us.items() if name == "ihx_rejections_total") == 2.0


def metrics_port(cluster: Cluster, member: str) -> int:
    port = cluster.node(member).metrics_port
    assert port is not None
    return port


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """``exchange.ops.json_logging.configure`` writing to a buffer; logging restored after."""
    root = logging.getLogger()
    grpc_logger = logging.getLogger("grpc")
    saved = (root.handlers[:], root.level, grpc_logger.level)
    buffer = io.StringIO()
    logs.configure("info", buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        grpc_logger.setLevel(saved[2])


# Marks that only a reported URL's path or query contains: none may reach a log line.
PATH_MARK = "pathmark7f3a"
QUERY_MARK = "querymark9c1e"


@pytest.mark.timeout(60)
def test_logs_are_json_lines_without_url_paths_or_queries(
    make_ops_cluster: MakeOpsCluster, captured_logs: io.StringIO
) -> None:
    # us-ncmec and the coordinator are down: forwarding to them fails and is logged.
    cluster = make_ops_cluster(NL, DE)
    counter = itertools.count()

    def url(country: str) -> str:
        i = next(counter)
        return url_in(country, f"/{PATH_MARK}-{i}/img.jpg?{QUERY_MARK}={i}&victim={QUERY_MARK}")

    subs = [
        *(make_submission(url("DE"), hashes=[f"log-de-{i}"]) for i in range(3)),
        *(make_submission(url("US"), hashes=[f"log-us-{i}"]) for i in range(2)),
        make_submission(url("NL"), hashes=["log-nl"]),
        make_submission(
            f"https://{UNRESOLVABLE_HOST}/{PATH_MARK}/x.jpg?{QUERY_MARK}=1", hashes=["log-gone"]
        ),
    ]
    cluster.submit(NL, subs)
    # Refusals are logged too: a token from another node, and a URL intake does not take.
    refused = make_submission(url("DE"), hashes=["log-refused"])
    with (
        IntakeClient(cluster.address(NL), token=cluster.token(DE), timeout=10) as client,
        pytest.raises(grpc.RpcError),
    ):
        client.submit(refused)
    bad = cluster.submit_mixed(
        NL, [make_submission(f"javascript://{PATH_MARK}/?{QUERY_MARK}=1", hashes=["log-bad"])]
    )
    assert bad[0].error_code
    wait_until(
        lambda: cluster.count(DE, "reports") == 3,
        30,
        what="de-eco's reports delivered",
        show=lambda: cluster.delivery_state(NL),
    )
    wait_until(
        lambda: "delivery to us-ncmec interrupted" in captured_logs.getvalue(),
        30,
        what="the failed delivery to us-ncmec logged",
    )
    stop_quickly(cluster)

    lines = captured_logs.getvalue().splitlines()
    assert lines
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    for doc in docs:
        assert isinstance(doc, dict)
        assert {"time", "level", "logger", "message", "version"} <= doc.keys(), doc
        datetime.fromisoformat(doc["time"])
    loggers = {d["logger"] for d in docs}
    assert {"exchange.node", "exchange.delivery.sender", "exchange.edge.access"} <= loggers
    port = cluster.fed.settings[NL].listen.rpartition(":")[2]
    assert f"node {NL} serving on port {port}" in {d["message"] for d in docs}
    assert {d["peer"] for d in docs if "us-ncmec interrupted" in d["message"]} == {"us-ncmec"}
    leaked = [line for line in lines if PATH_MARK in line or QUERY_MARK in line]
    assert not leaked, leaked[:3]


@pytest.mark.timeout(40)
def test_a_stopped_node_frees_its_ports_for_an_immediate_restart(
    make_ops_cluster: MakeOpsCluster,
) -> None:
    cluster = make_ops_cluster(NL)
    for round_ in range(3):
        node = cluster.nodes.pop(NL)
        node.stop(grace=0)
        cluster.start(NL)  # same settings: main, health and metrics ports
        restarted = cluster.node(NL)
        assert health_status(cluster.address(NL)) == "SERVING", round_
        assert health_status(health_port(restarted)) == "SERVING", round_
        assert restarted.metrics_port == node.metrics_port
        # The page is the new node's: a fresh registry, nothing delivered yet.
        samples = scrape(metrics_port(cluster, NL))
        assert sample(samples, "ihx_delivery_latency_seconds_count") == 0.0, round_


@pytest.mark.timeout(60)
def test_stop_during_a_bulk_stream_keeps_every_acknowledged_report(
    make_ops_cluster: MakeOpsCluster,
) -> None:
    cluster = make_ops_cluster(NL, DE)
    fed = cluster.fed
    acked: list[ipb.SubmitReportResponse] = []
    failure: list[grpc.RpcError] = []

    def endless() -> Iterator[Submission]:
        for i in itertools.count():
            country = "DE" if i % 2 else "NL"
            yield make_submission(url_in(country, f"/bulk/{i}.jpg"), hashes=[f"bulk-{i}"])

    def run() -> None:
        try:
            with IntakeClient(cluster.address(NL), token=fed.token(NL)) as client:
                for response in client.submit_many(endless(), chunk=50, deadline=45):
                    acked.append(response)
        except grpc.RpcError as error:
            failure.append(error)

    sender = threading.Thread(target=run, name="bulk-stream")
    sender.start()
    wait_until(lambda: len(acked) >= 200, 30, what="the bulk stream under way")

    node = cluster.nodes.pop(NL)
    started = time.monotonic()
    node.stop(grace=2.0)
    elapsed = time.monotonic() - started
    sender.join(20)
    assert not sender.is_alive()
    assert elapsed < STOP_DEADLINE_S, elapsed

    # The stream was in flight when the node stopped: it ends with an error, after the acks.
    assert failure
    assert failure[0].code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert all(not r.error_code for r in acked)
    ids = {r.report_id for r in acked}
    assert len(ids) == len(acked) >= 200
    stored = {r.id for r in cluster.rows(NL, "SELECT id FROM reports")}
    missing = ids - stored
    assert not missing, f"{len(missing)} acknowledged reports lost, e.g. {sorted(missing)[:3]}"

    # It starts again on the same files and delivers everything that waited for de-eco.
    cluster.start(NL)
    assert health_status(cluster.address(NL)) == "SERVING"
    again = cluster.submit_one(NL, make_submission(url_in("DE", "/after-restart.jpg")))
    assert not again.error_code
    for_de = cluster.count(NL, "reports", "role = 'origin' AND decision_member = :m", m=DE)
    assert for_de >= len([r for r in acked if r.decision.member == DE]) + 1
    wait_until(
        lambda: (
            cluster.count(NL, "outbox", "destination = :m", m=DE) == 0
            and cluster.count(DE, "reports") == for_de
        ),
        30,
        what="every report for de-eco delivered after the restart",
        show=lambda: cluster.delivery_state(NL),
    )
    resent = cluster.submit(NL, [make_submission(url_in("DE", "/bulk/1.jpg"), hashes=["bulk-1"])])
    assert resent[0].duplicate


@pytest.mark.timeout(40)
def test_a_database_error_noting_the_pdq_cursor_does_not_cut_stop_short(
    make_ops_cluster: MakeOpsCluster,
) -> None:
    """Stop saves the PDQ index, then notes its cursor and trims the feed: that write failing
    (here its table is gone) is logged, and the rest of stop still runs — the health server,
    the metrics page and the database all close."""
    cluster = make_ops_cluster(NL)
    node = cluster.nodes.pop(NL)
    health, metrics = health_port(node), node.metrics_port
    assert metrics is not None
    with node.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE pdq_followers")
    node.stop(grace=0)
    assert health_or_error(health) == "UNAVAILABLE"
    with pytest.raises(urllib.error.URLError):
        scrape(metrics)
