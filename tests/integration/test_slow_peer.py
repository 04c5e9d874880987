"""A peer that stops answering blocks nothing but its own deliveries.

de-eco runs as a child process and is frozen with SIGSTOP: its sockets stay open, so nothing
fails fast — the origin's sender only learns from its receipt deadline. Meanwhile nl-eokm must
keep taking submissions and keep delivering to us-ncmec. Once de-eco is thawed, everything queued
for it arrives exactly once, though the origin resent batches de-eco had already received on
streams it had abandoned.
"""

from __future__ import annotations

import pytest

from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster, StartProcess
from tests.integration.support import COORDINATOR, DE, NL, US, tuning, wait_until

N = 40


@pytest.mark.timeout(90)
def test_a_frozen_peer_blocks_neither_intake_nor_other_destinations(
    make_cluster: MakeCluster, node_processes: StartProcess
) -> None:
    cluster = make_cluster(extra_settings=tuning(receipt_timeout_s=1), start=(NL, US, COORDINATOR))
    de = node_processes(cluster, DE)
    de.pause()

    to_de = [
        make_submission(url_in("DE", f"/slow/{i}.jpg"), hashes=[f"slow-de-{i}"]) for i in range(N)
    ]
    first = cluster.submit(NL, to_de)
    sender = cluster.node(NL).senders[DE]
    wait_until(
        lambda: sender.last_error is not None,
        15,
        what="the origin giving up on de-eco's receipt",
    )
    # Intake and the other destination carry on while de-eco is frozen.
    to_us = [
        make_submission(url_in("US", f"/slow/{i}.jpg"), hashes=[f"slow-us-{i}"]) for i in range(N)
    ]
    second = cluster.submit(NL, to_us)
    assert all(r.decision.member == US for r in second)
    wait_until(
        lambda: (
            cluster.count(US, "reports") == N
            and cluster.count(NL, "outbox", "destination = :d", d=US) == 0
        ),
        30,
        what="us-ncmec served while de-eco is frozen",
        show=lambda: cluster.delivery_state(NL),
    )
    assert de.alive()
    assert cluster.count(NL, "outbox", "destination = :d", d=DE) == N

    de.resume()
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") == N,
        60,
        what="everything queued for de-eco delivered after it thawed",
        show=lambda: (cluster.delivery_state(NL), cluster.count(DE, "reports")),
    )
    ids = {r.report_id for r in first}
    assert {r.id for r in cluster.rows(DE, "SELECT id FROM reports")} == ids
    assert cluster.count(DE, "case_reports") == N
    assert cluster.count(DE, "case_reports", "outcome != 'new-case'") == 0
    assert cluster.rows(
        NL, "SELECT outcome, count(*) FROM deliveries WHERE destination = :d GROUP BY outcome", d=DE
    ) == [("new-case", N)]
    assert cluster.log_break(DE) is None
