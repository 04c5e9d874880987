"""Routing-log times never go backwards along the chain, also across a writer restart.

Jobs stamp their entries with a time taken before the writer runs them (the receiver times a
batch when it verifies it), so entries can reach the chain out of time order. The chain clamps
such an entry to the time of the one before it; otherwise one node's log is not time-ordered and
``ihx log --network`` cannot merge the members' logs into one time-ordered view.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from exchange.routing_log import GENESIS, LogChain, verify_chain
from exchange.store import schema
from exchange.store.writer import Tx, Writer
from tests.exchange.factories import T0

pytestmark = pytest.mark.timeout(30)


def test_an_entry_stamped_before_the_last_one_takes_its_time() -> None:
    chain = LogChain(0, GENESIS)
    first = chain.append(T0, "intake")
    late = chain.append(T0 - timedelta(milliseconds=3), "new-case")
    later = chain.append(T0 + timedelta(seconds=1), "sent")
    assert [e.at for e in (first, late, later)] == [T0, T0, T0 + timedelta(seconds=1)]
    # The clamped time is the one hashed: the chain verifies.
    assert verify_chain([first, late, later]) is None


def test_a_resumed_chain_continues_from_the_stored_last_time(engine: Engine) -> None:
    def log_at(offset: timedelta) -> Callable[[Tx], None]:
        def job(tx: Tx) -> None:
            tx.log(tx.chain.append(T0 + offset, "test"))

        return job

    first = Writer(engine)
    first.start()
    try:
        first.execute(log_at(timedelta(seconds=10)))
    finally:
        first.stop()
    second = Writer(engine)
    second.start()
    try:
        second.execute(log_at(timedelta(seconds=5)))
    finally:
        second.stop()
    log = schema.routing_log
    with engine.connect() as conn:
        times = list(conn.execute(select(log.c.at).order_by(log.c.idx)).scalars())
    assert times == [T0 + timedelta(seconds=10)] * 2
