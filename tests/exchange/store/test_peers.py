"""The peers aggregate's SQL: the peer row (sequence, cursor, failures) and the stream leases.

The peer row runs on the suite's database (SQLite unless ``IHX_TEST_DATABASE_URL``); leases exist
only on PostgreSQL (their expiry is on the database server's clock), so those tests use it on
every run, as tests/exchange/store/test_replica_storage.py does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from exchange.store import peers, schema
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade
from exchange.store.writer import Writer
from tests.dbs import Databases, postgresql_admin_url
from tests.exchange.factories import T0

PEER = "de-eco"


def peer_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(schema.peers).where(schema.peers.c.member == PEER)).one()


def test_a_peer_row_is_created_once_and_sequences_are_taken_in_order(
    writer: Writer, engine: Engine
) -> None:
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    assert writer.execute(lambda tx: peers.take_sequence(tx.conn, PEER)) == 1
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))  # kept, not reset
    assert writer.execute(lambda tx: peers.take_sequence(tx.conn, PEER)) == 2
    row = peer_row(engine)
    assert (row.next_sequence, row.announce_cursor, row.failures) == (3, 0, 0)


def test_failures_accumulate_from_the_first_and_a_receipt_clears_them(
    writer: Writer, engine: Engine
) -> None:
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    writer.execute(lambda tx: peers.record_failure(tx.conn, PEER, "UNAVAILABLE: down", T0))
    later = T0.replace(minute=5)
    writer.execute(lambda tx: peers.record_failure(tx.conn, PEER, "x" * 1000, later))
    row = peer_row(engine)
    assert (row.failures, row.failing_since) == (2, T0)
    assert row.last_error == "x" * 300
    writer.execute(lambda tx: peers.record_heard(tx.conn, PEER, later))
    row = peer_row(engine)
    assert (row.failures, row.failing_since, row.last_error, row.last_heard_at) == (
        0,
        None,
        None,
        later,
    )


def test_the_announcement_cursor_moves_forward_only(writer: Writer, engine: Engine) -> None:
    writer.execute(lambda tx: peers.ensure(tx.conn, PEER))
    writer.execute(lambda tx: peers.record_heard(tx.conn, PEER, T0, announced_upto=7))
    writer.execute(lambda tx: peers.record_heard(tx.conn, PEER, T0, announced_upto=3))
    writer.execute(lambda tx: peers.record_heard(tx.conn, PEER, T0))
    with engine.connect() as conn:
        assert peers.announce_cursor(conn, PEER) == 7
        assert peers.announce_cursor(conn, "no-such-peer") == 0


@pytest.fixture
def pg_writer(tmp_path: Path) -> Iterator[Writer]:
    dbs = Databases(tmp_path, postgresql_admin_url())
    engine = open_engine(dbs.new())
    upgrade(engine)
    writer = Writer(engine)
    writer.start()
    yield writer
    writer.stop()
    engine.dispose()
    dbs.close()


@pytest.mark.timeout(60)
def test_a_lease_is_held_renewed_and_taken_only_once_expired(pg_writer: Writer) -> None:
    w = pg_writer
    granted = w.execute(lambda tx: peers.claim_leases(tx.conn, "a", [PEER, "us-ncmec"], 0.5))
    assert set(granted) == {PEER, "us-ncmec"}
    assert w.execute(lambda tx: peers.claim_leases(tx.conn, "b", [PEER], 0.5)) == {}
    renewed = w.execute(lambda tx: peers.claim_leases(tx.conn, "a", [PEER], 0.5))
    assert renewed == {PEER: granted[PEER]}  # renewing keeps the generation
    row = w.execute(lambda tx: peers.lock_lease(tx.conn, PEER))
    assert row is not None
    assert row.holder == "a"
    assert w.execute(lambda tx: peers.lock_lease(tx.conn, "no-such-peer")) is None
    time.sleep(0.6)
    taken = w.execute(lambda tx: peers.claim_leases(tx.conn, "b", [PEER], 0.5))
    assert set(taken) == {PEER}
    assert taken[PEER] > granted[PEER]  # a new holder: a new generation


@pytest.mark.timeout(60)
def test_a_released_lease_is_free_at_once(pg_writer: Writer) -> None:
    w = pg_writer
    w.execute(lambda tx: peers.claim_leases(tx.conn, "a", [PEER], 60))
    w.execute(lambda tx: peers.release_leases(tx.conn, "b", [PEER]))  # not b's to release
    assert w.execute(lambda tx: peers.claim_leases(tx.conn, "b", [PEER], 60)) == {}
    w.execute(lambda tx: peers.release_leases(tx.conn, "a", [PEER]))
    assert set(w.execute(lambda tx: peers.claim_leases(tx.conn, "b", [PEER], 60))) == {PEER}
    now = w.execute(lambda tx: peers.database_now(tx.conn))
    row = w.execute(lambda tx: peers.lock_lease(tx.conn, PEER))
    assert row is not None
    assert row.expires_at > now
