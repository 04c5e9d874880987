"""Dedup across the network: two origins, the same URLs, the same moment — one case per URL.

nl-eokm and de-eco both submit the same US-hosted URLs with the same items, from two threads at
once, so their batches reach us-ncmec interleaved. us-ncmec must hold exactly one case per URL
with both members recorded as reporters: one report opened the case, the other merged into it,
and each origin's signed receipt says which.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from exchange.client.stubs import IntakeClient
from exchange.domain import Submission
from ihx.v1 import intake_pb2 as ipb
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import DE, NL, US, Cluster, wait_until

URLS = 150


def _race(
    cluster: Cluster, submissions: dict[str, list[Submission]]
) -> dict[str, list[ipb.SubmitReportResponse]]:
    """Each member submits its list from its own thread, all starting at the same moment."""
    answers: dict[str, list[ipb.SubmitReportResponse]] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(len(submissions))

    def submit(member: str) -> None:
        try:
            go.wait(10)
            # Single submissions, so each origin's sender ships small batches all along.
            token = cluster.token(member)
            with IntakeClient(cluster.address(member), token=token, timeout=30) as client:
                answers[member] = [client.submit(s) for s in submissions[member]]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=submit, args=(m,)) for m in submissions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert {m: len(a) for m, a in answers.items()} == {m: len(s) for m, s in submissions.items()}
    return answers


@pytest.mark.timeout(120)
def test_same_url_from_two_origins_at_once_gives_one_case_two_reporters(cluster: Cluster) -> None:
    subs = [
        make_submission(url_in("US", f"/race/{i}.jpg"), hashes=[f"race-{i}-a", f"race-{i}-b"])
        for i in range(URLS)
    ]
    answers = _race(cluster, {NL: subs, DE: subs})
    assert all(r.decision.member == US for a in answers.values() for r in a)

    wait_until(
        lambda: (
            cluster.drained(NL) and cluster.drained(DE) and cluster.count(US, "reports") == 2 * URLS
        ),
        60,
        what="both origins' reports receipted by us-ncmec",
        show=lambda: (
            cluster.delivery_state(NL),
            cluster.delivery_state(DE),
            cluster.count(US, "reports"),
        ),
    )

    assert cluster.count(US, "cases") == URLS
    per_case = cluster.rows(
        US,
        "SELECT c.id, c.url, count(*) AS n, count(DISTINCT cr.reporting_member) AS members,"
        " sum(CASE WHEN cr.outcome = 'new-case' THEN 1 ELSE 0 END) AS opened,"
        " sum(CASE WHEN cr.outcome = 'merged' THEN 1 ELSE 0 END) AS merged"
        " FROM cases c JOIN case_reports cr ON cr.case_id = c.id GROUP BY c.id",
    )
    assert len(per_case) == URLS
    assert {r.url for r in per_case} == {url_in("US", f"/race/{i}.jpg") for i in range(URLS)}
    for r in per_case:
        assert (r.n, r.members, r.opened, r.merged) == (2, 2, 1, 1), r
    reporters = cluster.rows(US, "SELECT case_id, reporting_member FROM case_reports")
    assert Counter(r.reporting_member for r in reporters) == {NL: URLS, DE: URLS}
    # Both origins' reports point at the same case; the merged one added no new items.
    assert cluster.count(US, "case_reports", "outcome = 'merged' AND new_items != 0") == 0
    assert cluster.count(US, "reports", "case_id IS NULL") == 0

    # Each origin learnt from its signed receipt which case its report went to, and for every
    # URL one origin was told "new case" and the other "merged".
    case_by_url = {r.url: r.id for r in per_case}
    outcomes_by_url: dict[str, list[str]] = {}
    for member in (NL, DE):
        rows = cluster.rows(
            member,
            "SELECT r.url, d.outcome, d.remote_case_id FROM deliveries d"
            " JOIN reports r ON r.seq = d.report_seq",
        )
        assert len(rows) == URLS
        for row in rows:
            assert row.remote_case_id == case_by_url[row.url]
            outcomes_by_url.setdefault(row.url, []).append(row.outcome)
    assert len(outcomes_by_url) == URLS
    for url, outcomes in outcomes_by_url.items():
        assert sorted(outcomes) == ["merged", "new-case"], url


@pytest.mark.timeout(120)
def test_a_merge_from_another_origin_adds_only_the_new_items(cluster: Cluster) -> None:
    n = 60
    url = [url_in("US", f"/more/{i}.jpg") for i in range(n)]
    # de-eco saw one more image at each URL than nl-eokm did.
    answers = _race(
        cluster,
        {
            NL: [make_submission(url[i], hashes=[f"more-{i}-a"]) for i in range(n)],
            DE: [make_submission(url[i], hashes=[f"more-{i}-a", f"more-{i}-x"]) for i in range(n)],
        },
    )
    wait_until(
        lambda: (
            cluster.drained(NL) and cluster.drained(DE) and cluster.count(US, "reports") == 2 * n
        ),
        60,
        what="both origins' reports receipted by us-ncmec",
        show=lambda: (cluster.delivery_state(NL), cluster.delivery_state(DE)),
    )
    assert cluster.count(US, "cases") == n
    rows = cluster.rows(
        US,
        "SELECT c.url, cr.reporting_member, cr.outcome, cr.new_items FROM case_reports cr"
        " JOIN cases c ON c.id = cr.case_id",
    )
    by_url: dict[str, dict[str, tuple[str, int]]] = {}
    for r in rows:
        by_url.setdefault(r.url, {})[r.reporting_member] = (r.outcome, r.new_items)
    assert sorted(by_url) == sorted(url)
    for u, seen in by_url.items():
        if seen[NL][0] == "new-case":  # nl-eokm first: de-eco's merge brings the extra image
            assert seen == {NL: ("new-case", 1), DE: ("merged", 1)}, u
        else:  # de-eco first with both images: nl-eokm's merge brings nothing new
            assert seen == {DE: ("new-case", 2), NL: ("merged", 0)}, u
    # Every image of every URL is in us-ncmec's hash index, under that URL's one case.
    hashes = cluster.rows(
        US, "SELECT h.hex, c.url FROM hash_index h JOIN cases c ON c.id = h.case_id"
    )
    assert len(hashes) == 2 * n
    assert {r.url for r in hashes} == set(url)
    assert len(answers[NL]) == len(answers[DE]) == n
