"""Known content via hash announcements: the whole network learns of a first sighting.

nl-eokm reports a DE-hosted URL; de-eco opens the case and announces the new item hashes,
signed, through its outbox to every member. Once the announcement is in us-ncmec's hash index,
a new report at us-ncmec carrying one of those hashes is marked known content, naming de-eco
and de-eco's case as the first sighting, with the first analyst's classification.
"""

from __future__ import annotations

import functools

import pytest

from exchange.domain import Classification
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import content_hash, make_submission, make_test_item, url_in
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, wait_until


@pytest.mark.timeout(60)
def test_a_hash_first_seen_at_de_is_known_content_at_us(cluster: Cluster) -> None:
    seen = content_hash("known-1")
    other = content_hash("known-2")
    first = cluster.submit_one(
        NL,
        make_submission(
            url_in("DE", "/gallery/1.jpg"),
            items=[
                make_test_item(seen, classification=Classification.NATIONAL),
                make_test_item(other),
            ],
        ),
    )
    assert first.decision.member == DE
    assert not any(i.known_content for i in first.items)

    de_case = wait_until(
        lambda: cluster.scalar(
            DE, "SELECT case_id FROM reports WHERE id = :id", id=first.report_id
        ),
        30,
        what="the report's case at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )

    def indexed(member: str) -> list[tuple[object, ...]]:
        return [
            tuple(r)
            for r in cluster.rows(
                member,
                "SELECT member, case_id, report_id, classification FROM hash_index"
                " WHERE algorithm = 'sha256' AND hex = :hex",
                hex=seen.hex,
            )
        ]

    for member in (US, NL, COORDINATOR):
        rows = wait_until(
            functools.partial(indexed, member),
            30,
            what=f"de-eco's announcement in {member}'s hash index",
            show=lambda: cluster.delivery_state(DE),
        )
        assert rows == [(DE, de_case, first.report_id, "national")], member

    # A new report at us-ncmec (US-hosted: a local case there) with one known and one new item.
    later = cluster.submit_one(
        US,
        make_submission(url_in("US", "/mirror/1.jpg"), hashes=[seen, content_hash("known-new")]),
    )
    assert later.decision.member == US
    known, new = later.items
    assert known.known_content
    assert (known.first_seen_member, known.first_seen_case) == (DE, de_case)
    assert known.first_classification == pb.CLASSIFICATION_NATIONAL
    assert not new.known_content
    stored = cluster.rows(
        US,
        "SELECT idx, known_member, known_case, known_report, known_classification FROM items"
        " WHERE report_seq = (SELECT seq FROM reports WHERE id = :id) ORDER BY idx",
        id=later.report_id,
    )
    assert [tuple(r) for r in stored] == [
        (0, DE, de_case, first.report_id, "national"),
        (1, None, None, None, None),
    ]

    # nl-eokm learnt it too: its intake marks a new DE-hosted report with that hash, and de-eco,
    # receiving it, marks the item against its own earlier case.
    again = cluster.submit_one(NL, make_submission(url_in("DE", "/gallery/2.jpg"), hashes=[seen]))
    assert again.decision.member == DE
    assert [(i.known_content, i.first_seen_member, i.first_seen_case) for i in again.items] == [
        (True, DE, de_case)
    ]
    marked = wait_until(
        lambda: cluster.rows(
            DE,
            "SELECT known_member, known_case FROM items"
            " WHERE report_seq = (SELECT seq FROM reports WHERE id = :id)",
            id=again.report_id,
        ),
        30,
        what="the second report at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )
    assert [tuple(r) for r in marked] == [(DE, de_case)]

    # The index keeps the first sighting: us-ncmec's own case does not replace de-eco's.
    wait_until(lambda: cluster.drained(US), 30, what="us-ncmec's announcements delivered")
    assert indexed(US) == [(DE, de_case, first.report_id, "national")]
    assert indexed(DE) == [(DE, de_case, first.report_id, "national")]
