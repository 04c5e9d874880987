"""Three replicas of one node share a PostgreSQL database; one is SIGKILLed while they drain.

Node A (nl-eokm) runs as three PROCESSES with the same member, key, manifest and database and
different listen ports; node B (de-eco) runs as a fourth. Analysts submit 20,000 DE-hosted reports
to A's three replicas while B is down, so one outbox of 20,000 waits. Then B starts, the replica
holding B's lease streams, and once B has part of the reports that replica is SIGKILLed. Another
replica must take the peer over after the lease expires, resend whatever the dead one had sealed
and not yet had receipted, and finish. Afterwards:

- B stores exactly 20,000 reports, and its inbox from A holds exactly 20,000 payloads;
- A's outbox is empty, every batch it sealed has a receipt, and every report went into exactly
  one batch (no report sent twice) and has exactly one delivery;
- A's routing log, appended to by all three replicas, verifies as one hash chain, with one
  "intake" entry per report and one "sent" and one "receipted" entry per batch, which list
  each report once.

PostgreSQL is required on every run (the env URL of the suite, else the local default CI
provides); the test fails with a clear message if it is unreachable.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.client.stubs import IntakeClient
from exchange.tools.provision import (
    Federation,
    MemberPlan,
    free_port,
    provision_federation,
    write_replica_settings,
)
from tests.dbs import Databases, postgresql_admin_url
from tests.exchange.factories import make_submission, url_in
from tests.integration.node_process import NodeProcess
from tests.integration.support import (
    ASN_NETWORKS,
    COUNTRY_NETWORKS,
    DE,
    NL,
    STATIC_HOSTS,
    Cluster,
    tuning,
    wait_until,
)

REPORTS = 20_000
REPLICAS = 3
LEASE_S = 2.0

pytestmark = pytest.mark.timeout(600)


@dataclass
class Replicated:
    fed: Federation
    cluster: Cluster  # for database look-ups only: no node runs in this process
    replicas: list[NodeProcess]
    addresses: list[str]
    b: NodeProcess


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Replicated]:
    databases = Databases(tmp_path, postgresql_admin_url())
    processes: list[NodeProcess] = []
    cluster: Cluster | None = None
    try:
        fed = provision_federation(
            tmp_path / "fed",
            [MemberPlan(NL, "A", ("NL",)), MemberPlan(DE, "B", ("DE",))],
            coordinator=DE,
            now=datetime.now(UTC),
            orphan_rules={},
            country_networks=COUNTRY_NETWORKS,
            asn_networks=ASN_NETWORKS,
            static_hosts=STATIC_HOSTS,
            # Many small batches, so the kill lands with batches sealed and in flight.
            extra_settings=tuning(max_batch=200, lease_s=LEASE_S),
            database_url=databases.new,
        )
        cluster = Cluster(fed)
        addresses = [fed.settings[NL].listen] + [
            f"127.0.0.1:{free_port()}" for _ in range(REPLICAS - 1)
        ]
        configs = [fed.config_path(NL)] + [
            write_replica_settings(fed.config_path(NL), f"replica-{i}.toml", addresses[i])
            for i in range(1, REPLICAS)
        ]
        replicas = [NodeProcess(c, tmp_path / f"a-{i}.log") for i, c in enumerate(configs)]
        processes.extend(replicas)
        b = NodeProcess(fed.config_path(DE), tmp_path / "b.log")
        processes.append(b)
        yield Replicated(fed, cluster, replicas, addresses, b)
    finally:
        for proc in processes:
            proc.kill()
        if cluster is not None:
            cluster.close()
        databases.close()


def submit(address: str, token: str, numbers: range) -> None:
    submissions = (
        make_submission(url_in("DE", f"/replica/{i}.jpg"), hashes=[f"replica-{i}"]) for i in numbers
    )
    with IntakeClient(address, token=token, timeout=120) as client:
        refused = [r for r in client.submit_many(submissions, deadline=300) if r.error_code]
    assert not refused, refused[:3]


def lease_holder_pid(cluster: Cluster) -> int | None:
    holder = cluster.scalar(
        NL, "SELECT holder FROM peer_leases WHERE destination = :d", d=DE
    )  # replica ids are host:pid:random
    return int(holder.split(":")[1]) if holder else None


def test_three_replicas_drain_one_outbox_exactly_once_while_one_is_killed(
    replicated: Replicated,
) -> None:
    r, cluster = replicated, replicated.cluster
    for proc in r.replicas:
        proc.start()

    # 20,000 reports through the three replicas' intake at once, while B is down.
    token = r.fed.token(NL)
    share = REPORTS // REPLICAS
    ranges = [range(i * share, REPORTS if i == REPLICAS - 1 else (i + 1) * share) for i in range(3)]
    errors: list[BaseException] = []

    def run(address: str, numbers: range) -> None:
        try:
            submit(address, token, numbers)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(a, n)) for a, n in zip(r.addresses, ranges, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert cluster.count(NL, "outbox") == REPORTS
    assert cluster.count(NL, "reports") == REPORTS

    # B comes up; the lease holder streams. Kill it part-way.
    r.b.start()
    pids = {proc.pid: proc for proc in r.replicas}
    wait_until(
        lambda: cluster.count(DE, "reports") >= REPORTS // 4,
        120,
        what="a quarter of the reports at B",
        show=lambda: cluster.delivery_state(NL),
    )
    victim_pid = lease_holder_pid(cluster)
    assert victim_pid in pids, (victim_pid, list(pids))
    victim = pids[victim_pid]
    victim.kill()
    at_kill = cluster.count(DE, "reports")
    unreceipted_at_kill = cluster.count(NL, "batches", "receipted_at IS NULL")
    assert at_kill < REPORTS, "the drain finished before the kill: the test proved nothing"

    # Another replica takes B over after the lease runs out, and finishes the drain.
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") == REPORTS,
        300,
        what="A drained and all reports at B",
        show=lambda: {**cluster.delivery_state(NL), "at B": cluster.count(DE, "reports")},
    )
    successor = lease_holder_pid(cluster)
    assert successor in pids
    assert successor != victim_pid
    assert pids[successor].alive()

    # B: every report exactly once.
    assert cluster.count(DE, "reports", "role = 'received'") == REPORTS
    assert cluster.scalar(DE, "SELECT count(DISTINCT id) FROM reports") == REPORTS
    inbox = cluster.scalar(DE, "SELECT sum(payload_count) FROM inbox WHERE sender = :a", a=NL)
    assert inbox == REPORTS

    # A: nothing pending, every batch receipted, every report in exactly one batch.
    assert cluster.count(NL, "outbox") == 0
    assert cluster.count(NL, "batches", "receipted_at IS NULL") == 0
    sealed = cluster.scalar(
        NL,
        "SELECT sum(payload_count) FROM batches WHERE destination = :b AND kind = 'report'",
        b=DE,
    )
    assert sealed == REPORTS
    assert cluster.count(NL, "deliveries") == REPORTS
    assert cluster.scalar(NL, "SELECT count(DISTINCT report_seq) FROM deliveries") == REPORTS
    # The batches B accepted are exactly the batches A sealed (resends deduplicated by sequence).
    a_batches = cluster.count(NL, "batches", "destination = :b AND kind = 'report'", b=DE)
    assert cluster.count(DE, "inbox", "sender = :a", a=NL) == a_batches

    # A's routing log: one chain across three writers, one intake entry per report, one sent
    # and one receipt per batch, each report listed in one of each.
    assert cluster.log_break(NL) is None
    entries = cluster.count(NL, "routing_log", "kind = 'intake'")
    distinct = cluster.scalar(
        NL, "SELECT count(DISTINCT report_id) FROM routing_log WHERE kind = 'intake'"
    )
    assert (entries, distinct) == (REPORTS, REPORTS)
    ids = {r.id for r in cluster.rows(NL, "SELECT id FROM reports")}
    for kind in ("sent", "receipted"):
        entries = cluster.count(NL, "routing_log", "kind = :k", k=kind)
        assert (kind, entries) == (kind, a_batches), unreceipted_at_kill
        assert cluster.batch_listed(NL, kind) == Counter(ids), (kind, unreceipted_at_kill)
