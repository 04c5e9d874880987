"""Health tells the truth: NOT_SERVING while the database takes no write, SERVING once it does.

A real node on loopback, its SQLite database locked by another connection (``BEGIN IMMEDIATE``
holds the write lock, as a stuck migration or a backup tool would): the node's health probe
cannot commit, so health over gRPC turns NOT_SERVING — for the server and for each service —
and turns SERVING again once the lock is released. (Worker exhaustion cannot be caused through
the RPCs any more — admission prevents it — so it is tested on a real pool in
tests/exchange/test_health_monitor.py.)
"""

from __future__ import annotations

import sqlite3

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.conftest import MakeCluster
from tests.integration.ops import health_status
from tests.integration.support import NL, tuning, wait_until


def service_status(address: str, service: str) -> str:
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


@pytest.mark.timeout(90)
def test_a_locked_database_is_not_serving_until_it_is_released(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_settings=tuning(health_probe_s=0.2), start=(NL,))
    url = cluster.fed.settings[NL].database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("locks a SQLite file")
    address = cluster.address(NL)
    assert health_status(address) == "SERVING"

    lock = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN IMMEDIATE")
        wait_until(
            lambda: health_status(address) == "NOT_SERVING",
            30,
            what="health NOT_SERVING while the database is locked",
        )
        assert service_status(address, "ihx.v1.Intake") == "NOT_SERVING"
        monitor = cluster.node(NL).health_monitor
        assert monitor is not None
        assert monitor.reason.startswith("database:")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_until(
        lambda: health_status(address) == "SERVING",
        30,
        what="health SERVING again once the lock is released",
    )
    assert service_status(address, "ihx.v1.Intake") == "SERVING"
