"""The single writer: group commit, per-job rollback, coalescing, and failed commits.

Everything runs against a real migrated database (SQLite, or PostgreSQL on request); the
database is read back through a separate connection, so "visible" means committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, select

from exchange.errors import ExchangeError, StorageUnavailable
from exchange.routing_log import GENESIS, LogEntry, verify_chain
from exchange.store import schema
from exchange.store.writer import Coalescer, Tx, Writer
from tests.dbs import allow_inserts, create_deferred_probe, refuse_inserts
from tests.exchange.factories import T0, writer_held

META = schema.node_meta


def put(
    key: str, *, fail: Exception | None = None, hook: list[str] | None = None
) -> Callable[[Tx], str]:
    """A job that stores ``key`` and logs it; optionally registers a hook or then fails."""

    def job(tx: Tx) -> str:
        tx.conn.execute(META.insert(), {"key": key, "value": "v"})
        tx.log(tx.chain.append(T0, "test", detail={"key": key}))
        if hook is not None:
            tx.after_commit.append(lambda: hook.append(key))
        if fail is not None:
            raise fail
        return key

    return job


def stored_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(META.c.key)).scalars())


def log_entries(engine: Engine) -> list[LogEntry]:
    log = schema.routing_log
    with engine.connect() as conn:
        rows = conn.execute(select(log).order_by(log.c.idx)).all()
    return [
        LogEntry(
            r.idx,
            r.at,
            r.kind,
            r.report_id,
            r.member,
            r.country,
            r.detail,
            r.previous_hash,
            r.entry_hash,
        )
        for r in rows
    ]


def assert_chain_intact(engine: Engine, writer: Writer) -> list[LogEntry]:
    entries = log_entries(engine)
    assert verify_chain(entries) is None
    head = (entries[-1].idx + 1, entries[-1].entry_hash) if entries else (0, GENESIS)
    assert writer.chain.mark() == head
    return entries


# -- commits ------------------------------------------------------------------------------------


def test_a_job_commits_and_returns_its_result(engine: Engine, writer: Writer) -> None:
    assert writer.execute(put("a")) == "a"
    assert stored_keys(engine) == {"a"}
    entries = assert_chain_intact(engine, writer)
    assert [e.detail for e in entries] == ['{"key":"a"}']


def test_results_are_given_only_after_commit(engine: Engine, writer: Writer) -> None:
    # The callback runs the moment the future resolves: the row must already be committed.
    seen_by_other_connection: list[set[str]] = []
    called = threading.Event()

    def look(_f: object) -> None:
        seen_by_other_connection.append(stored_keys(engine))
        called.set()

    writer.submit(put("a")).add_done_callback(look)
    assert called.wait(10)
    assert seen_by_other_connection == [{"a"}]


def test_a_failing_job_rolls_back_alone(engine: Engine, writer: Writer) -> None:
    hooks: list[str] = []
    before = writer.commits
    with writer_held(writer):
        ok1 = writer.submit(put("a", hook=hooks))
        bad = writer.submit(put("b", fail=ValueError("job b broke"), hook=hooks))
        ok2 = writer.submit(put("c", hook=hooks))
    assert ok1.result(10) == "a"
    assert ok2.result(10) == "c"
    with pytest.raises(ValueError, match="job b broke"):
        bad.result(10)
    assert writer.commits == before + 2  # the holding job's group, then a, b, c in one
    assert stored_keys(engine) == {"a", "c"}
    assert hooks == ["a", "c"]
    entries = assert_chain_intact(engine, writer)
    assert [e.detail for e in entries] == ['{"key":"a"}', '{"key":"c"}']
    assert [e.idx for e in entries] == [0, 1]
    # The head was restored: the next entry continues the stored chain.
    writer.execute(put("d"))
    entries = assert_chain_intact(engine, writer)
    assert [e.idx for e in entries] == [0, 1, 2]
    assert entries[2].previous_hash == entries[1].entry_hash


def test_a_constraint_violation_in_a_job_is_a_conflict_for_it_only(
    engine: Engine, writer: Writer
) -> None:
    writer.execute(put("taken"))
    with writer_held(writer):
        dup = writer.submit(put("taken"))  # primary key conflict
        ok = writer.submit(put("fresh"))
    # Not StorageUnavailable: retrying a conflict cannot succeed, so it must not look transient.
    with pytest.raises(ExchangeError) as conflict:
        dup.result(10)
    assert conflict.value.code == "storage-conflict"
    assert not isinstance(conflict.value, StorageUnavailable)
    assert ok.result(10) == "fresh"
    assert stored_keys(engine) == {"taken", "fresh"}
    assert len(assert_chain_intact(engine, writer)) == 2


def test_group_commit_groups_queued_jobs(engine: Engine, writer: Writer) -> None:
    before = writer.commits
    with writer_held(writer):
        futures = [writer.submit(put(f"k{i}")) for i in range(100)]
    assert [f.result(10) for f in futures] == [f"k{i}" for i in range(100)]
    assert writer.commits == before + 2
    assert len(stored_keys(engine)) == 100
    assert len(assert_chain_intact(engine, writer)) == 100


# -- end steps ----------------------------------------------------------------------------------


def at_end(key: str, ends: list[str], *, fail: Exception | None = None) -> Callable[[Tx], str]:
    """A job that stores ``key`` and asks for one end step "end" (optionally failing), which
    records the keys the group stored by then and stores a row of its own."""

    def job(tx: Tx) -> str:
        tx.conn.execute(META.insert(), {"key": key, "value": "v"})

        def step() -> None:
            seen = sorted(tx.conn.execute(select(META.c.key)).scalars())
            ends.append(",".join(seen))
            tx.conn.execute(META.insert(), {"key": f"end-{len(ends)}", "value": "v"})
            tx.log(tx.chain.append(T0, "test", detail={"end": len(ends)}))
            if fail is not None:
                raise fail

        tx.once_at_end("end", step)
        return key

    return job


def test_an_end_step_runs_once_after_every_job_of_the_group(engine: Engine, writer: Writer) -> None:
    ends: list[str] = []
    with writer_held(writer):
        futures = [writer.submit(at_end(k, ends)) for k in ("a", "b", "c")]
    assert [f.result(10) for f in futures] == ["a", "b", "c"]
    assert ends == ["a,b,c"]  # once, seeing what all three jobs wrote
    assert stored_keys(engine) == {"a", "b", "c", "end-1"}  # and committed with them
    assert [e.detail for e in assert_chain_intact(engine, writer)] == ['{"end":1}']
    writer.execute(at_end("d", ends))  # a new group, a new end step
    assert ends == ["a,b,c", "a,b,c,d,end-1"]


def test_a_failing_end_step_is_undone_alone(engine: Engine, writer: Writer) -> None:
    ends: list[str] = []
    assert writer.execute(at_end("a", ends, fail=ValueError("end broke"))) == "a"
    assert ends == ["a"]
    assert stored_keys(engine) == {"a"}  # the job's row commits, the step's does not
    assert assert_chain_intact(engine, writer) == []
    writer.execute(put("b"))
    assert len(assert_chain_intact(engine, writer)) == 1


def test_the_end_step_of_a_job_that_failed_does_not_run(engine: Engine, writer: Writer) -> None:
    ends: list[str] = []

    def failing(tx: Tx) -> None:
        at_end("a", ends)(tx)
        raise ValueError("job broke")

    with pytest.raises(ValueError, match="job broke"):
        writer.execute(failing)
    assert ends == []
    assert stored_keys(engine) == set()


def test_concurrent_submitters_share_commits(engine: Engine, writer: Writer) -> None:
    threads, per_thread = 8, 25
    before = writer.commits
    start = threading.Barrier(threads)

    def submitter(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            writer.execute(put(f"t{t}-{i}"))

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(submitter, t) for t in range(threads)]:
            f.result(30)
    submissions = threads * per_thread
    commits = writer.commits - before
    assert len(stored_keys(engine)) == submissions
    assert commits <= submissions // 2  # far fewer commits than submissions
    assert len(assert_chain_intact(engine, writer)) == submissions


def test_writer_resumes_the_stored_chain_after_a_restart(engine: Engine) -> None:
    first = Writer(engine)
    first.start()
    first.execute(put("a"))
    first.execute(put("b"))
    first.stop()
    second = Writer(engine)
    second.start()
    try:
        assert second.chain.next_index == 2
        second.execute(put("c"))
        assert [e.idx for e in assert_chain_intact(engine, second)] == [0, 1, 2]
    finally:
        second.stop()


def test_a_second_writer_beside_a_running_one_continues_one_chain(
    engine: Engine, writer: Writer
) -> None:
    """Another process appending (``ihx cases purge`` beside a running node): each group
    continues from the head as stored, so neither writer forks the chain or reuses an index."""
    writer.execute(put("a"))
    other = Writer(engine)
    other.start()
    try:
        other.execute(put("b"))
        writer.execute(put("c"))
        other.execute(put("d"))
    finally:
        other.stop()
    writer.execute(put("e"))
    assert [e.idx for e in assert_chain_intact(engine, writer)] == [0, 1, 2, 3, 4]
    assert stored_keys(engine) == {"a", "b", "c", "d", "e"}


# -- coalescing ---------------------------------------------------------------------------------


def test_a_coalescer_passes_queued_items_in_one_handler_call(
    engine: Engine, writer: Writer
) -> None:
    calls: list[list[int]] = []

    def handler(tx: Tx, items: Sequence[int]) -> list[str]:
        calls.append(list(items))
        tx.conn.execute(META.insert(), [{"key": f"n{i}", "value": "v"} for i in items])
        return [f"done {i}" for i in items]

    coalescer: Coalescer[int, str] = Coalescer(handler)
    with writer_held(writer):
        futures = [writer.submit_item(coalescer, i) for i in range(50)]
    assert [f.result(10) for f in futures] == [f"done {i}" for i in range(50)]
    assert calls == [list(range(50))]
    assert stored_keys(engine) == {f"n{i}" for i in range(50)}
    # Items submitted after the batch ran form a new call.
    assert writer.submit_item(coalescer, 99).result(10) == "done 99"
    assert calls[-1] == [99]


def test_a_coalescer_handler_may_refuse_one_item(engine: Engine, writer: Writer) -> None:
    def handler(tx: Tx, items: Sequence[int]) -> list[str | ExchangeError]:
        tx.conn.execute(META.insert(), [{"key": f"n{i}", "value": "v"} for i in items if i % 2])
        return [f"done {i}" if i % 2 else ExchangeError(f"no {i}", code="odd-only") for i in items]

    coalescer: Coalescer[int, str] = Coalescer(handler)
    with writer_held(writer):
        futures = [writer.submit_item(coalescer, i) for i in range(4)]
    for i in (0, 2):
        with pytest.raises(ExchangeError, match=f"^no {i}$"):
            futures[i].result(10)
    assert [futures[i].result(10) for i in (1, 3)] == ["done 1", "done 3"]
    assert stored_keys(engine) == {"n1", "n3"}


def test_a_failing_coalesced_batch_fails_all_its_items_only(engine: Engine, writer: Writer) -> None:
    def handler(tx: Tx, items: Sequence[int]) -> list[int]:
        tx.conn.execute(META.insert(), [{"key": f"n{i}", "value": "v"} for i in items])
        raise RuntimeError("handler broke")

    coalescer: Coalescer[int, int] = Coalescer(handler)
    with writer_held(writer):
        futures = [writer.submit_item(coalescer, i) for i in range(5)]
        other = writer.submit(put("other"))
    for f in futures:
        with pytest.raises(RuntimeError, match="handler broke"):
            f.result(10)
    assert other.result(10) == "other"
    assert stored_keys(engine) == {"other"}


# -- failed commits -----------------------------------------------------------------------------


@pytest.fixture
def deferred_fk(engine: Engine) -> None:
    """A test-only table whose foreign key is checked at COMMIT, not at INSERT."""
    with engine.begin() as conn:
        create_deferred_probe(conn)


def dangling(tx: Tx) -> str:
    """A job whose statements succeed but whose transaction cannot commit."""
    tx.conn.exec_driver_sql("INSERT INTO probe (parent) VALUES (42)")
    tx.log(tx.chain.append(T0, "test", detail={"key": "dangling"}))
    return "dangling"


@pytest.mark.usefixtures("deferred_fk")
def test_failed_commit_fails_every_job_of_the_group(engine: Engine, writer: Writer) -> None:
    hooks: list[str] = []
    with writer_held(writer):
        futures = [
            writer.submit(put("a", hook=hooks)),
            writer.submit(dangling),
            writer.submit(put("b", hook=hooks)),
        ]
    for f in futures:
        with pytest.raises(StorageUnavailable):
            f.result(10)
    assert stored_keys(engine) == set()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar_one() == 0
    assert hooks == []
    assert assert_chain_intact(engine, writer) == []


@pytest.mark.usefixtures("deferred_fk")
def test_writer_keeps_serving_after_a_failed_commit(engine: Engine, writer: Writer) -> None:
    with pytest.raises(StorageUnavailable):
        writer.execute(dangling)
    assert writer.execute(put("after")) == "after"
    assert stored_keys(engine) == {"after"}
    entries = assert_chain_intact(engine, writer)
    assert [e.idx for e in entries] == [0]


def test_failed_log_write_fails_the_group_and_the_writer_recovers(
    engine: Engine, writer: Writer
) -> None:
    with engine.begin() as conn:
        refuse_inserts(conn, "routing_log", "disk says no")
    with writer_held(writer):
        futures = [writer.submit(put(k)) for k in ("a", "b")]
    for f in futures:
        with pytest.raises(StorageUnavailable, match="disk says no"):
            f.result(10)
    assert stored_keys(engine) == set()
    assert writer.chain.mark() == (0, GENESIS)
    with engine.begin() as conn:
        allow_inserts(conn, "routing_log")
    assert writer.execute(put("c")) == "c"
    assert stored_keys(engine) == {"c"}
    assert [e.idx for e in assert_chain_intact(engine, writer)] == [0]


def _fill_the_disk(tx: Tx) -> str:
    """Cap the database at its current size, then write: SQLite's own 'disk is full'."""
    pages = tx.conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    tx.conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    for i in range(200):
        tx.conn.execute(META.insert(), {"key": f"big-{i}", "value": "x" * 10_000})
    return "unreachable"


def _unlimit(tx: Tx) -> None:
    tx.conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")


def test_a_full_disk_fails_the_whole_group_with_its_own_reason(
    engine: Engine, writer: Writer
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("max_page_count is SQLite's; PostgreSQL keeps a failed savepoint's work apart")
    # SQLite answers a full disk by rolling back the whole transaction itself, savepoints and
    # all: the jobs before the failing one are gone too, and must not be acknowledged.
    with writer_held(writer):
        futures = [writer.submit(put("a")), writer.submit(_fill_the_disk), writer.submit(put("b"))]
    for f in futures:
        with pytest.raises(StorageUnavailable, match="database or disk is full"):
            f.result(10)
    assert writer.failed_groups == 1
    assert stored_keys(engine) == set()
    assert writer.chain.mark() == (0, GENESIS)
    writer.execute(_unlimit)
    assert writer.execute(put("c")) == "c"
    assert stored_keys(engine) == {"c"}
    assert [e.idx for e in assert_chain_intact(engine, writer)] == [0]
