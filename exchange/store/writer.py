"""The single writer: group commit for every write the node makes.

One thread owns the write connection. Callers hand it jobs (functions of a ``Tx``) and wait on
futures. The thread takes every job queued at that moment, runs them in ONE transaction — one
fsync for many reports — each inside its own SAVEPOINT, so a job that fails rolls back alone and
its caller gets the error while the others commit. Futures are resolved only after COMMIT
returns: nothing is acknowledged that is not durable. If COMMIT fails (disk full, read-only
database) every job in the group fails with ``StorageUnavailable`` and nothing is acknowledged.

Jobs carry a ``Priority``. The group is gathered in priority order: the delivery path first
(sealing a batch, applying a receipt, storing a received envelope: the peer waits on each), then
intake and everything else, and background work (the statistics folder's pages, checkpoints,
retention) last — and a background job does not join a group that holds other work: it runs in
a group of its own when nothing else is queued, so a 2,000-row fold page does not hold up a seal
or a receipt's COMMIT. Under a load that never lets the queue empty it is passed over at most
``BACKGROUND_PATIENCE`` groups, then joins one: background work is late, never starved. Within
one priority, jobs keep their order — except the part of a coalescer's items past ``max_take``,
which is queued again behind what arrived meanwhile (its own items keep their order).

A job holds what it changes in memory until it ends (on SQLite, the original of each page it
changed, for its SAVEPOINT: see store/engine.py), so every job is bounded: a coalescer's takes at
most ``max_take`` items, and background work runs in pages.

A job may ask for an end step (``Tx.once_at_end``): run once per key after the group's last
job, before COMMIT, in its own SAVEPOINT — work worth doing once over what all the jobs wrote,
such as sealing into one batch the reports every intake job of the group queued for a peer. A
failing end step is undone and logged; the jobs' writes commit all the same.

``Coalescer`` turns many small submissions (single reports from concurrent streams) into one job
over a list, so the job can use ``executemany`` — the difference between ~6k and ~100k rows/s.
One job takes at most ``max_take`` items (500 by default) and the rest wait for the next group,
queued behind what arrived meanwhile: a bulk intake of 5,000 reports committed as one job held
the writer for half a second, and every seal and receipt — the other end of the pipe — with it.

Each group is reported to ``on_group`` (the node's metrics: ops/metrics.py) as a
``GroupTiming``: how long its oldest job waited in the queue (for a coalescer, its oldest item,
also when it is queued again with the items past ``max_take``), how long the group held the
writer (from BEGIN until its callers were answered, a failed group's too) and how much of that
was COMMIT. The writer is the node's first ceiling — a reader sees it saturate (held time per
second near 1) before any CPU does — and the queue wait is the part of every acknowledgement's
latency that the group commit adds.

The routing-log chain head lives here too: a rolled-back job or transaction resets it. Another
process may append between our groups — replicas of a node sharing PostgreSQL, or a command such
as ``ihx cases purge`` beside a running node — so each group transaction re-reads the head once
it holds the write lock (one indexed query per group, not per entry): on PostgreSQL after a
transaction-level advisory lock for the log, on SQLite after ``BEGIN IMMEDIATE``, which already
excludes every other writer. Appends from every process serialize and the chain stays one chain.

The writer's connection also keeps the reports' places it has seen (``reports.PlaceMemo``): the
writer tells it when a transaction committed and when a job or a transaction rolled back.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from exchange.errors import ExchangeError, StorageUnavailable
from exchange.routing_log import GENESIS, LogChain, LogEntry
from exchange.store import reports, routing_log
from exchange.store.engine import for_the_writer
from exchange.store.sql import driver_execute

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the routing log ("ihx_log!"); advisory locks are per database.
LOG_LOCK_KEY = 0x6968785F6C6F6721


class Priority(IntEnum):
    """Which queued jobs a group takes first (lower first); see the module docstring."""

    DELIVERY = 0  # sealing, receipts, a received envelope: a peer's stream waits on it
    NORMAL = 1  # intake and everything else
    BACKGROUND = 2  # statistics folder pages, checkpoints, retention: whenever the rest is done
    STOP = 3  # after every job queued before the writer was asked to stop


# Groups a background job may be passed over before it joins one anyway (see the docstring).
BACKGROUND_PATIENCE = 8

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


@dataclass
class Tx:
    """What a job sees: the connection inside the group's transaction, the log chain, hooks."""

    conn: Connection
    chain: LogChain
    places: reports.PlaceMemo = field(default_factory=reports.PlaceMemo)
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    at_end: dict[Hashable, Callable[[], None]] = field(default_factory=dict)
    _depth: int = 0  # attempts open now (each has its savepoint)

    def log(self, entry: LogEntry, *, batch: int | None = None) -> None:
        """Append ``entry``'s row to this transaction's; ``batch``: the sequence of the batch
        of reports the entry is about, by which a report's listing finds it (schema.LogRow)."""
        row = entry.as_row()
        row["batch_sequence"] = batch
        self.log_rows.append(row)

    def once_at_end(self, key: Hashable, step: Callable[[], None]) -> None:
        """Run ``step`` once per ``key`` in this group: after its last job, before COMMIT, in
        its own SAVEPOINT (if it raises, only its writes are undone and the group commits).

        For work that is worth doing once over what every job of the group wrote: sealing the
        reports the group queued for a peer into one batch (delivery/sender.py).
        """
        self.at_end.setdefault(key, step)

    def attempt(self, part: Callable[[], T]) -> T:
        """Run part of a job (or a whole job) in its own SAVEPOINT: if it raises, only its
        writes, log entries, hooks and end steps are undone (one refused payload of an
        envelope leaves the others)."""
        chain_mark = self.chain.mark()
        rows_mark, hooks_mark = len(self.log_rows), len(self.after_commit)
        end_mark = len(self.at_end)
        # On the driver's cursor: SQLAlchemy's begin_nested cost 43 µs a savepoint, the
        # statements themselves 1 µs, and a group holds one per job, end step and payload.
        # A name per depth: an attempt inside an attempt has its own.
        self._depth += 1
        name = f"ihx_attempt_{self._depth}"
        try:
            driver_execute(self.conn, f"SAVEPOINT {name}")
            try:
                result = part()
            except Exception:
                if _transaction_lost(self.conn):
                    raise
                driver_execute(self.conn, f"ROLLBACK TO SAVEPOINT {name}")
                driver_execute(self.conn, f"RELEASE SAVEPOINT {name}")
                self.places.settle(committed=False)
                self.chain.reset(chain_mark)
                del self.log_rows[rows_mark:]
                del self.after_commit[hooks_mark:]
                for key in list(self.at_end)[end_mark:]:
                    del self.at_end[key]
                raise
            driver_execute(self.conn, f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1
        return result


@dataclass(frozen=True, slots=True)
class GroupTiming:
    """One group, in seconds of the writer's timer (see the module docstring)."""

    jobs: int
    waited: float  # from the oldest job's (or coalesced item's) queueing to BEGIN
    held: float  # BEGIN until every caller was answered: the writer was busy with this group
    commit: float  # COMMIT alone (on SQLite the WAL's writes and fsync); 0 if it failed before
    committed: bool = True  # False: the transaction failed, nothing was acknowledged


_Job = Callable[[Tx], Any]
# A queued entry unpacked: the futures to answer, and the job producing one result per future.
_Unpacked = tuple[list[Future[Any]], Callable[[Tx], list[Any]]]
_STOP = object()


class Coalescer(Generic[I, R]):
    """Collects items for one batched job: ``handler(tx, items) -> results`` (same order).

    A handler may answer an item with an ``ExchangeError`` instead of a result: that item's
    caller gets the error, the others their results — for a refusal that only the stored
    state can tell (the writes of the whole batch still commit or fail together).
    """

    def __init__(
        self,
        handler: Callable[[Tx, Sequence[I]], Sequence[R | ExchangeError]],
        *,
        priority: Priority = Priority.NORMAL,
        max_take: int = 500,
    ) -> None:
        self.handler = handler
        self.priority = priority
        self.max_take = max_take
        self._lock = threading.Lock()
        self._items: list[I] = []
        self._futures: list[Future[R]] = []
        # When each call's items were added: (items queued up to and including that call, at).
        self._added: collections.deque[tuple[int, float]] = collections.deque()
        self._taken = 0  # items taken since the coalescer was made (``_added`` counts in these)

    def _add(self, item: I, at: float) -> tuple[Future[R], bool]:
        (f,), first = self._add_all([item], at)
        return f, first

    def _add_all(self, items: Sequence[I], at: float) -> tuple[list[Future[R]], bool]:
        futures: list[Future[R]] = [Future() for _ in items]
        with self._lock:
            first = not self._items
            self._items.extend(items)
            self._futures.extend(futures)
            self._added.append((self._taken + len(self._items), at))
        return futures, first

    def _take(self) -> tuple[list[I], list[Future[R]], float | None]:
        """Up to ``max_take`` items, oldest first, and when the oldest item left was added
        (None: none is left; else the writer queues this coalescer again — a submitter queues
        it only when it finds it empty)."""
        with self._lock:
            n = self.max_take
            items, futures = self._items[:n], self._futures[:n]
            del self._items[:n], self._futures[:n]
            self._taken += len(items)
            while self._added and self._added[0][0] <= self._taken:
                self._added.popleft()
            return items, futures, self._added[0][1] if self._items else None


class Writer:
    """The node's only writer thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_group: int = 256,
        on_failure: Callable[[str], None] | None = None,
        on_group: Callable[[GroupTiming], None] | None = None,
        timer: Callable[[], float] = time.perf_counter,
        wal_autocheckpoint: int | None = None,
    ) -> None:
        self._engine = engine
        self._on_failure = on_failure
        self._on_group = on_group
        self._timer = timer
        # SQLite: checkpoint the log in COMMIT only past this many pages (None: SQLite's 1,000)
        # — the node's WalCheckpointer does it on its own thread (store/wal.py).
        self._wal_autocheckpoint = wal_autocheckpoint
        self.failed_groups = 0  # transactions the database refused (disk full, read-only, …)
        # (priority, arrival, queued at, entry): arrival keeps a priority's jobs in order (so
        # neither the time nor the entry is ever compared).
        self._queue: queue.PriorityQueue[tuple[int, int, float, object]] = queue.PriorityQueue()
        self._arrivals = itertools.count()
        self._passed_over = 0  # groups the waiting background job was left out of
        self._max_group = max_group
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self.chain = LogChain(0, GENESIS)
        self._places = reports.PlaceMemo()
        self.commits = 0
        # Replicas of this node may share the database (PostgreSQL): see _continue_stored_chain.
        self.shared_log = engine.dialect.name == "postgresql"

    def start(self) -> None:
        conn = self._engine.connect()
        try:
            for_the_writer(conn, wal_autocheckpoint=self._wal_autocheckpoint)
            last = routing_log.head(conn)
            conn.rollback()
        except BaseException:
            conn.invalidate()  # set up as the writer's: never a reader's from the pool
            conn.close()
            raise
        self.chain = (
            LogChain(last.idx + 1, last.entry_hash, last.at) if last else LogChain(0, GENESIS)
        )
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="ihx-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._put(Priority.STOP, _STOP)
        self._thread.join()
        self._thread = None
        if self._conn is not None:
            self._conn.invalidate()  # closed, not pooled: a writer's connection is set up as one
            self._conn.close()
            self._conn = None

    def _put(self, priority: int, entry: object, queued_at: float | None = None) -> None:
        at = self._timer() if queued_at is None else queued_at
        self._queue.put((priority, next(self._arrivals), at, entry))

    def submit(self, job: Callable[[Tx], T], priority: Priority = Priority.NORMAL) -> Future[T]:
        f: Future[T] = Future()
        self._put(priority, (job, f))
        return f

    def execute(self, job: Callable[[Tx], T], priority: Priority = Priority.NORMAL) -> T:
        return self.submit(job, priority).result()

    def submit_item(self, coalescer: Coalescer[I, R], item: I) -> Future[R]:
        f, first = coalescer._add(item, self._timer())
        if first:
            self._put(coalescer.priority, coalescer)
        return f

    def submit_items(self, coalescer: Coalescer[I, R], items: Sequence[I]) -> list[Future[R]]:
        """Several items at once: they are handled in this order, in one job with whatever else
        the coalescer holds by then — or, past its ``max_take``, in several, one per group."""
        futures, first = coalescer._add_all(items, self._timer())
        if first and futures:
            self._put(coalescer.priority, coalescer)
        return futures

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            group, queued_at, stop = self._gather()
            if not group:
                return
            try:
                self._run_group(group, queued_at)
            except Exception:  # the writer must outlive any bug in a job's bookkeeping
                log.exception("writer group failed")
            if stop:
                return

    def _gather(self) -> tuple[list[object], float, bool]:
        """The next group, highest priority first (waits for one job), when its oldest entry
        was queued, and whether to stop after it. A background job is put back, not added,
        once the group holds other work."""
        priority, _, queued_at, first = self._queue.get()
        if first is _STOP:
            return [], queued_at, True
        if priority >= Priority.BACKGROUND:
            self._passed_over = 0
        group = [first]
        while len(group) < self._max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item[3] is _STOP:
                # Back in the queue, not "stop after this group": a coalescer's remainder this
                # group requeues (max_take) must run first, or its callers would wait for ever.
                self._queue.put(item)
                break
            if item[0] >= Priority.BACKGROUND > priority:
                self._passed_over += 1
                if self._passed_over <= BACKGROUND_PATIENCE:
                    self._queue.put(item)  # nothing more urgent is queued: leave it for later
                    break
            if item[0] >= Priority.BACKGROUND:
                self._passed_over = 0
            group.append(item[3])
            queued_at = min(queued_at, item[2])
        return group, queued_at, False

    def _run_group(self, group: list[object], queued_at: float) -> None:
        conn = self._conn
        assert conn is not None
        began = self._timer()
        jobs = [job for job in map(self._unpack, group) if job[0]]
        outcomes: list[list[Any] | BaseException] = []
        group_mark = self.chain.mark()
        tx = Tx(conn, self.chain, self._places)
        committing: float | None = None
        try:
            with conn.begin():
                reports.use_places(conn, self._places)
                self._continue_stored_chain(conn)
                group_mark = self.chain.mark()
                for _, run in jobs:
                    try:
                        outcomes.append(tx.attempt(functools.partial(run, tx)))
                    except Exception as error:  # the job's own failure, rolled back alone
                        if _transaction_lost(conn):
                            # The database rolled the whole transaction back itself (SQLite
                            # does on a full disk or an I/O error): every job goes with it,
                            # and the group fails with this, the database's own reason.
                            raise
                        outcomes.append(_storage_error(error))
                _run_end_steps(tx)
                if tx.log_rows:
                    routing_log.append(conn, tx.log_rows)
                committing = self._timer()
            committed = self._timer()
            self.commits += 1
            self._places.settle(committed=True)
        except Exception as error:
            failed = self._timer()
            self._places.settle(committed=False)
            self.chain.reset(group_mark)
            self._fail(conn, jobs, error)
            commit = 0.0 if committing is None else failed - committing
            self._report(len(jobs), began - queued_at, began, commit, committed=False)
            return
        self._settle(tx, jobs, outcomes)
        self._report(len(jobs), began - queued_at, began, committed - committing)

    def _report(
        self, jobs: int, waited: float, began: float, commit: float, *, committed: bool = True
    ) -> None:
        """The group's ``GroupTiming`` to ``on_group``, once its callers have their answers."""
        if self._on_group is None:
            return
        held = self._timer() - began
        try:
            self._on_group(GroupTiming(jobs, waited, held, commit, committed))
        except Exception:
            log.exception("writer group report failed")

    def _fail(self, conn: Connection, jobs: list[_Unpacked], error: Exception) -> None:
        """The group's transaction failed: nothing is acknowledged, every job learns why."""
        reason = _brief(error)
        _end_failed_transaction(conn)
        log.error("write failed, nothing acknowledged: %s", reason)
        self.failed_groups += 1
        if self._on_failure is not None:
            self._on_failure(reason)
        failure = StorageUnavailable(f"the database refused the write: {reason}")
        for futures, _ in jobs:
            for f in futures:
                f.set_exception(failure)

    @staticmethod
    def _settle(tx: Tx, jobs: list[_Unpacked], outcomes: list[list[Any] | BaseException]) -> None:
        """After COMMIT: run the hooks, then answer every job's futures."""
        for hook in tx.after_commit:
            try:
                hook()
            except Exception:
                log.exception("after-commit hook failed")
        for (futures, _), outcome in zip(jobs, outcomes, strict=True):
            results = outcome
            if not isinstance(outcome, BaseException) and len(outcome) != len(futures):
                results = ExchangeError(
                    f"internal: a job returned {len(outcome)} results for {len(futures)} items",
                    code="internal",
                )
            if isinstance(results, BaseException):
                for f in futures:
                    f.set_exception(results)
            else:
                for f, r in zip(futures, results, strict=True):
                    if isinstance(r, ExchangeError):  # one item refused (see Coalescer)
                        f.set_exception(r)
                    else:
                        f.set_result(r)

    def _continue_stored_chain(self, conn: Connection) -> None:
        """Hold the log's write lock until COMMIT, then continue from the head as stored.

        Another process may have appended since our last group; while we hold the lock nobody
        else can, so the entries of this group follow the stored head exactly. SQLite's
        ``BEGIN IMMEDIATE`` (store/engine.py) is that lock; PostgreSQL takes an advisory one.
        """
        if self.shared_log:
            conn.execute(select(func.pg_advisory_xact_lock(LOG_LOCK_KEY)))
        last = routing_log.head(conn)
        if last is None:
            self.chain.reset((0, GENESIS))
            return
        self.chain.reset((last.idx + 1, last.entry_hash))
        # Times never go backwards along the chain, whichever replica wrote the entry before.
        if self.chain.last_at is None or last.at > self.chain.last_at:
            self.chain.last_at = last.at

    def _unpack(self, entry: object) -> _Unpacked:
        if isinstance(entry, Coalescer):
            items, futures, oldest_left = entry._take()
            if oldest_left is not None:
                self._put(entry.priority, entry, oldest_left)
            handler = entry.handler
            return futures, lambda tx: list(handler(tx, items))
        job: Callable[[Tx], Any]
        future: Future[Any]
        job, future = entry  # type: ignore[misc]
        return [future], lambda tx: [job(tx)]


def _run_end_steps(tx: Tx) -> None:
    """The group's end steps (``Tx.once_at_end``), each alone: one that fails is undone and
    logged, and the jobs' writes commit all the same — an end step is never what a caller
    waits on (a report queued and not sealed now is sealed by its sender later)."""
    for key, step in list(tx.at_end.items()):
        try:
            tx.attempt(step)
        except Exception:
            if _transaction_lost(tx.conn):
                raise
            log.exception("end-of-group step %s failed, undone", key)


def _transaction_lost(conn: Connection) -> bool:
    """Whether the database ended our transaction on its own (SQLite only; see the caller)."""
    dbapi = conn.connection.dbapi_connection
    in_transaction = getattr(dbapi, "in_transaction", None)
    return conn.dialect.name == "sqlite" and in_transaction is False


def _end_failed_transaction(conn: Connection) -> None:
    """Roll the database transaction back after a failed COMMIT.

    SQLite keeps the transaction open when COMMIT fails (e.g. a deferred constraint), and
    SQLAlchemy no longer considers it active, so without this every later group would fail with
    "cannot start a transaction within a transaction".
    """
    try:
        conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
    except Exception as error:
        log.error("rollback after a failed commit failed: %s", _brief(error))


def _storage_error(error: Exception) -> Exception:
    # A constraint violation inside one job is a conflict, not an outage: retrying won't help.
    if isinstance(error, IntegrityError):
        return ExchangeError(f"storage conflict: {_brief(error)}", code="storage-conflict")
    if isinstance(error, DBAPIError):
        return StorageUnavailable(f"the database refused the write: {_brief(error)}")
    return error


def _brief(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).splitlines()[0]
    return text[:200]


def count_rows(conn: Connection, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
