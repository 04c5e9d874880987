"""Prometheus metrics of a node, on their own registry (no process-global state).

Counters and the latency histograms are updated by the components that see the events (the gRPC
calls by edge/call_metrics.py); the gauges of what waits in the database — work queues, partner
backlog, outbox per peer, failing peers — are read by one thread every few seconds and served
from that reading (ops/gauges.py), also true for rows another replica wrote. The single writer
reports each group, committed or failed (``writer_group``), busy from BEGIN until its callers
have their answers: its utilisation — the rate of ``ihx_writer_busy_seconds_total``, 1 when
saturated — is the node's first ceiling.
``ihx_build_info`` names the running version (exchange/version.py).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from exchange.ops.gauges import DatabaseGauges, GaugeSources
from exchange.ops.listen import refused
from exchange.store.writer import GroupTiming
from exchange.version import GRPC_VERSION, PYTHON_VERSION, VERSION


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Registered in this order, which is the order of the exposition.
        self._add_report_metrics(self.registry)
        self._add_failure_metrics(self.registry)
        self._add_delivery_metrics(self.registry)
        self._add_overload_metrics(self.registry)
        self._add_takedown_metrics(self.registry)
        self._add_writer_metrics(self.registry)
        self.calls = CallMetrics(self.registry)
        self.build_info = Gauge(
            "ihx_build_info",
            "Always 1; the labels name the running software",
            ["version", "python", "grpc"],
            registry=self.registry,
        )
        self.build_info.labels(VERSION, PYTHON_VERSION, GRPC_VERSION).set(1)
        self.gauge_read_failures = Counter(
            "ihx_gauges_read_failures",
            "Reads of the database gauges that failed (the previous values are kept)",
            registry=self.registry,
        )
        self._gauges: DatabaseGauges | None = None
        self._server: Any = None

    def _add_report_metrics(self, r: CollectorRegistry) -> None:
        """Reports in and out, receipts, refusals and GeoIP disagreements."""
        self.reports_in = Counter(
            "ihx_reports_in", "Reports accepted", ["source"], registry=r
        )  # source: intake | peer
        self.reports_out = Counter(
            "ihx_reports_out",
            "Reports delivered with a signed receipt",
            ["destination"],
            registry=r,
        )
        self.receipts = Counter(
            "ihx_receipts", "Per-report outcomes in receipts received", ["outcome"], registry=r
        )
        self.rejections = Counter(
            "ihx_rejections", "Refused envelopes, reports and requests", ["reason"], registry=r
        )
        self.geo_disagreements = Counter(
            "ihx_geo_disagreements",
            "Received reports this node's GeoIP places in another country than the sender's",
            ["sender"],
            registry=r,
        )

    def _add_failure_metrics(self, r: CollectorRegistry) -> None:
        """Refused tokens and refused database writes."""
        self.token_failures = Counter(
            "ihx_token_failures", "Refused partner tokens", ["reason"], registry=r
        )
        self.write_failures = Counter(
            "ihx_write_failures",
            "Transactions the database refused (disk full, read-only, locked); none acknowledged",
            registry=r,
        )

    def _add_delivery_metrics(self, r: CollectorRegistry) -> None:
        """Streams to peers: attempts, failures, hellos and delivery latency."""
        self.delivery_attempts = Counter(
            "ihx_delivery_attempts",
            "Streams opened to a peer (bounded by the retry backoff while it fails)",
            ["destination"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "ihx_delivery_failures",
            "Streams to a peer that ended in a failure, by gRPC status or error code",
            ["destination", "reason"],
            registry=r,
        )
        self.hellos_sent = Counter(
            "ihx_hellos_sent",
            "Hellos this node sent its peers when it started, by peer and result (ok or status)",
            ["destination", "result"],
            registry=r,
        )
        self.hellos_received = Counter(
            "ihx_hellos_received",
            "Verified hellos from peers (each retries our delivery to it at once)",
            ["sender"],
            registry=r,
        )
        self.hellos_refused = Counter(
            "ihx_hellos_refused", "Hellos refused, by error code", ["reason"], registry=r
        )
        self.delivery_latency = Histogram(
            "ihx_delivery_latency_seconds",
            "Intake at this node to the receiver's signed receipt",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )

    def _add_overload_metrics(self, r: CollectorRegistry) -> None:
        """Admission refusals, streams the node ended and health changes."""
        self.admission_refused = Counter(
            "ihx_admission_refused",
            "Calls refused at admission (RESOURCE_EXHAUSTED), by service class and reason",
            ["service", "reason"],
            registry=r,
        )
        self.streams_ended = Counter(
            "ihx_streams_ended",
            "Exchange streams the node ended: evicted, timed out or idle, by reason",
            ["reason"],
            registry=r,
        )
        self.health_serving = Gauge(
            "ihx_health_serving",
            "1 while the node reports SERVING, 0 while NOT_SERVING (exchange/ops/health.py)",
            registry=r,
        )
        self.health_changes = Counter(
            "ihx_health_changes",
            "Health status changes, by the status entered and its reason",
            ["status", "reason"],
            registry=r,
        )

    def _add_takedown_metrics(self, r: CollectorRegistry) -> None:
        """Re-checks by outcome, and what they caused."""
        self.rechecks = Counter(
            "ihx_takedown_checks", "Re-checks of watched URLs, by outcome", ["outcome"], registry=r
        )
        self.takedown_actions = Counter(
            "ihx_takedown_actions",
            "What re-checks caused: removed, suggested, moved, hoster_changed",
            ["kind"],
            registry=r,
        )

    def _add_writer_metrics(self, r: CollectorRegistry) -> None:
        """The single writer's groups (store/writer.py): how busy it is and how long jobs wait."""
        self.writer_groups = Counter(
            "ihx_writer_groups", "Transactions the writer committed (group commits)", registry=r
        )
        self.writer_jobs = Counter(
            "ihx_writer_jobs",
            "Jobs in the committed groups (a coalesced batch of submissions is one job)",
            registry=r,
        )
        self.writer_busy = Counter(
            "ihx_writer_busy_seconds",
            "Time the writer spent on groups, BEGIN until the callers were answered (rate 1: "
            "saturated)",
            registry=r,
        )
        self.writer_commit = Counter(
            "ihx_writer_commit_seconds", "Of the busy time, the time in COMMIT", registry=r
        )
        self.writer_wait = Histogram(
            "ihx_writer_queue_wait_seconds",
            "How long each group's oldest job waited for the writer",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )

    def writer_group(self, timing: GroupTiming) -> None:
        """Count one group (the writer's ``on_group``): its time and wait whether it committed
        or failed (a failed one is counted in ``ihx_write_failures_total``), its jobs if it
        committed."""
        if timing.committed:
            self.writer_groups.inc()
            self.writer_jobs.inc(timing.jobs)
        self.writer_busy.inc(timing.held)
        self.writer_commit.inc(timing.commit)
        self.writer_wait.observe(timing.waited)

    def watch_database(self, sources: GaugeSources, interval: float) -> DatabaseGauges:
        """The gauges read from the database every ``interval`` s (ops/gauges.py); started."""
        gauges = DatabaseGauges(sources, self.gauge_read_failures, interval)
        self.registry.register(gauges)
        gauges.start()
        self._gauges = gauges
        return gauges

    def serve(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        try:
            server, thread = start_http_server(
                int(port), addr=host.strip("[]"), registry=self.registry
            )
        except OSError as error:
            raise refused(listen, error) from None
        self._server = server
        del thread
        return int(server.server_port)

    def stop(self) -> None:
        if self._gauges is not None:
            self._gauges.stop()
            self._gauges = None
        if self._server is not None:
            server, self._server = self._server, None
            # Wait for the serving loop to let go (within its 0.5 s poll): until it does, the
            # listening socket stays open and a node restarted at once cannot bind the port.
            server.shutdown()
            server.server_close()


GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
# A unary call takes milliseconds; a stream lives up to hours (exchange streams, WatchCases).
GRPC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class CallMetrics:
    """gRPC server calls per service, method and code (edge/call_metrics.py counts them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server", GRPC_LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its status (a stream: its lifetime), by status code",
            (*GRPC_LABELS, "grpc_code"),
            buckets=GRPC_BUCKETS,
            registry=registry,
        )
