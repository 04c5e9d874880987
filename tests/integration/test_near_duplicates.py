"""Near-known content across the network: a PDQ hash announced by one member flags a
near-duplicate submitted at another, over real gRPC between real nodes.

nl-eokm reports a DE-hosted URL with a PDQ hash of quality 90; de-eco opens the case and
announces the sighting (with its quality) to every member. us-ncmec then takes a report whose
PDQ hash is 20 bits away: its intake answer names de-eco's sighting as near-known content (not
known content: the hashes differ), and so does the case at us-ncmec (GetCase), where DE's very
hash is known content instead. The same hash with a quality under the threshold is stored but
not matched, and the answer says so.
"""

from __future__ import annotations

import pytest

from auth.tokens import Scope
from exchange.client.stubs import CasesClient
from exchange.domain import Classification, ContentHash, HashAlgorithm
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import make_submission, make_test_item, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.support import DE, FAST_TUNING, NL, US, Cluster, wait_until

# The change feed trimmed every second and the index file saved every 10 s (the least each
# allowed): the running node trims the feed up to its file's cursor.
SEND_QUALITY = (
    FAST_TUNING + "\n[pdq]\nsend_quality = true\ntrim_interval_s = 1\nsave_interval_s = 10\n"
)

SEEN = "c3" * 32


def near(bits: int, quality: int | None) -> ContentHash:
    value = int(SEEN, 16)
    for i in range(bits):
        value ^= 1 << (11 * i % 256)
    return ContentHash(HashAlgorithm.PDQ, f"{value:064x}", quality)


@pytest.mark.timeout(90)
def test_a_near_duplicate_at_us_is_flagged_against_de_sighting(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(extra_settings=SEND_QUALITY)
    first = cluster.submit_one(
        NL,
        make_submission(
            url_in("DE", "/gallery/pdq.jpg"),
            items=[make_test_item(near(0, 90), classification=Classification.NATIONAL)],
        ),
    )
    assert first.decision.member == DE
    de_case = wait_until(
        lambda: cluster.scalar(
            DE, "SELECT case_id FROM reports WHERE id = :id", id=first.report_id
        ),
        30,
        what="the report's case at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )
    wait_until(
        lambda: cluster.scalar(
            US,
            "SELECT quality FROM hash_index WHERE algorithm = 'pdq' AND hex = :hex",
            hex=SEEN,
        ),
        30,
        what="de-eco's PDQ announcement, with its quality, in us-ncmec's hash index",
        show=lambda: cluster.delivery_state(DE),
    )

    # Items 0 and 2 are two bits apart, and 3 is DE's very hash: within one report, neither
    # sibling is near-known content to the other.
    later = cluster.submit_one(
        US,
        make_submission(
            url_in("US", "/mirror/pdq.jpg"),
            items=[
                make_test_item(near(20, 80)),
                make_test_item(near(21, 30)),
                make_test_item(near(22, 90)),
                make_test_item(near(0, 90)),
            ],
        ),
    )
    flagged, low, sibling, same = later.items
    assert not flagged.known_content  # not the same hash: near-known, not known content
    assert [(n.hex, n.distance, n.member, n.case_id) for n in flagged.near] == [
        (SEEN, 20, DE, de_case)
    ]
    assert flagged.near[0].classification == pb.CLASSIFICATION_NATIONAL
    assert flagged.pdq_not_matched == ""
    assert list(low.near) == []
    assert low.pdq_not_matched == "pdq quality 30 below 50: not matched"
    assert [(n.hex, n.distance) for n in sibling.near] == [(SEEN, 22)]
    assert same.known_content
    assert same.first_seen_case == de_case
    assert list(same.near) == []  # its near hashes are its own report's

    _the_us_case_shows_it(cluster, later.report_id, de_case)
    wait_until(
        lambda: cluster.count(US, "pdq_changes") == 1,
        40,
        what="us-ncmec's pdq_changes trimmed to its last change while it runs",
        show=lambda: cluster.rows(US, "SELECT * FROM pdq_followers"),
    )
    last = cluster.scalar(US, "SELECT max(seq) FROM pdq_changes")
    assert cluster.rows(US, "SELECT cursor FROM pdq_followers") == [(last,)]


def _the_us_case_shows_it(cluster: Cluster, report_id: str, de_case: str) -> None:
    """GetCase at us-ncmec, over gRPC: each PDQ item's known content apart from its near-known
    content, as the index holds it now; the case's own items are neither to each other."""
    us_case = cluster.scalar(US, "SELECT case_id FROM reports WHERE id = :id", id=report_id)
    token = cluster.fed.token(US, Scope.CASES_WORK, subject="analyst-1")
    with CasesClient(cluster.address(US), token=token, timeout=30) as client:
        detail = client.case(us_case)
    assert detail.pdq_note == ""
    by_index = {p.index: p for p in detail.pdq}
    assert sorted(by_index) == [0, 1, 2, 3]
    flagged, low, sibling, same = (by_index[i] for i in range(4))
    assert flagged.known is None
    assert [(n.hex, n.distance, n.sighting.member, n.sighting.case_id) for n in flagged.near] == [
        (SEEN, 20, DE, de_case)
    ]
    assert flagged.near[0].sighting.classification is Classification.NATIONAL
    assert flagged.not_matched == ""
    assert (low.near, low.not_matched) == ((), "pdq quality 30 below 50: not matched")
    assert [(n.hex, n.distance) for n in sibling.near] == [(SEEN, 22)]
    assert same.known is not None
    assert (same.known.member, same.known.case_id) == (DE, de_case)
    assert same.near == ()
    assert all(
        p.report_id == report_id and p.hex == near(b, None).hex
        for p, b in zip((flagged, low, sibling, same), (20, 21, 22, 0), strict=True)
    )


@pytest.mark.timeout(90)
def test_without_send_quality_no_quality_leaves_a_node(make_cluster: MakeCluster) -> None:
    """The default (``[pdq] send_quality`` off): the report NL signs and sends and the
    announcement DE queues carry no field 3, so a member older than it takes them; the quality
    submitted at DE stays in DE's own index row, and DE's own matching uses it."""
    cluster = make_cluster(start=(NL, DE))
    sent = cluster.submit_one(
        NL,
        make_submission(url_in("DE", "/gallery/nl.jpg"), items=[make_test_item(near(40, 90))]),
    )
    wire = wait_until(
        lambda: cluster.scalar(DE, "SELECT wire FROM reports WHERE id = :id", id=sent.report_id),
        30,
        what="NL's report stored at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )
    assert not pb.Report.FromString(bytes(wire)).items[0].hashes[0].HasField("quality")

    own = cluster.submit_one(
        DE,
        make_submission(url_in("DE", "/gallery/de.jpg"), items=[make_test_item(near(0, 90))]),
    )
    assert own.decision.member == DE
    kept = "SELECT quality FROM hash_index WHERE member = :m AND hex = :hex"
    assert cluster.scalar(DE, kept, m=DE, hex=SEEN) == 90
    payloads = [
        xpb.HashAnnouncement.FromString(bytes(row[0]))
        for row in cluster.rows(DE, "SELECT payload FROM announcements")
    ]
    mine = [a for a in payloads if a.hash.hex == SEEN]
    assert mine
    assert not any(a.hash.HasField("quality") for a in mine)

    later = cluster.submit_one(
        DE,
        make_submission(url_in("DE", "/mirror/de.jpg"), items=[make_test_item(near(20, 80))]),
    )
    assert [(n.hex, n.member) for n in later.items[0].near] == [(SEEN, DE)]
