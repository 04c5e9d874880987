"""Helpers of the operations and mTLS tests: ports, scraping metrics, health checks, quick stops.

``with_operations_ports`` gives members their own loopback ports for Prometheus metrics and the
plaintext health server (settings refuse port 0, so every port is picked free beforehand).
``scrape`` reads a node's ``/metrics`` page over HTTP on 127.0.0.1 and parses it with
prometheus_client's own parser into ``{(name, labels): value}``. ``stop_quickly`` stops every
node of a cluster in parallel with a short grace period: the nodes' long-lived exchange streams
keep each server busy for its whole grace period, which would otherwise cost seconds per test.
"""

from __future__ import annotations

import threading
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from exchange.client.stubs import ClientTls
from exchange.node import Node
from exchange.settings.sections import HealthSection, MetricsSection
from exchange.tools.provision import Federation, free_port
from tests.integration.support import Cluster

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def with_operations_ports(fed: Federation, *members: str) -> None:
    """Give ``members`` (default: all) a metrics port and a health port on 127.0.0.1."""
    for member in members or tuple(fed.settings):
        fed.settings[member] = fed.settings[member].model_copy(
            update={
                # Gauges read from the database every 0.1 s (ops/gauges.py), not per scrape.
                "metrics": MetricsSection(listen=f"127.0.0.1:{free_port()}", refresh_s=0.1),
                "health": HealthSection(listen=f"127.0.0.1:{free_port()}"),
            }
        )


def scrape(port: int) -> Samples:
    """Every sample of ``http://127.0.0.1:<port>/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the node does not expose it."""
    return samples.get((name, frozenset(labels.items())))


def channel(address: str, tls: ClientTls | None = None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(address)
    ca, cert, key = tls
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca, key, cert))


def health_status(address: str, *, tls: ClientTls | None = None, timeout: float = 5.0) -> str:
    """The overall health (service "") a node reports at ``address``: SERVING, NOT_SERVING, …"""
    with channel(address, tls) as ch:
        response = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def stop_quickly(cluster: Cluster, grace: float = 0.5) -> None:
    """Stop every running node of ``cluster`` at once with a short grace, then close it."""
    nodes = list(cluster.nodes.values())
    cluster.nodes.clear()
    errors: list[BaseException] = []

    def stop(node: Node) -> None:
        try:
            node.stop(grace)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=stop, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    cluster.close()
    if errors:
        raise errors[0]
