"""A real node with metrics on, given work of each kind the gauges count (not a test module).

nl-eokm runs alone on 127.0.0.1 (its peers never start, so delivery to them fails), with a
partner rule for NL cases and metrics on a free port. ``exercise`` makes calls of each kind —
unary OK, unary refused, a server stream — and a local case (a partner's backlog, a work queue)
and a DE report (an outbox row for de-eco). The chart test (tests/helm) reads this node's
``/metrics`` too, so the names the dashboards and alerts use are the names a node exports.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from auth.tokens import Scope
from exchange.client.stubs import IntakeClient
from exchange.node import Node, build_node
from exchange.tools.provision import Federation, MemberPlan, free_port, provision_federation
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc
from tests.conftest import GeoRow
from tests.exchange.cli.conftest import FAST_RETRIES
from tests.exchange.factories import host_in, make_submission, url_in

SETTINGS = (
    FAST_RETRIES
    + """health_probe_s = 0.1

[metrics]
listen = "127.0.0.1:{port}"
refresh_s = 0.1

[partners]
rules = [{ partner = "nl-police", countries = ["NL"], classifications = ["baseline"] }]
"""
)


def _hosts(geo_table: Mapping[str, GeoRow]) -> dict[str, list[str]]:
    """``host_in(cc)`` → an address in ``cc``, as the ``resolver`` fixture answers."""
    hosts: dict[str, list[str]] = {}
    for row in geo_table.values():
        hosts.setdefault(host_in(row.country), [row.sample])
    return hosts


@contextmanager
def live_node(
    root: Path,
    geo_table: Mapping[str, GeoRow],
    database_url: Callable[[str], str] | None = None,
    extra: str = "",
) -> Iterator[tuple[Federation, Node]]:
    fed = provision_federation(
        root,
        [
            MemberPlan("nl-eokm", "EOKM", ("NL",)),
            MemberPlan("de-eco", "eco", ("DE",)),
            MemberPlan("inhope", "INHOPE", ()),
        ],
        coordinator="inhope",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={net: row.country for net, row in geo_table.items()},
        asn_networks={},
        static_hosts=_hosts(geo_table),
        extra_settings=SETTINGS.replace("{port}", str(free_port())) + extra,
        database_url=database_url,
    )
    node = build_node(fed.settings["nl-eokm"])
    node.start()
    try:
        yield fed, node
    finally:
        node.stop(grace=0)


def exercise(fed: Federation, node: Node) -> None:
    """Calls of each kind, a local case for the partner and a report waiting for de-eco."""
    with grpc.insecure_channel(node.address) as channel:
        xgrpc.ExchangeStub(channel).GetNodeInfo(xpb.NodeInfoRequest(), timeout=10)
    with IntakeClient(node.address, token=fed.token("nl-eokm")) as intake:
        intake.submit(make_submission(url_in("NL", "/m.jpg"), hashes=["metrics-nl"]))
        intake.submit(make_submission(url_in("DE", "/m.jpg"), hashes=["metrics-de"]))
    with (
        IntakeClient(node.address, token=None) as anonymous,
        pytest.raises(grpc.RpcError) as refused,
    ):
        anonymous.submit(make_submission(url_in("NL", "/x.jpg"), hashes=["refused"]))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    token = fed.token("nl-eokm", Scope.CASES_PULL, subject="nl-police")
    with grpc.insecure_channel(node.address) as channel:
        stream = pgrpc.PartnerStub(channel).PullCases(
            ppb.PullCasesRequest(limit=10),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        list(stream)


def scrape(node: Node) -> str:
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())
