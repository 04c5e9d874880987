"""A new manifest is picked up live, and a stale or forged one is refused.

Under epoch 1 no member serves RO and there is no orphan rule, so RO-hosted URLs fall back to the
coordinator. The coordinator publishes epoch 2 with RO added to de-eco: without any restart,
nl-eokm routes new RO reports to de-eco (decision epoch 2) and they arrive there. Then three
manifests that must not take effect — the same epoch with other content, an older epoch, and a
higher epoch signed by a member key instead of the coordinator's — are each refused, and the
nodes keep routing by epoch 2. A genuine epoch 3 afterwards is still accepted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime

import grpc
import pytest

from auth.manifest import Manifest, bump_epoch, replace_member, sign_manifest
from exchange.tools.provision import MemberPlan
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import report_pb2 as pb
from ihx.v1.intake_pb2 import SubmitReportResponse
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.support import COORDINATOR, DE, NL, PLANS, US, Cluster, wait_until

RO = "ro-safernet"
RO_PLAN = MemberPlan(RO, "Safernet Romania", ("RO",))


def _serving(manifest: Manifest, member: str, countries: set[str]) -> Manifest:
    m = manifest.member(member)
    return replace_member(manifest, dataclasses.replace(m, countries=frozenset(countries)))


def _write(cluster: Cluster, data: bytes) -> None:
    """Put a signed manifest file in front of every node, as ``Federation.publish`` does."""
    for member in cluster.fed.settings:
        target = cluster.fed.root / member / "manifest.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


def _epochs(cluster: Cluster) -> dict[str, int]:
    out = {}
    for member in cluster.fed.settings:
        with grpc.insecure_channel(cluster.address(member)) as channel:
            info = xgrpc.ExchangeStub(channel).GetNodeInfo(xpb.NodeInfoRequest(), timeout=5)
        out[member] = int(info.manifest_epoch)
    return out


def _ro_report(cluster: Cluster, n: int) -> SubmitReportResponse:
    return cluster.submit_one(
        NL, make_submission(url_in("RO", f"/live/{n}.jpg"), hashes=[f"live-{n}"])
    )


@pytest.mark.timeout(90)
def test_manifest_update_is_picked_up_live(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exchange.manifest_store")
    fed = cluster.fed
    epoch1 = fed.manifest

    before = _ro_report(cluster, 0)
    assert (before.decision.member, before.decision.reason) == (
        COORDINATOR,
        pb.DECISION_REASON_COORDINATOR_FALLBACK,
    )
    assert before.decision.manifest_epoch == 1

    # Epoch 2: de-eco serves RO as well. No restart.
    epoch2 = bump_epoch(_serving(epoch1, DE, {"DE", "RO"}), issued_at=datetime.now(UTC))
    fed.publish(epoch2)
    wait_until(lambda: set(_epochs(cluster).values()) == {2}, 20, what="every node on epoch 2")
    after = _ro_report(cluster, 1)
    assert (after.decision.member, after.decision.reason, after.decision.country) == (
        DE,
        pb.DECISION_REASON_SERVED_MEMBER,
        "RO",
    )
    assert after.decision.manifest_epoch == 2
    wait_until(
        lambda: cluster.count(DE, "reports", "id = :id", id=after.report_id) == 1,
        30,
        what="the RO report at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )
    detail = cluster.scalar(
        NL,
        "SELECT detail FROM routing_log WHERE kind = 'intake' AND report_id = :id",
        id=after.report_id,
    )
    assert json.loads(detail)["epoch"] == 2
    wait_until(
        lambda: cluster.count(COORDINATOR, "reports", "id = :id", id=before.report_id) == 1,
        30,
        what="the epoch-1 RO report at the coordinator",
    )

    # Three manifests that must not take effect; each would send RO to us-ncmec.
    to_us = _serving(_serving(epoch2, DE, {"DE"}), US, {"US", "RO"})
    stale = [
        ("same epoch", sign_manifest(to_us, fed.coordinator_key)),
        (
            "older epoch",
            sign_manifest(dataclasses.replace(to_us, epoch=1), fed.coordinator_key),
        ),
        (
            "not the coordinator's key",
            sign_manifest(bump_epoch(to_us, issued_at=datetime.now(UTC)), fed.keys[NL]),
        ),
    ]
    for n, (what, data) in enumerate(stale, start=2):
        caplog.clear()
        _write(cluster, data)
        wait_until(
            lambda: (
                sum("manifest update refused" in r.getMessage() for r in caplog.records)
                >= len(fed.settings)
            ),
            20,
            what=f"every node refusing the manifest with {what}",
            show=lambda: [r.getMessage() for r in caplog.records],
        )
        assert set(_epochs(cluster).values()) == {2}, what
        r = _ro_report(cluster, n)
        assert (r.decision.member, r.decision.manifest_epoch) == (DE, 2), what

    # The watcher is still alive: a genuine epoch 3 (RO to us-ncmec) is taken.
    fed.publish(bump_epoch(to_us, issued_at=datetime.now(UTC)))
    wait_until(lambda: set(_epochs(cluster).values()) == {3}, 20, what="every node on epoch 3")
    last = _ro_report(cluster, 99)
    assert (last.decision.member, last.decision.manifest_epoch) == (US, 3)
    wait_until(
        lambda: cluster.count(US, "reports", "id = :id", id=last.report_id) == 1,
        30,
        what="the epoch-3 RO report at us-ncmec",
        show=lambda: cluster.delivery_state(NL),
    )


@pytest.mark.timeout(90)
def test_a_member_joining_live_receives_its_reports(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(plans=(*PLANS, RO_PLAN), start=())
    fed = cluster.fed
    full = fed.manifest
    # The nodes start on epoch 2, which does not have ro-safernet yet.
    fed.publish(
        bump_epoch(
            dataclasses.replace(full, members=tuple(m for m in full.members if m.id != RO)),
            issued_at=datetime.now(UTC),
        )
    )
    cluster.start(NL, DE, US, COORDINATOR)
    before = _ro_report(cluster, 0)
    assert (before.decision.member, before.decision.manifest_epoch) == (COORDINATOR, 2)
    assert RO not in cluster.node(NL).senders

    # Epoch 3: ro-safernet joins, serving RO. Its node starts; the others learn of it live.
    fed.publish(dataclasses.replace(full, epoch=3, issued_at=datetime.now(UTC)))
    cluster.start(RO)
    wait_until(lambda: set(_epochs(cluster).values()) == {3}, 20, what="every node on epoch 3")
    after = _ro_report(cluster, 1)
    assert (after.decision.member, after.decision.reason, after.decision.manifest_epoch) == (
        RO,
        pb.DECISION_REASON_SERVED_MEMBER,
        3,
    )
    wait_until(
        lambda: (
            cluster.drained(NL)
            and cluster.count(RO, "reports", "id = :id", id=after.report_id) == 1
        ),
        30,
        what="the RO report at the new member",
        show=lambda: cluster.delivery_state(NL),
    )
    assert cluster.rows(RO, "SELECT origin_member, role FROM reports") == [(NL, "received")]
    # ... and the new member hears the network's announcements, the earlier ones included.
    wait_until(
        lambda: cluster.count(RO, "hash_index") >= 1,
        30,
        what="announcements at the new member",
    )
