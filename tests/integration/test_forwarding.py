"""Forwarding: reports submitted at one node reach the member responsible for the hosting country.

Submitted at nl-eokm: DE- and US-hosted URLs travel to de-eco and us-ncmec in signed batches and
come back as signed receipts; NL-hosted URLs open a case at nl-eokm and never touch the outbox;
a JP-hosted URL follows the orphan rule to us-ncmec; URLs that cannot be traced go to the
coordinator. The origin's routing log shows intake → sent → receipted for every forwarded report.
"""

from __future__ import annotations

import pytest

from exchange.batch_entries import described
from exchange.domain import Submission
from exchange.ops.verify import verify_report
from exchange.store.routing_log import LogFilter, list_entries
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    PRIVATE_HOST,
    UNRESOLVABLE_HOST,
    US,
    Cluster,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def _batch(country: str, n: int, tag: str) -> list[Submission]:
    return [
        make_submission(url_in(country, f"/{tag}/{i}.jpg"), hashes=[f"{tag}-{i}-a", f"{tag}-{i}-b"])
        for i in range(n)
    ]


def test_reports_reach_the_responsible_member_with_signed_receipts(cluster: Cluster) -> None:
    to_de = _batch("DE", 25, "fwd-de")
    to_us = _batch("US", 25, "fwd-us")
    orphan = _batch("JP", 3, "fwd-jp")
    local = _batch("NL", 5, "fwd-nl")
    untraceable = [
        make_submission(f"http://{UNRESOLVABLE_HOST}/x.jpg", hashes=["fwd-gone"]),
        make_submission(f"http://{PRIVATE_HOST}/y.jpg", hashes=["fwd-private"]),
    ]
    responses = cluster.submit(NL, [*to_de, *to_us, *orphan, *local, *untraceable])
    groups = {
        "de": responses[:25],
        "us": responses[25:50],
        "jp": responses[50:53],
        "nl": responses[53:58],
        "untraceable": responses[58:],
    }

    # The decisions, as intake answered them.
    expected = {
        "de": (DE, pb.DECISION_REASON_SERVED_MEMBER, "DE"),
        "us": (US, pb.DECISION_REASON_SERVED_MEMBER, "US"),
        "jp": (US, pb.DECISION_REASON_ORPHAN_RULE, "JP"),
        "nl": (NL, pb.DECISION_REASON_LOCAL, "NL"),
        "untraceable": (COORDINATOR, pb.DECISION_REASON_UNTRACEABLE, ""),
    }
    for name, rs in groups.items():
        member, reason, country = expected[name]
        for r in rs:
            assert (r.decision.member, r.decision.reason, r.decision.country) == (
                member,
                reason,
                country,
            ), (name, r.canonical_url)
            assert r.decision.manifest_epoch == 1
            assert not r.duplicate

    remote = {
        DE: [r.report_id for r in groups["de"]],
        US: [r.report_id for r in groups["us"]] + [r.report_id for r in groups["jp"]],
        COORDINATOR: [r.report_id for r in groups["untraceable"]],
    }
    remote_ids = [rid for ids in remote.values() for rid in ids]
    local_ids = [r.report_id for r in groups["nl"]]
    assert len(set(remote_ids) | set(local_ids)) == len(responses)

    wait_until(
        lambda: (
            cluster.drained(NL)
            and all(cluster.count(m, "reports") == len(ids) for m, ids in remote.items())
        ),
        60,
        what="every forwarded report receipted",
        show=lambda: (
            cluster.delivery_state(NL),
            {m: cluster.count(m, "reports") for m in remote},
        ),
    )

    # At each receiver: exactly the reports addressed to it, stored as received, a case each.
    remote_case_of: dict[str, str] = {}
    for member, ids in remote.items():
        rows = cluster.rows(
            member,
            "SELECT r.id, r.role, r.origin_member, r.sender, r.decision_member, r.case_id,"
            " r.proof, r.envelope_sequence, cr.outcome, cr.reporting_member, c.status"
            " FROM reports r JOIN case_reports cr ON cr.report_id = r.id"
            " JOIN cases c ON c.id = r.case_id",
        )
        assert sorted(r.id for r in rows) == sorted(ids), member
        for r in rows:
            assert (r.role, r.origin_member, r.sender, r.decision_member) == (
                "received",
                NL,
                NL,
                member,
            )
            assert (r.outcome, r.reporting_member, r.status) == ("new-case", NL, "open")
            assert r.proof is not None
            assert r.envelope_sequence is not None
            remote_case_of[r.id] = r.case_id
        assert cluster.count(member, "cases") == len(ids)
        assert cluster.count(member, "inbox", "sender = :s", s=NL) >= 1

    # At the origin: a signed receipt per report, naming the remote case; nothing left over.
    deliveries = {
        r.report_id: r
        for r in cluster.rows(
            NL,
            "SELECT r.id AS report_id, d.destination, d.outcome, d.remote_case_id, d.reason"
            " FROM deliveries d JOIN reports r ON r.seq = d.report_seq",
        )
    }
    assert sorted(deliveries) == sorted(remote_ids)
    for member, ids in remote.items():
        for rid in ids:
            d = deliveries[rid]
            assert (d.destination, d.outcome, d.reason) == (member, "new-case", None)
            assert d.remote_case_id == remote_case_of[rid]
    # Hash announcements linger (announcement_linger_ms) and may still be on their way.
    wait_until(lambda: cluster.drained(NL), 10, what="nl-eokm's announcements receipted")
    assert cluster.count(NL, "outbox") == 0
    assert cluster.count(NL, "batches") >= 3
    assert cluster.count(NL, "batches", "receipted_at IS NULL OR receipt_body IS NULL") == 0

    # The routing log at the origin, each report's listing: intake → sent → receipted, in that
    # order; the last two are its batch's (one each per batch), the receipt naming its case.
    log_kinds: dict[str, list[str]] = {}
    with cluster.engine(NL).connect() as conn:
        for rid in remote_ids + local_ids:
            entries, _ = list_entries(conn, LogFilter(report_id=rid))
            log_kinds[rid] = [e.kind for e in entries]
            if rid in local_ids:
                continue
            sent, receipt = entries[1:]
            assert (sent.report_id, receipt.report_id) == (None, None)
            assert sent.member == receipt.member == deliveries[rid].destination
            said = described(receipt.detail, rid)
            assert said is not None
            assert said["receipt_time"], said
            assert (said["outcome"], said["case"]) == ("new-case", remote_case_of[rid])
    for rid in remote_ids:
        assert log_kinds[rid] == ["intake", "sent", "receipted"], rid
    batch_entries = cluster.rows(NL, "SELECT count(*) AS n FROM routing_log WHERE kind = 'sent'")
    assert batch_entries[0].n == cluster.count(NL, "batches", "kind = 'report'")

    # Local reports: a case here, never an outbox row or a batch entry.
    local_rows = cluster.rows(
        NL,
        "SELECT r.id, r.role, r.case_id, cr.outcome FROM reports r"
        " JOIN case_reports cr ON cr.report_id = r.id",
    )
    assert sorted(r.id for r in local_rows) == sorted(local_ids)
    assert all((r.role, r.outcome) == ("origin", "new-case") for r in local_rows)
    assert cluster.count(NL, "cases") == len(local_ids)
    for rid in local_ids:
        assert log_kinds[rid] == ["intake", "new-case"], rid
    assert not set(local_ids) & set(deliveries)

    # Remote reports are held at the origin too (role origin, no case of its own there).
    assert cluster.count(NL, "reports", "role = 'origin' AND case_id IS NULL") == len(remote_ids)

    # Every stored report re-verifies on its own, from the stored bytes: at the receiver (its
    # inclusion proof, the sender's signature, our receipt) and at the origin (our batch, the
    # receiver's signed receipt); every node's routing log chain is intact.
    for member, ids in [*remote.items(), (NL, remote_ids + local_ids)]:
        node = cluster.node(member)
        for rid in ids:
            result = verify_report(
                node.engine, rid, manifest=node.manifests.current(), self_member=member
            )
            assert result.ok, (member, [c for c in result.checks if not c.ok])
    for member in cluster.nodes:
        assert cluster.log_break(member) is None, member


@pytest.mark.timeout(60)
def test_resubmitting_is_idempotent_and_sends_nothing_twice(cluster: Cluster) -> None:
    subs = _batch("DE", 10, "again")
    first = cluster.submit(NL, subs)
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") == 10,
        30,
        what="first delivery",
        show=lambda: cluster.delivery_state(NL),
    )
    again = cluster.submit(NL, subs)
    assert [r.report_id for r in again] == [r.report_id for r in first]
    assert all(r.duplicate for r in again)
    assert cluster.count(NL, "outbox") == 0
    assert cluster.count(NL, "deliveries") == 10
    assert cluster.count(DE, "reports") == 10
