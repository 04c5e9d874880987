"""Fixtures of the integration tests: real nodes on 127.0.0.1, real gRPC, real databases.

``cluster``: the test federation — nl-eokm (NL), de-eco (DE), us-ncmec (US) and the coordinator
inhope; orphan rule JP → us-ncmec — provisioned in a fresh directory with fast tuning, every
node started in this process. ``make_cluster`` provisions one with other members or tuning and
starts only what the test asks for. ``node_processes`` starts nodes as child processes.
``hostile_target`` (module scope): the partner federation with only nl-eokm running, and a
hostile de-eco and clients aimed at it (``tests/integration/hostile.py``).

Teardown stops every node and kills every child process, whether the test passed or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange.tools.provision import MemberPlan
from tests.integration.hostile import Target
from tests.integration.node_process import NodeProcess
from tests.integration.partner_cluster import new_partner_cluster, stop_senders
from tests.integration.support import (
    FAST_TUNING,
    NL,
    PLANS,
    Cluster,
    provision,
    release_databases,
)

MakeCluster = Callable[..., Cluster]
StartProcess = Callable[[Cluster, str], NodeProcess]


@pytest.fixture(scope="session", autouse=True)
def _drop_leftover_databases() -> Iterator[None]:
    # A federation provisioned without a Cluster that closes it still loses its databases.
    yield
    release_databases()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    made: list[Cluster] = []

    def make(
        *,
        plans: tuple[MemberPlan, ...] = PLANS,
        extra_settings: str = FAST_TUNING,
        start: tuple[str, ...] | None = None,
    ) -> Cluster:
        root = tmp_path / f"fed{len(made)}"
        cluster = Cluster(provision(root, plans=plans, extra_settings=extra_settings))
        made.append(cluster)
        for member in start if start is not None else [p.id for p in plans]:
            cluster.start(member)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Cluster:
    return make_cluster()


@pytest.fixture
def node_processes(tmp_path: Path) -> Iterator[StartProcess]:
    """Start a member of a cluster as a child process; all are killed at teardown."""
    started: list[NodeProcess] = []

    def start(cluster: Cluster, member: str) -> NodeProcess:
        proc = NodeProcess(cluster.config(member), tmp_path / f"{member}.process.log")
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture(scope="module")
def hostile_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """nl-eokm alone on loopback, and the hostile tools aimed at it; one per test module."""
    cluster = new_partner_cluster(tmp_path_factory.mktemp("hostile"), start=False)
    try:
        cluster.start(NL)
        target = Target(cluster)
        try:
            yield target
        finally:
            target.close()
    finally:
        stop_senders(cluster)
        cluster.close()
