"""Several replicas of one node on one PostgreSQL database: the log chain, leases, claims.

Each "replica" here is its own engine and writer over the same database, as separate processes
would have. PostgreSQL is needed on every run (it is the only backend replicas can share): the
suite's server when ``IHX_TEST_DATABASE_URL`` is set, else CI's local default.

- the writers of three replicas appending at once keep ONE intact hash chain;
- one replica holds a peer's lease; the others get it only once it lapses or is released, with a
  new generation, and the old holder is told it lost it;
- a sealing transaction of a replica without the lease is refused, and sealing claims outbox
  rows with SKIP LOCKED: rows locked elsewhere are left alone, rows already batched are never
  batched again.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, select, text

from exchange.delivery.leases import LeaseLost, Leases
from exchange.delivery.sender import PeerSender
from exchange.routing_log import LogEntry, verify_chain
from exchange.settings import ExchangeTuning
from exchange.store import routing_log, schema
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade
from exchange.store.writer import Tx, Writer
from tests.dbs import Databases, postgresql_admin_url
from tests.exchange.factories import T0, FakeClock, make_network

pytestmark = pytest.mark.timeout(60)

PEER = "de-eco"
SELF = "nl-eokm"


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    dbs = Databases(tmp_path, postgresql_admin_url())
    url = dbs.new()
    engine = open_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    dbs.close()


class Replica:
    """What one process of the node has of its own: an engine, a writer, leases."""

    def __init__(self, url: str, ttl: float = 1.0) -> None:
        self.engine = open_engine(url)
        self.writer = Writer(self.engine)
        self.writer.start()
        self.leases = Leases(self.writer, ttl=ttl)
        self.events: list[bool] = []

    def close(self) -> None:
        self.writer.stop()
        self.engine.dispose()


@pytest.fixture
def replicas(pg_url: str) -> Iterator[Callable[[], Replica]]:
    made: list[Replica] = []

    def make() -> Replica:
        replica = Replica(pg_url)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.close()


def log_entries(engine: Engine) -> list[LogEntry]:
    with engine.connect() as conn:
        return list(routing_log.load_entries(conn))


def test_three_replicas_writing_at_once_keep_one_chain(
    replicas: Callable[[], Replica],
) -> None:
    group = [replicas() for _ in range(3)]
    assert all(r.writer.shared_log for r in group)

    def entry(tx: Tx) -> None:
        tx.log(tx.chain.append(T0, "test"))

    def append(replica: Replica, n: int) -> None:
        for _ in range(n):
            replica.writer.execute(entry)

    with ThreadPoolExecutor(6) as pool:
        # Two threads per replica: the replicas' group commits interleave arbitrarily.
        for f in [pool.submit(append, r, 40) for r in group for _ in range(2)]:
            f.result(60)
    entries = log_entries(group[0].engine)
    assert len(entries) == 240
    assert [e.idx for e in entries] == list(range(240))
    assert verify_chain(entries) is None


def test_a_replica_continues_the_chain_another_one_extended(
    replicas: Callable[[], Replica],
) -> None:
    a, b = replicas(), replicas()
    a.writer.execute(lambda tx: tx.log(tx.chain.append(T0, "test")))
    b.writer.execute(lambda tx: tx.log(tx.chain.append(T0, "test")))  # b started before a wrote
    a.writer.execute(lambda tx: tx.log(tx.chain.append(T0, "test")))
    entries = log_entries(a.engine)
    assert [e.idx for e in entries] == [0, 1, 2]
    assert verify_chain(entries) is None
    assert a.writer.chain.mark() == (3, entries[-1].entry_hash)


def holder(engine: Engine) -> str | None:
    with engine.connect() as conn:
        found: str | None = conn.execute(
            text("SELECT holder FROM peer_leases WHERE destination = :d"), {"d": PEER}
        ).scalar()
        return found


def test_one_replica_holds_a_peer_until_its_lease_lapses(
    replicas: Callable[[], Replica],
) -> None:
    a, b = replicas(), replicas()
    a.leases.want(PEER, a.events.append)
    b.leases.want(PEER, b.events.append)
    a.leases.refresh()
    b.leases.refresh()
    first = a.leases.generation(PEER)
    assert first is not None
    assert b.leases.generation(PEER) is None
    assert holder(a.engine) == a.leases.holder
    assert (a.events, b.events) == ([True], [])

    # a renews in time: b still gets nothing, a keeps the same generation.
    time.sleep(0.4)
    a.leases.refresh()
    b.leases.refresh()
    assert a.leases.generation(PEER) == first
    assert b.leases.generation(PEER) is None

    # a stops renewing (a dead replica): once its lease lapses, b takes the peer over.
    time.sleep(1.1)
    assert a.leases.generation(PEER) is None  # a's own view lapsed too
    b.leases.refresh()
    second = b.leases.generation(PEER)
    assert second is not None
    assert second > first
    a.leases.refresh()
    assert a.leases.generation(PEER) is None
    assert (a.events, b.events) == ([True, False], [True])
    assert holder(a.engine) == b.leases.holder


def test_a_released_lease_is_taken_over_at_once(replicas: Callable[[], Replica]) -> None:
    a, b = replicas(), replicas()
    a.leases.want(PEER, a.events.append)
    b.leases.want(PEER, b.events.append)
    a.leases.refresh()
    b.leases.refresh()
    assert b.leases.generation(PEER) is None
    a.leases.stop(release=True)  # a clean shutdown
    b.leases.refresh()
    assert b.leases.generation(PEER) is not None


def sender(replica: Replica, clock: FakeClock) -> PeerSender:
    network = make_network()

    def no_channel(endpoint: str, fresh: bool) -> grpc.Channel:
        raise AssertionError("these tests never connect")

    return PeerSender(
        self_member=SELF,
        peer=PEER,
        key=network.key_of(SELF),
        manifest=lambda: network.manifest,
        engine=replica.engine,
        writer=replica.writer,
        clock=clock,
        rng=random.Random(1),
        channel_for=no_channel,
        tuning=ExchangeTuning(max_batch=10, linger_ms=0),
        leases=replica.leases,
    )


def queue_reports(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            schema.peers.insert(), {"member": PEER, "next_sequence": 1, "announce_cursor": 0}
        )
        conn.execute(
            schema.outbox.insert(),
            [
                {
                    "destination": PEER,
                    "report_id": f"r-{i:032x}",
                    "payload": b"report %d" % i,
                    "created_at": T0,
                }
                for i in range(n)
            ],
        )


def pending(s: PeerSender) -> list[Any]:
    return s.batches.pending_reports()


def batch_of(engine: Engine) -> dict[str, int | None]:
    o = schema.outbox
    with engine.connect() as conn:
        return {r.report_id: r.batch_sequence for r in conn.execute(select(o))}


def test_only_the_lease_holder_seals_and_rows_are_batched_once(
    replicas: Callable[[], Replica],
) -> None:
    a, b = replicas(), replicas()
    clock = FakeClock()
    sa, sb = sender(a, clock), sender(b, clock)
    queue_reports(a.engine, 6)
    a.leases.want(PEER, a.events.append)
    b.leases.want(PEER, b.events.append)
    a.leases.refresh()
    b.leases.refresh()

    rows = pending(sb)
    with pytest.raises(LeaseLost):
        b.writer.execute(lambda tx: sb.batches.seal_reports(tx, rows))
    assert set(batch_of(a.engine).values()) == {None}

    first = a.writer.execute(lambda tx: sa.batches.seal_reports(tx, pending(sa)[:4]))
    assert first is not None
    assert first.count == 4
    # Rows read before that seal (a stale view) are not sealed a second time.
    second = a.writer.execute(lambda tx: sa.batches.seal_reports(tx, rows))
    assert second is not None
    assert second.count == 2
    assert second.sequence == first.sequence + 1
    assert a.writer.execute(lambda tx: sa.batches.seal_reports(tx, rows)) is None
    assert Counter(batch_of(a.engine).values()) == {1: 4, 2: 2}


def test_sealing_skips_rows_another_transaction_holds(replicas: Callable[[], Replica]) -> None:
    a = replicas()
    s = sender(a, FakeClock())
    queue_reports(a.engine, 4)
    a.leases.want(PEER, a.events.append)
    a.leases.refresh()
    rows = pending(s)
    locked = threading.Event()
    release = threading.Event()

    def hold_first_two() -> None:
        with a.engine.connect() as conn, conn.begin():
            conn.execute(
                text("SELECT id FROM outbox ORDER BY id LIMIT 2 FOR UPDATE"),
            ).all()
            locked.set()
            release.wait(20)

    holder_thread = threading.Thread(target=hold_first_two)
    holder_thread.start()
    try:
        assert locked.wait(10)

        def seal(tx: Tx) -> Any:
            return s.batches.seal_reports(tx, rows)

        batch = a.writer.execute(seal)  # does not wait for the locked rows
    finally:
        release.set()
        holder_thread.join(10)
    assert batch is not None
    assert batch.report_ids == tuple(r.report_id for r in rows[2:])
    assert list(batch_of(a.engine).values()).count(None) == 2
