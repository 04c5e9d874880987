"""store/hash_index.py: per-member sightings, the derived first sighting, retraction, queueing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine, select

from exchange.domain import Classification, ContentHash, HashAlgorithm
from exchange.store import hash_index, schema
from tests.exchange.factories import T0, content_hash, make_announcement
from tests.exchange.store.plans import sqlite_plans


def test_the_earliest_sighting_is_the_first_ties_to_the_lower_member(engine: Engine) -> None:
    with engine.begin() as conn:
        hash_index.upsert_sightings(
            conn,
            [
                make_announcement("a", member="us-ncmec", first_seen=T0),
                make_announcement("a", member="de-eco", first_seen=T0),
                make_announcement("a", member="nl-eokm", first_seen=T0 + timedelta(hours=1)),
            ],
        )
    with engine.connect() as conn:
        first = hash_index.known_content(conn, [content_hash("a"), content_hash("z")])
    assert list(first) == [content_hash("a")]
    assert first[content_hash("a")].member == "de-eco"


def test_a_sighting_answers_only_its_own_algorithm(engine: Engine) -> None:
    sha = content_hash("a")
    pdq = ContentHash(HashAlgorithm.PDQ, sha.hex)  # the same hex under another algorithm
    with engine.begin() as conn:
        hash_index.upsert_sightings(conn, [make_announcement(pdq, member="us-ncmec")])
        hash_index.upsert_sightings(conn, [make_announcement(content_hash("b"))])
    with engine.connect() as conn:
        assert hash_index.known_content(conn, [sha]) == {}
        found = hash_index.known_content(conn, [sha, pdq, content_hash("b")])
    assert set(found) == {pdq, content_hash("b")}
    assert found[pdq].member == "us-ncmec"


def test_min_quality_leaves_out_the_lower_sightings(engine: Engine) -> None:
    pdq = content_hash("p", HashAlgorithm.PDQ)
    low = make_announcement(replace(pdq, quality=50), member="de-eco", first_seen=T0)
    high = make_announcement(
        replace(pdq, quality=90), member="us-ncmec", first_seen=T0 + timedelta(hours=1)
    )
    with engine.begin() as conn:
        hash_index.upsert_sightings(conn, [low, high])
    with engine.connect() as conn:
        assert hash_index.known_content(conn, [pdq])[pdq].member == "de-eco"
        assert hash_index.known_content(conn, [pdq], min_quality=80)[pdq].member == "us-ncmec"
        assert hash_index.known_content(conn, [pdq], min_quality=95) == {}


def test_known_content_looks_hashes_up_by_the_primary_key(engine: Engine) -> None:
    """Each batch's lookup searches the key (algorithm, hex): a scan of the whole index per
    batch grows with the network."""
    hashes = [content_hash("a"), content_hash("b", HashAlgorithm.PDQ)]
    plans = sqlite_plans(engine, "hash_index", lambda c: hash_index.known_content(c, hashes))
    if engine.dialect.name == "sqlite":
        assert len(plans) == 2  # one per algorithm
    for plan in plans:
        assert "(algorithm=? AND hex=?)" in plan, plan
        assert "SCAN hash_index" not in plan, plan


def test_own_first_sightings_keep_the_earlier_time(engine: Engine) -> None:
    early = make_announcement("a", member="nl-eokm", first_seen=T0)
    late = replace(early, first_seen=T0 + timedelta(hours=1), case_id="c-" + "1" * 32)
    with engine.begin() as conn:
        hash_index.add_first_sightings(conn, [early])
        hash_index.add_first_sightings(conn, [late])
    with engine.connect() as conn:
        (k,) = hash_index.known_content(conn, [content_hash("a")]).values()
    assert (k.first_seen, k.case_id) == (early.first_seen, early.case_id)


def test_an_announcement_updates_the_sighting_but_keeps_the_earlier_time(engine: Engine) -> None:
    first = make_announcement("a", member="us-ncmec", first_seen=T0)
    again = replace(
        first,
        first_seen=T0 + timedelta(hours=2),
        classification=Classification.NATIONAL,
        case_id="c-" + "2" * 32,
    )
    with engine.begin() as conn:
        hash_index.upsert_sightings(conn, [first])
        hash_index.upsert_sightings(conn, [again])
        hash_index.upsert_sightings(conn, [])  # nothing to do
    with engine.connect() as conn:
        (k,) = hash_index.known_content(conn, [content_hash("a")]).values()
    assert (k.first_seen, k.classification, k.case_id) == (T0, again.classification, again.case_id)


def test_retract_removes_only_that_members_row(engine: Engine) -> None:
    mine = make_announcement("a", member="nl-eokm", first_seen=T0)
    theirs = make_announcement("a", member="us-ncmec", first_seen=T0 + timedelta(hours=1))
    with engine.begin() as conn:
        hash_index.upsert_sightings(conn, [mine, theirs])
        hash_index.retract(conn, mine)
    with engine.connect() as conn:
        members = {r.member for r in conn.execute(select(schema.hash_index))}
    assert members == {"us-ncmec"}


def test_announcements_are_queued_in_order(engine: Engine) -> None:
    with engine.begin() as conn:
        hash_index.queue_announcements(conn, [b"one", b"two"], T0)
        hash_index.queue_announcements(conn, [], T0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.announcements.c.payload).order_by(schema.announcements.c.seq)
        ).all()
    assert [r.payload for r in rows] == [b"one", b"two"]
