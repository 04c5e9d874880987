"""store/routing_log.py: append and head, the one row→entry mapping, paging, checkpoints."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from exchange.domain import LogKind
from exchange.routing_log import GENESIS, Checkpoint, LogChain, verify_chain
from exchange.store import routing_log
from exchange.store.routing_log import LogFilter
from tests.exchange.factories import T0


def fill(engine: Engine, n: int) -> list[object]:
    chain = LogChain(0, GENESIS)
    entries = [
        chain.append(
            T0 + timedelta(seconds=i),
            LogKind.INTAKE if i % 2 else LogKind.PULLED,
            report_id=f"r-{i}",
            member="nl-eokm",
            country="NL" if i < 3 else "DE",
            detail={"i": i},
        )
        for i in range(n)
    ]
    with engine.begin() as conn:
        routing_log.append(conn, [e.as_row() for e in entries])
        routing_log.append(conn, [])  # nothing to do
    return list(entries)


def test_an_empty_log_has_no_head(engine: Engine) -> None:
    with engine.connect() as conn:
        assert routing_log.head(conn) is None
        assert list(routing_log.load_entries(conn)) == []


def test_rows_read_back_as_the_entries_written(engine: Engine) -> None:
    written = fill(engine, 5)
    with engine.connect() as conn:
        read = list(routing_log.load_entries(conn, batch=2))  # several pages
        head = routing_log.head(conn)
    assert read == written
    assert verify_chain(read) is None
    assert head is not None
    assert (head.idx, head.entry_hash) == (4, read[-1].entry_hash)


def test_stored_kinds_are_the_enum_values(engine: Engine) -> None:
    fill(engine, 2)
    with engine.connect() as conn:
        kinds = [e.kind for e in routing_log.load_entries(conn)]
    assert kinds == ["pulled", "intake"]


def test_list_entries_filters_and_pages(engine: Engine) -> None:
    fill(engine, 6)
    with engine.connect() as conn:
        page, after = routing_log.list_entries(conn, LogFilter(page_size=4))
        assert [e.idx for e in page] == [0, 1, 2, 3]
        assert after == 3
        rest, end = routing_log.list_entries(conn, LogFilter(after_index=3, page_size=4))
        assert [e.idx for e in rest] == [4, 5]
        assert end is None
        de = routing_log.list_entries(conn, LogFilter(country="DE", kind="intake"))[0]
        assert [e.idx for e in de] == [3, 5]
        timed = routing_log.list_entries(
            conn, LogFilter(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
        )[0]
        assert [e.idx for e in timed] == [1, 2]


def test_checkpoints_are_stored_found_and_listed(engine: Engine) -> None:
    a = Checkpoint("nl-eokm", 2, b"h" * 32, T0, "k1", b"s1")
    b = Checkpoint("nl-eokm", 5, b"i" * 32, T0 + timedelta(minutes=1), "k1", b"s2")
    with engine.connect() as conn:
        assert routing_log.largest_checkpoint(conn) is None
        assert routing_log.find_checkpoint(conn, "nl-eokm", 0) is None
    with engine.begin() as conn:
        routing_log.add_checkpoint(conn, b)
        routing_log.add_checkpoint(conn, a)
    with engine.connect() as conn:
        assert routing_log.largest_checkpoint(conn) == 5
        assert routing_log.load_checkpoints(conn, "nl-eokm") == [a, b]
        assert routing_log.find_checkpoint(conn, "nl-eokm", 2) == a
        assert routing_log.find_checkpoint(conn, "nl-eokm", 0) == b  # 0: the latest
        assert routing_log.find_checkpoint(conn, "nl-eokm", 3) is None
