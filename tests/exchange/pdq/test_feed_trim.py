"""``pdq_changes`` trimmed while the node runs: below every follower's cursor, never past a
follower heard from within its lease; one that was not rebuilds and answers right all the same.

Real database (SQLite, or PostgreSQL with ``IHX_TEST_DATABASE_URL``), the real single writer,
two matchers in the roles of a node and its web view; the clock is a fake, so a lease expires
when the test says so.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from exchange import cases
from exchange.domain import ContentHash, HashAlgorithm, KnownContent
from exchange.pdq.matcher import PdqMatcher, follower_name
from exchange.store import hash_index, schema
from exchange.store.writer import Writer
from tests.exchange.factories import FakeClock, make_announcement

BASE = "5a" * 32
LEASE = timedelta(minutes=15)


def pdq(flips: int) -> ContentHash:
    value = int(BASE, 16)
    for i in range(flips):
        value ^= 1 << (7 * i % 256)
    return ContentHash(HashAlgorithm.PDQ, f"{value:064x}", 90)


def announce(writer: Writer, *sightings: KnownContent) -> None:
    writer.execute(lambda tx: cases.record_announcements(tx, list(sightings)))


def follower(engine: Engine, name: str, clock: FakeClock, path: Path | None = None) -> PdqMatcher:
    m = PdqMatcher(
        engine,
        max_distance=31,
        min_quality=50,
        path=path,
        follower=name,
        clock=clock,
        lease=LEASE,
    )
    m.open()
    return m


def feed(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [seq for seq, _ in hash_index.pdq_changes_after(conn, 0, 100_000)]


def followers(engine: Engine) -> dict[str, int]:
    t = schema.pdq_followers
    with engine.connect() as conn:
        return {r.name: r.cursor for r in conn.execute(select(t.c.name, t.c.cursor))}


def distances(m: PdqMatcher) -> list[int]:
    return [n.distance for n in m.match([pdq(0)])[0][0]]


def test_the_feed_is_trimmed_once_every_follower_has_applied_a_prefix(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock()
    node, web = follower(engine, "node@a", clock), follower(engine, "web@a", clock)
    assert node.trim(writer) == 0
    assert web.trim(writer) == 0
    assert followers(engine) == {"node@a": 0, "web@a": 0}

    announce(writer, make_announcement(pdq(3), member="be-childfocus"))
    announce(writer, make_announcement(pdq(5), member="de-eco"))
    announce(writer, make_announcement(pdq(8), member="se-ecpat"))
    *_, last = feed(engine)
    assert node.trim(writer) == 0  # the web view is still at 0: nothing goes
    assert len(feed(engine)) == 3
    assert web.trim(writer) == 2  # both at the last change: all before it go
    assert feed(engine) == [last]
    assert followers(engine) == {"node@a": last, "web@a": last}
    assert distances(node) == distances(web) == [3, 5, 8]

    # Bounded: however many changes come, each round leaves the last one only.
    for n in range(10, 16):
        announce(writer, make_announcement(pdq(n), member="be-childfocus"))
        announce(writer, make_announcement(pdq(n), member="de-eco"))
        clock.advance(60)
        node.trim(writer)
        web.trim(writer)
        assert len(feed(engine)) == 1
    assert distances(web) == [3, 5, 8, 10, 11, 12, 13, 14, 15]


def test_a_follower_silent_past_its_lease_holds_nothing_back_and_rebuilds(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock()
    node, away = follower(engine, "node@a", clock), follower(engine, "web@a", clock)
    a = make_announcement(pdq(4), member="be-childfocus")
    announce(writer, a)
    away.trim(writer)
    node.trim(writer)
    assert distances(away) == [4]
    # ``away`` says nothing for longer than its lease; meanwhile a withdrawal and an addition.
    announce(writer, replace(a, retracted=True))
    announce(writer, make_announcement(pdq(6), member="de-eco"))
    clock.advance(LEASE.total_seconds() + 1)
    assert node.trim(writer) >= 2
    assert followers(engine) == {"node@a": feed(engine)[-1]}
    # The changes it missed are gone. A request notices but never rebuilds (seconds to a
    # minute at 10 M hashes, under the refresh lock): it answers from the index it has (the
    # retracted sighting is not read, the new hash is not there yet)...
    held = away._index
    assert distances(away) == []
    assert away._index is held
    # ...and the trim loop rebuilds from the sightings, in the background.
    away.trim(writer)
    assert away._index is not held
    assert distances(away) == [6]
    assert distances(node) == [6]


def test_a_follower_is_noted_when_it_opens_so_no_trim_passes_it(
    engine: Engine, writer: Writer
) -> None:
    """A web view or replica just started: the node's next trim keeps the changes it has
    still to apply, though it has not trimmed (noted its cursor) yet itself."""
    clock = FakeClock()
    node = follower(engine, "node@a", clock)
    announce(writer, make_announcement(pdq(3), member="be-childfocus"))
    web = follower(engine, "web@a", clock)
    assert followers(engine)["web@a"] == feed(engine)[-1]
    announce(writer, make_announcement(pdq(5), member="de-eco"))
    announce(writer, make_announcement(pdq(7), member="se-ecpat"))
    node.trim(writer)
    assert len(feed(engine)) == 3  # from the web view's cursor on, all stay
    held = web._index
    assert distances(web) == [3, 5, 7]
    assert web._index is held  # caught up, not rebuilt


def test_a_saved_file_loads_unless_the_feed_was_trimmed_past_it(
    engine: Engine, writer: Writer, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "pdq-index.npz"
    node = follower(engine, "node@a", clock, path)
    announce(writer, make_announcement(pdq(2), member="be-childfocus"))
    announce(writer, make_announcement(pdq(5), member="de-eco"))
    node.save()  # the node stops: its file, its cursor noted, the feed trimmed below it
    assert len(feed(engine)) == 1
    announce(writer, make_announcement(pdq(7), member="se-ecpat"))  # while it is down
    again = follower(engine, "node@a", clock, path)
    assert again.open().startswith(f"loaded {path}")
    assert distances(again) == [2, 5, 7]
    again.save()

    # Down past its lease while the web view goes on trimming: the file is refused.
    web = follower(engine, "web@a", clock)
    announce(writer, make_announcement(pdq(9), member="se-ecpat"))
    announce(writer, make_announcement(pdq(11), member="de-eco"))
    clock.advance(LEASE.total_seconds() + 1)
    assert web.trim(writer) >= 1
    third = PdqMatcher(engine, max_distance=31, min_quality=50, path=path)
    assert third.open().startswith("rebuilt")
    assert distances(third) == [2, 5, 7, 9, 11]


def test_a_long_feed_is_trimmed_a_chunk_a_writer_job(engine: Engine, writer: Writer) -> None:
    """After an upgrade the feed may hold millions of changes: one writer job deletes at most a
    chunk of them, and the trim goes on job after job until all that may go have gone."""
    clock = FakeClock()
    for n in range(1, 10):
        announce(writer, make_announcement(pdq(n), member="be-childfocus"))
    *_, last = feed(engine)
    node = PdqMatcher(
        engine,
        max_distance=31,
        min_quality=50,
        path=None,
        follower="node@a",
        clock=clock,
        lease=LEASE,
        trim_chunk=3,
    )
    node.open()  # noted at the last change: all but it may go
    with engine.begin() as conn:
        assert hash_index.trim_pdq_changes(conn, alive_since=clock() - LEASE, limit=2) == 2
    assert len(feed(engine)) == 7
    assert node.trim(writer) == 6  # three jobs: 3, 3, then none left
    assert feed(engine) == [last]
    assert distances(node) == list(range(1, 10))


def test_two_followers_on_one_host_have_rows_of_their_own(engine: Engine, writer: Writer) -> None:
    """Two web views on one host (or one restarted within its lease): each its own row, so the
    slower one still holds the trim back — one shared name would let the faster one's cursor
    stand for both."""
    first = follower_name("web", "host-a", random.Random(1))
    second = follower_name("web", "host-a", random.Random(2))
    assert first != second
    assert first.startswith("web@host-a:")
    assert follower_name("web", "h" * 200, random.Random(1)).__len__() <= 128
    clock = FakeClock()
    slow = follower(engine, first, clock)
    announce(writer, make_announcement(pdq(3), member="be-childfocus"))
    announce(writer, make_announcement(pdq(5), member="de-eco"))
    fast = follower(engine, second, clock)
    fast.trim(writer)
    assert followers(engine) == {first: 0, second: feed(engine)[-1]}
    assert len(feed(engine)) == 2  # the slow one's changes stay
    assert distances(slow) == [3, 5]


def test_the_node_saves_its_file_while_running_and_trims_no_change_past_it(
    engine: Engine, writer: Writer, tmp_path: Path
) -> None:
    """The node saves its file every save interval from the trim loop and keeps the feed from
    the file's cursor on: after kill -9 (no save at stop), and for ``ihx match`` or a web
    view starting, the file loads and the changes since apply — no rebuild."""
    clock = FakeClock()
    path = tmp_path / "pdq-index.npz"
    node = PdqMatcher(
        engine,
        max_distance=31,
        min_quality=50,
        path=path,
        follower="node@a",
        clock=clock,
        lease=LEASE,
        save_every=timedelta(minutes=10),
    )
    node.open()
    announce(writer, make_announcement(pdq(3), member="be-childfocus"))
    node.trim(writer)  # the first trim saves (the index was rebuilt: no file yet)
    saved = feed(engine)[-1]
    assert path.exists()
    for n in (5, 7):
        announce(writer, make_announcement(pdq(n), member="de-eco"))
        clock.advance(60)
        node.trim(writer)  # not due: the feed is kept from the file's cursor on
    assert followers(engine) == {"node@a": saved}
    assert feed(engine)[0] == saved

    # kill -9 now: a one-off reader (or the restarted node) loads the file, applies the rest.
    reader = PdqMatcher(engine, max_distance=31, min_quality=50, path=path)
    assert reader.open().startswith(f"loaded {path}")
    assert distances(reader) == [3, 5, 7]

    clock.advance(10 * 60)
    node.trim(writer)  # due: saved again, and the feed trimmed to the new file's cursor
    assert len(feed(engine)) == 1
    assert (
        PdqMatcher(engine, max_distance=31, min_quality=50, path=path).open().startswith("loaded")
    )
