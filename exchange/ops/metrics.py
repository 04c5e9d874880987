"""Prometheus metrics of a node, on their own registry (no process-global state).

Counters and the latency histogram are updated by the components that see the events; queue
depth and the age of the oldest pending report per destination are read from the database (the
read model ``store/overview.py``) when Prometheus scrapes (a collector), so they are always true,
also for rows another replica wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from common.clock import Clock
from exchange.ops.listen import refused
from exchange.store.overview import outbox_depth


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Registered in this order, which is the order of the exposition.
        self._add_report_metrics(self.registry)
        self._add_failure_metrics(self.registry)
        self._add_delivery_metrics(self.registry)
        self._add_overload_metrics(self.registry)
        self._add_takedown_metrics(self.registry)
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

    def watch_outbox(self, engine: Engine, clock: Clock) -> None:
        self.registry.register(_OutboxCollector(engine, clock))

    def watch_queues(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Gauges of the work queues (cases per queue), read at each scrape."""
        self.registry.register(
            _CountsCollector(
                "ihx_case_queue", "Cases held here with an item in each work queue", "queue", counts
            )
        )

    def watch_takedown(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Gauges of the takedown watches (per state), read at each scrape."""
        self.registry.register(
            _CountsCollector("ihx_takedown_watches", "Watched cases per state", "state", counts)
        )

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
        if self._server is not None:
            server, self._server = self._server, None
            # Wait for the serving loop to let go (within its 0.5 s poll): until it does, the
            # listening socket stays open and a node restarted at once cannot bind the port.
            server.shutdown()
            server.server_close()


class _OutboxCollector(Collector):
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "ihx_outbox_pending", "Reports waiting for a receipt", labels=["destination"]
        )
        oldest = GaugeMetricFamily(
            "ihx_outbox_oldest_pending_seconds",
            "Age of the oldest report waiting for a receipt",
            labels=["destination"],
        )
        now = self._clock()
        for destination, count, first in outbox_depth(self._engine):
            depth.add_metric([destination], count)
            age = (now - first).total_seconds() if first is not None else 0.0
            oldest.add_metric([destination], max(0.0, age))
        yield depth
        yield oldest


class _CountsCollector(Collector):
    """One gauge with a label, from counts read at each scrape."""

    def __init__(
        self, name: str, help_text: str, label: str, counts: Callable[[], Mapping[str, int]]
    ) -> None:
        self._name = name
        self._help = help_text
        self._label = label
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(self._name, self._help, labels=[self._label])
        for value, count in self._counts().items():
            gauge.add_metric([value], count)
        yield gauge
