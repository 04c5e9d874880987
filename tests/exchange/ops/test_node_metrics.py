"""A live node's ``/metrics``: gRPC calls per method and code, build info, the database gauges.

The calls are real (tests/exchange/ops/live_node.py); the values are read from the text a
Prometheus server would scrape, parsed by prometheus-client's own parser. The gauges are read
by the node's thread every 0.1 s here, so the test waits for them (no timing assertion).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GeoRow
from tests.dbs import Databases
from tests.exchange.ops.live_node import exercise, live_node, scrape

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def wait_for_sample(scraper: object, name: str, timeout: float = 30, **labels: str) -> Samples:
    assert callable(scraper)
    deadline = time.monotonic() + timeout
    while True:
        found = samples(scraper())
        if value(found, name, **labels):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} never appeared")
        time.sleep(0.05)


def call(kind: str, service: str, method: str, code: str) -> Mapping[str, str]:
    return {
        "grpc_type": kind,
        "grpc_service": f"ihx.v1.{service}",
        "grpc_method": method,
        "grpc_code": code,
    }


def test_a_live_node_exports_calls_build_info_and_gauges(
    tmp_path: Path, geo_table: Mapping[str, GeoRow], databases: Databases
) -> None:
    with live_node(tmp_path / "fed", geo_table, databases.for_members()) as (fed, node):
        exercise(fed, node)
        found = wait_for_sample(
            lambda: scrape(node), "ihx_partner_backlog", partner="nl-police", state="pulled"
        )
        found = wait_for_sample(
            lambda: scrape(node), "ihx_peer_failing_seconds", peer="de-eco", timeout=60
        )

    ok_info = call("unary", "Exchange", "GetNodeInfo", "OK")
    assert value(found, "grpc_server_handled_total", **ok_info) == 1
    assert value(found, "grpc_server_handling_seconds_count", **ok_info) == 1
    started = {k: v for k, v in ok_info.items() if k != "grpc_code"}
    assert value(found, "grpc_server_started_total", **started) == 1
    assert (
        value(found, "grpc_server_handled_total", **call("unary", "Intake", "SubmitReport", "OK"))
        == 2
    )
    refused = call("unary", "Intake", "SubmitReport", "UNAUTHENTICATED")
    assert value(found, "grpc_server_handled_total", **refused) == 1
    pulled = call("server_stream", "Partner", "PullCases", "OK")
    assert value(found, "grpc_server_handled_total", **pulled) == 1

    assert (
        value(
            found,
            "ihx_build_info",
            version=version("ihx"),
            python=platform.python_version(),
            grpc=version("grpcio"),
        )
        == 1
    )
    assert value(found, "ihx_health_serving") == 1
    # The NL case was pulled (not acknowledged) by the partner; the DE report waits for de-eco.
    assert value(found, "ihx_partner_backlog", partner="nl-police", state="pulled") == 1
    assert value(found, "ihx_outbox_pending", destination="de-eco") == 1
    assert (value(found, "ihx_peer_failing_seconds", peer="de-eco") or 0) > 0
    assert value(found, "ihx_case_queue", queue="unassessed") == 1
    assert value(found, "ihx_gauges_read_failures_total") == 0
    # Every write went through the writer's groups: they took time, COMMIT part of it.
    groups = value(found, "ihx_writer_groups_total") or 0
    assert groups >= 1
    assert (value(found, "ihx_writer_jobs_total") or 0) >= groups
    busy = value(found, "ihx_writer_busy_seconds_total") or 0
    assert busy > (value(found, "ihx_writer_commit_seconds_total") or 0) > 0
    assert (value(found, "ihx_writer_queue_wait_seconds_count") or 0) >= 1
