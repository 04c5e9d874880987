"""SQLite's log checkpoints, on a thread of their own instead of inside the writer's COMMIT.

In WAL mode a commit appends the pages it changed to the write-ahead log; a checkpoint copies
them back into the database file and fsyncs it. By default the connection that commits runs one
whenever the log holds more than 1,000 pages (4 MB), inside that COMMIT: here the single
writer's, so every few groups one group's COMMIT also wrote megabytes into the database file
while every job of the node waited for it (bench/exchange_throughput.py, under load: COMMIT was
16-17% of node A's writer time with those checkpoints and 9-10% without).

``WalCheckpointer`` runs PASSIVE checkpoints every ``interval`` seconds on a pooled connection
from its own thread. A PASSIVE checkpoint copies what it can and never waits for — nor blocks —
the writer or a reader, so the writer goes on committing while it runs. The writer's own
automatic checkpoint stays, raised to ``BACKSTOP_PAGES`` (``Writer(wal_autocheckpoint=…)``): if
this thread falls behind or fails, the log still cannot grow much past 40 MB. Copying every
``interval`` instead of every 4 MB also writes a page that changes often into the database file
once per interval, not once per 4 MB of log (a fifth fewer bytes written per report).

A checkpoint that fails (a full disk, a read-only file, an I/O error) is logged when the
failures start and when they end, not every round; the backstop goes on meanwhile.

PostgreSQL checkpoints by itself: the node builds a checkpointer only for SQLite.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from common.periodic import Periodic

log = logging.getLogger(__name__)

# The writer's own automatic checkpoint while this thread does the work (pages of 4 KiB).
BACKSTOP_PAGES = 10_000
INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint found: the frames in the log and how many are now in the file."""

    log_frames: int
    copied_frames: int
    # Another connection held the checkpoint lock (the writer's backstop). Frames a reader
    # still needs are not copied either, but only show in ``copied_frames < log_frames``.
    busy: bool

    @property
    def complete(self) -> bool:
        """Every frame is in the database file: the next commit starts the log over."""
        return not self.busy and self.copied_frames == self.log_frames


class WalCheckpointer:
    """PASSIVE checkpoints of a SQLite database every ``interval`` seconds, until stopped."""

    def __init__(self, engine: Engine, *, interval: float = INTERVAL_S) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError(f"only SQLite has a write-ahead log to checkpoint, not {engine.url}")
        self._engine = engine
        self._loop = Periodic("ihx-wal-checkpoint", interval, self._round)
        self.runs = 0
        self.failures = 0  # rounds that failed, in all
        self.last: Checkpoint | None = None
        self._failing = False

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def checkpoint(self) -> Checkpoint:
        """One PASSIVE checkpoint now; the database's error if it cannot run."""
        with self._engine.connect() as conn:
            # On the driver's connection: through ``conn`` the PRAGMA would open a transaction.
            driver = conn.connection.dbapi_connection
            assert driver is not None
            busy, frames, copied = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.runs += 1
        self.last = Checkpoint(log_frames=frames, copied_frames=copied, busy=bool(busy))
        return self.last

    def _round(self) -> None:
        """The thread's job: a checkpoint, its failure logged only when failing starts."""
        try:
            self.checkpoint()
        except (sqlite3.Error, SQLAlchemyError, OSError) as error:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.error("WAL checkpoint failed (the writer's backstop goes on): %s", error)
            return
        if self._failing:
            self._failing = False
            log.info("WAL checkpoints work again")
