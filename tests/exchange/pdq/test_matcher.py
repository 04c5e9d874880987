"""The node's PDQ matcher over a real database: it follows the sightings table (added,
announced, retracted), filters on quality, answers at the threshold's edges, and survives a
restart through its file — or rebuilds when the file does not hold."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from exchange import cases
from exchange.domain import ContentHash, HashAlgorithm, KnownContent, parse_hash, parse_hash_text
from exchange.errors import InvalidReport
from exchange.pdq.codes import Codes, to_codes
from exchange.pdq.index import Ids, Matches, PdqIndex
from exchange.pdq.matcher import PdqMatcher
from exchange.store import hash_index
from exchange.store.writer import Writer
from exchange.wire.codec import hash_from_proto, hash_to_proto
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import make_announcement

BASE = "5a" * 32


def pdq(
    flips: int = 0, *, start: int = 0, quality: int | None = 90, base: str = BASE
) -> ContentHash:
    """``BASE`` with ``flips`` bits flipped from bit ``start`` on, spread over every sub-code."""
    value = int(BASE, 16)
    for i in range(flips):
        value ^= 1 << ((start + 7 * i) % 256)
    return ContentHash(HashAlgorithm.PDQ, f"{value:064x}", quality)


def announce(writer: Writer, *sightings: KnownContent) -> None:
    writer.execute(lambda tx: cases.record_announcements(tx, list(sightings)))


def matcher(engine: Engine, path: Path | None = None, *, min_quality: int = 50) -> PdqMatcher:
    m = PdqMatcher(engine, max_distance=31, min_quality=min_quality, path=path)
    m.open()
    return m


@pytest.mark.parametrize(("distance", "near"), [(30, True), (31, True), (32, False)])
def test_threshold_boundaries(engine: Engine, writer: Writer, distance: int, near: bool) -> None:
    announce(writer, make_announcement(pdq(distance), member="be-childfocus"))
    ((found, why),) = matcher(engine).match([pdq()])
    assert why == ""
    assert [n.distance for n in found] == ([distance] if near else [])
    if near:
        assert found[0].sighting.member == "be-childfocus"
        assert found[0].hex == pdq(distance).hex


def test_quality_below_the_threshold_is_kept_but_never_matched(
    engine: Engine, writer: Writer
) -> None:
    announce(
        writer,
        make_announcement(pdq(10, quality=80), member="be-childfocus"),
        make_announcement(pdq(12, start=1, quality=30), member="de-eco"),
        make_announcement(pdq(14, start=2, quality=None), member="fr-pointdecontact"),
    )
    m = matcher(engine)
    assert len(m) == 1  # only the sighting of quality 80 is indexed
    answers = m.match([pdq(quality=90), pdq(quality=None), pdq(quality=49), None])
    assert [n.sighting.member for n in answers[0][0]] == ["be-childfocus"]
    assert answers[1] == ((), "pdq quality unknown: not matched")
    assert answers[2] == ((), "pdq quality 49 below 50: not matched")
    assert answers[3] == ((), "no pdq hash")
    # the low-quality sighting is stored all the same
    with engine.connect() as conn:
        stored = hash_index.known_content(conn, [pdq(12, start=1)])
    assert stored[pdq(12, start=1)].hash.quality == 30


def test_follows_announcements_and_retractions(engine: Engine, writer: Writer) -> None:
    m = matcher(engine)
    assert m.match([pdq()]) == [((), "")]
    sighting = make_announcement(pdq(5), member="be-childfocus")
    announce(writer, sighting)
    assert [n.distance for n in m.match([pdq()])[0][0]] == [5]
    # the hash itself is exact known content, not near-known content
    assert m.match([pdq(5)])[0][0] == ()
    assert [n.distance for n in m.match([pdq(5)], include_exact=True)[0][0]] == [0]
    announce(writer, replace(sighting, retracted=True))
    assert m.match([pdq()])[0][0] == ()
    assert len(m) == 0


def test_a_hash_stays_while_another_member_still_sights_it(engine: Engine, writer: Writer) -> None:
    a = make_announcement(pdq(3), member="be-childfocus")
    b = make_announcement(pdq(3), member="de-eco")
    announce(writer, a, b)
    m = matcher(engine)
    announce(writer, replace(a, retracted=True))
    ((found, _),) = m.match([pdq()])
    assert [n.sighting.member for n in found] == ["de-eco"]


def test_persisted_across_restart_and_caught_up(
    engine: Engine, writer: Writer, tmp_path: Path
) -> None:
    path = tmp_path / "pdq-index.npz"
    announce(writer, make_announcement(pdq(4), member="be-childfocus"))
    first = matcher(engine, path)
    first.save()
    announce(writer, make_announcement(pdq(6, start=3), member="de-eco"))  # after the save
    second = PdqMatcher(engine, max_distance=31, min_quality=50, path=path)
    assert second.open().startswith(f"loaded {path}")
    assert sorted(n.distance for n in second.match([pdq()])[0][0]) == [4, 6]
    # a file made with another quality threshold is not used
    third = PdqMatcher(engine, max_distance=31, min_quality=95, path=path)
    assert third.open().startswith("rebuilt")
    assert third.match([pdq(quality=99)])[0][0] == ()
    # nor a damaged one
    path.write_bytes(b"damaged")
    assert matcher(engine, path).open().startswith("rebuilt")


def test_quality_is_validated_and_travels_on_the_wire() -> None:
    assert parse_hash_text(f"pdq:{BASE}:77").quality == 77
    assert parse_hash_text(f"pdq:{BASE}") == pdq(quality=5)  # quality is no part of identity
    refusals: list[tuple[Callable[[], object], str]] = [
        (lambda: parse_hash("sha256", "a" * 64, quality=50), "hash-quality-not-pdq"),
        (lambda: parse_hash("pdq", BASE, quality=101), "hash-quality-range"),
        (lambda: parse_hash_text(f"pdq:{BASE}:x"), "hash-quality-range"),
    ]
    for bad, code in refusals:
        with pytest.raises(InvalidReport) as refused:
            bad()
        assert refused.value.code == code
    msg = hash_to_proto(pdq(quality=0))
    assert msg.HasField("quality")  # 0 is a quality, not "unknown"
    assert hash_from_proto(pb.ContentHash.FromString(msg.SerializeToString()), "h").quality == 0
    old = pb.ContentHash(algorithm=pb.HASH_ALGORITHM_PDQ, hex=BASE)  # an older sender's
    assert hash_from_proto(old, "h").quality is None


def test_a_batch_without_a_pdq_hash_reads_no_change(engine: Engine, writer: Writer) -> None:
    """Intake's hot path: no PDQ hash of enough quality, no change feed read (the cursor stays)."""
    m = matcher(engine)
    announce(writer, make_announcement(pdq(3), member="be-childfocus"))
    answers = m.match([None, pdq(quality=10)])
    assert [why for _, why in answers] == ["no pdq hash", "pdq quality 10 below 50: not matched"]
    assert m._cursor == 0
    ((found, _),) = m.match([pdq()])  # a searchable hash catches up first
    assert [n.distance for n in found] == [3]
    assert m._cursor > 0


