"""kill -9 mid-stream: nothing acknowledged is lost, nothing is stored twice.

One side of a busy exchange runs as a child process (``node_process.py``) and is SIGKILLed while
batches are in flight — no clean-up, no flush — then restarted on the same port with the same
files. After the senders drain, every report the origin acknowledged is stored at the receiver
exactly once: as many rows as distinct ids, one case and one routing-log entry each, one inbox
row per batch, every batch receipted with outcome "new case" (a report stored twice would come
back "merged"), and no outbox row left.

Batches are kept small (100 reports) so that a burst of 3,000 spans dozens of envelopes and the
kill lands in the middle of the stream rather than between two giant batches.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import grpc
import pytest

from exchange.client.stubs import IntakeClient
from exchange.domain import Submission
from exchange.ops.verify import verify_report
from exchange.tools.provision import MemberPlan
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster, StartProcess
from tests.integration.node_process import NodeProcess
from tests.integration.support import COORDINATOR, DE, NL, PLANS, Cluster, tuning, wait_until

BURST = 3000
TRIO: tuple[MemberPlan, ...] = tuple(p for p in PLANS if p.id in (NL, DE, COORDINATOR))
SMALL_BATCHES = tuning(max_batch=100)


class Submitter(threading.Thread):
    """Streams submissions to an intake and records every acknowledgement it gets."""

    def __init__(self, address: str, token: str, submissions: Iterable[Submission]) -> None:
        super().__init__(name="test-submitter", daemon=True)
        self.address = address
        self.token = token
        self.submissions = submissions
        self.acked: list[str] = []
        self.refused: list[str] = []
        self.error: grpc.RpcError | None = None

    def run(self) -> None:
        try:
            with IntakeClient(self.address, token=self.token, timeout=60) as client:
                for r in client.submit_many(self.submissions, chunk=250, deadline=120):
                    if r.error_code:
                        self.refused.append(f"{r.error_code}: {r.error}")
                    else:
                        self.acked.append(r.report_id)
        except grpc.RpcError as error:  # the intake died under us: what was acked stays acked
            self.error = error


def _burst(tag: str) -> list[Submission]:
    return [
        make_submission(url_in("DE", f"/{tag}/{i}.jpg"), hashes=[f"{tag}-{i}"])
        for i in range(BURST)
    ]


def _paced(submissions: list[Submission], every: int = 100) -> Iterator[Submission]:
    """The submissions, with a short pause every ``every`` — intake and delivery overlap."""
    for i, s in enumerate(submissions):
        if i and i % every == 0:
            time.sleep(0.1)
        yield s


def _kill_when_arrived(cluster: Cluster, proc: NodeProcess, at_least: int) -> int:
    """SIGKILL ``proc`` as soon as de-eco holds ``at_least`` reports; return how many it held."""
    wait_until(
        lambda: cluster.count(DE, "reports") >= at_least,
        60,
        interval=0.005,
        what=f"{at_least} reports at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )
    proc.kill()
    return cluster.count(DE, "reports")


def _assert_delivered_exactly_once(cluster: Cluster, acked: list[str]) -> None:
    origin_ids = {r.id for r in cluster.rows(NL, "SELECT id FROM reports")}
    assert set(acked) <= origin_ids, "an acknowledged report is missing at the origin"
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") >= len(origin_ids),
        120,
        what="the origin's outbox drained into de-eco",
        show=lambda: (cluster.delivery_state(NL), cluster.count(DE, "reports")),
    )

    # At the receiver: every report exactly once, one case each, no merge with itself.
    total, distinct = cluster.rows(DE, "SELECT count(*), count(DISTINCT id) FROM reports")[0]
    assert total == distinct == len(origin_ids)
    received = {r.id for r in cluster.rows(DE, "SELECT id FROM reports")}
    assert received == origin_ids
    assert set(acked) <= received
    assert cluster.count(DE, "reports", "role != 'received' OR origin_member != :o", o=NL) == 0
    assert cluster.count(DE, "case_reports") == len(origin_ids)
    assert cluster.count(DE, "case_reports", "outcome != 'new-case'") == 0
    assert cluster.count(DE, "cases") == len(origin_ids)
    assert cluster.count(DE, "routing_log", "kind = 'new-case'") == len(origin_ids)
    assert cluster.count(DE, "routing_log", "kind = 'merged'") == 0

    # At the origin: one receipt per report, every batch receipted once and stored once there.
    assert cluster.count(NL, "outbox") == 0
    batches = cluster.count(NL, "batches", "kind = 'report'")
    assert cluster.count(NL, "batches", "receipted_at IS NULL") == 0
    assert cluster.count(DE, "inbox", "sender = :s", s=NL) == batches
    deliveries = cluster.rows(
        NL,
        "SELECT r.id AS report_id, d.outcome"
        " FROM deliveries d JOIN reports r ON r.seq = d.report_seq",
    )
    assert len(deliveries) == len(origin_ids)
    assert {d.report_id for d in deliveries} == origin_ids
    assert {d.outcome for d in deliveries} == {"new-case"}
    assert cluster.count(NL, "routing_log", "kind = 'intake'") == len(origin_ids)
    for kind in ("sent", "receipted"):  # one entry per batch, each report in one only
        assert cluster.count(NL, "routing_log", "kind = :k", k=kind) == batches, kind
        assert cluster.batch_listed(NL, kind) == Counter(origin_ids), kind

    # The crashes left both routing logs intact, and stored reports verifiable on their own.
    for member in (NL, DE):
        assert cluster.log_break(member) is None, member
        for rid in sorted(origin_ids)[::97]:
            result = verify_report(
                cluster.engine(member), rid, manifest=cluster.fed.manifest, self_member=member
            )
            assert result.ok, (member, [c for c in result.checks if not c.ok])


@pytest.mark.timeout(180)
def test_receiver_killed_twice_mid_stream_loses_and_duplicates_nothing(
    make_cluster: MakeCluster, node_processes: StartProcess
) -> None:
    cluster = make_cluster(plans=TRIO, extra_settings=SMALL_BATCHES, start=(NL, COORDINATOR))
    receiver = node_processes(cluster, DE)
    submitter = Submitter(cluster.address(NL), cluster.token(NL), _burst("rk"))
    submitter.start()

    for fraction in (0.3, 0.6):
        held = _kill_when_arrived(cluster, receiver, int(BURST * fraction))
        assert held < BURST, f"delivery finished before the kill ({held} reports)"
        # The origin notices the dead peer (and keeps everything) before it comes back.
        wait_until(
            lambda: cluster.node(NL).senders[DE].last_error is not None,
            10,
            what="the origin's sender to hit the dead receiver",
        )
        cluster.node(NL).senders[DE].last_error = None
        receiver.start()

    submitter.join(120)
    assert not submitter.is_alive()
    assert submitter.error is None, submitter.error
    assert not submitter.refused, submitter.refused[:3]
    assert len(submitter.acked) == len(set(submitter.acked)) == BURST
    _assert_delivered_exactly_once(cluster, submitter.acked)
    # After all that, a clean stop still works.
    receiver.terminate()
    assert receiver.returncode == 0


@pytest.mark.timeout(180)
def test_sender_killed_mid_stream_delivers_every_acknowledged_report_once(
    make_cluster: MakeCluster, node_processes: StartProcess
) -> None:
    cluster = make_cluster(plans=TRIO, extra_settings=SMALL_BATCHES, start=(DE, COORDINATOR))
    origin = node_processes(cluster, NL)
    burst = _burst("sk")
    # Paced, so the origin dies while it is still taking submissions as well as delivering.
    submitter = Submitter(cluster.address(NL), cluster.token(NL), _paced(burst))
    submitter.start()

    held = _kill_when_arrived(cluster, origin, int(BURST * 0.3))
    assert held < BURST, f"delivery finished before the kill ({held} reports)"
    submitter.join(60)
    assert not submitter.is_alive()
    assert not submitter.refused, submitter.refused[:3]
    acked = list(submitter.acked)
    assert acked, "nothing was acknowledged before the kill"

    origin.start()
    _assert_delivered_exactly_once(cluster, acked)

    # The client retries the whole burst: what was acknowledged comes back as already held, the
    # rest is taken now, and de-eco still ends with every report exactly once.
    again = Submitter(cluster.address(NL), cluster.token(NL), burst)
    again.start()
    again.join(60)
    assert again.error is None, again.error
    assert not again.refused, again.refused[:3]
    assert again.acked[: len(acked)] == acked
    assert len(set(again.acked)) == BURST
    _assert_delivered_exactly_once(cluster, again.acked)
    assert cluster.count(DE, "reports") == BURST