def test_a_search_does_not_wait_for_a_refresh_under_way(engine: Engine, writer: Writer) -> None:
    """Another thread holds the refresh (as during a delta merge): a search goes on with the
    index as published; the next search once the refresh is done sees the change."""
    announce(writer, make_announcement(pdq(2), member="be-childfocus"))
    m = matcher(engine)
    announce(writer, make_announcement(pdq(4), member="be-childfocus"))
    done: list[list[int]] = []
    with m._lock:  # a refresh under way in another thread
        t = threading.Thread(
            target=lambda: done.append([n.distance for n in m.match([pdq()])[0][0]])
        )
        t.start()
        t.join(30)
        assert not t.is_alive(), "the search waited for the refresh"
    assert done == [[2]]
    assert [n.distance for n in m.match([pdq()])[0][0]] == [2, 4]


class _SwappedMidSearch:
    """The matcher's index whose search, once done, sees a rebuild publish another index (as
    the trim loop's does while requests search): the ids found belong to this one."""

    def __init__(self, m: PdqMatcher, real: PdqIndex, other: PdqIndex) -> None:
        self._m, self._real, self._other = m, real, other

    def search(self, codes: Codes, radius: int) -> Matches:
        found = self._real.search(codes, radius)
        self._m._index = self._other
        return found

    def code_of(self, ids: Ids) -> Codes:
        return self._real.code_of(ids)


def test_an_index_swapped_during_a_match_does_not_mix_its_ids(
    engine: Engine, writer: Writer
) -> None:
    announce(writer, make_announcement(pdq(3), member="be-childfocus"))
    announce(writer, make_announcement(pdq(5, start=40), member="de-eco"))
    m = matcher(engine)
    # Another index (as rebuilt meanwhile), whose ids 0 and 1 are other hashes.
    far = [pdq(90, start=3).hex, pdq(100, start=7).hex]
    other = PdqIndex.from_codes(to_codes(far))
    m._index = _SwappedMidSearch(m, m._index, other)  # type: ignore[assignment]
    ((found, why),) = m.match([pdq()])
    assert why == ""
    assert [(n.hex, n.distance) for n in found] == [(pdq(3).hex, 3), (pdq(5, start=40).hex, 5)]
