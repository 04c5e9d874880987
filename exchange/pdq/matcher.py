"""The node's near-duplicate index over the network's PDQ sightings, and matching against it.

The index holds each PDQ hash that has at least one sighting (this node's own or a member's
announced one) of quality >= ``[pdq] min_quality``. It follows the sightings table through its
change feed (``pdq_changes``, appended by ``store/hash_index`` in the transaction of every
sighting written or retracted): before each match that has a hash to search (unless another
thread is refreshing: a search never waits for a refresh), and on ``refresh``, the changes after
its cursor are read and each changed hash is re-decided from the table — added if it still has a
sighting of enough quality, withdrawn if not. So no writer has to call it, every node answers
from what it has committed, and a retraction takes the hash out. Change numbers are taken in
commit order: every sighting is written by the single writer, whose transactions hold the write
lock (BEGIN IMMEDIATE; a PostgreSQL log shared by replicas: its advisory lock), so no change
can commit behind the cursor.

At start the index is loaded from its file when the file's cursor and quality threshold hold
and the feed still has every change since (then those are applied), else rebuilt from the
sightings (about 1 s per 200,000 hashes on the reference machine, docs/pdq.md). The node saves
it every ``[pdq] save_interval_s`` (trim loop) and at stop, and notes no cursor past the file's,
so the feed keeps every change since it (a restart after kill -9 loads it, docs/pdq.md). A
rebuild while running (the feed trimmed past the cursor) is never done by a request: a search
only flags it, the trim loop rebuilds, searches go on with the old index meanwhile — so a
match takes the index once, as its ids belong to that one.

The feed is trimmed while the node runs (``trim``, every ``[pdq] trim_interval_s``): each
process keeping an index is a named follower that notes its cursor in ``pdq_followers``, and
the changes below the lowest cursor of the followers heard from within their lease go (a
follower notes its starting cursor as it opens, before it reads the sightings). Rows
only go from the front, so a reader whose cursor is behind the first change held (a follower
back after its lease, an old file, a one-off reader) knows it missed some and rebuilds.

A match is one vectorised search for a whole batch; each hit within ``max_distance`` other than
the hash itself (that is exact known content) is answered with the first sighting of the hit
hash among sightings of enough quality — passing over the entry's own (its report's or case's)
— nearest first, at most ``MAX_NEAR`` per item (only the first hits of each item, as many as
may be passed over and shown, have their sightings read). A PDQ hash of unknown or low
quality is not matched, and the answer says why.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, Engine

from common.clock import Clock, system_clock
from exchange.domain import ContentHash, HashAlgorithm, NearSighting
from exchange.pdq import persist, probe
from exchange.pdq.codes import to_codes, to_hex
from exchange.pdq.index import MAX_DISTANCE, Matches, PdqIndex
from exchange.store import hash_index
from exchange.store.writer import Writer

log = logging.getLogger(__name__)

MAX_NEAR = 10  # per item: the nearest; an analyst opens the case for more
CHANGES_PAGE = 10_000
TRIM_CHUNK = 50_000  # changes deleted in one writer job (numbers are dense: a range of seq)
DEFAULT_LEASE = timedelta(minutes=15)  # [pdq] follower_lease_s

NearAnswer = tuple[tuple[NearSighting, ...], str]  # (near sightings, why not matched or "")


def index_file(database_url: str, configured: Path | None) -> Path | None:
    """``[pdq] index_path``, or ``pdq-index.npz`` beside a SQLite file, or none."""
    if configured is not None:
        return configured
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        return Path(database_url.removeprefix("sqlite:///")).with_name("pdq-index.npz")
    return None


def follower_name(role: str, host: str, rng: random.Random) -> str:
    """A follower's name, unique to this process: two nodes or web views on one host (or one
    restarted while its old row is still within the lease) never share a row, which would
    let the feed be trimmed past the slower one. ``role@host:pid.random``, within 128."""
    return f"{role}@{host[:80]}:{os.getpid()}.{rng.getrandbits(48):012x}"


def _stamp(cursor: int, min_quality: int) -> int:
    """The file's stamp: the change cursor it is current to and the quality it was built with."""
    return cursor * 128 + min_quality


def _first_per_query(found: Matches, passed_over: int) -> Matches:
    """The first ``MAX_NEAR + passed_over`` hits of each query (``found`` is ordered by query,
    then distance): a case view reads the sightings of these only, however many members'
    hashes lie within the distance."""
    rank = np.arange(len(found)) - np.searchsorted(found.query, found.query, side="left")
    keep = rank < MAX_NEAR + passed_over
    return Matches(found.query[keep], found.ids[keep], found.distance[keep])


class PdqMatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        max_distance: int,
        min_quality: int,
        path: Path | None,
        follower: str = "",
        clock: Clock = system_clock,
        lease: timedelta = DEFAULT_LEASE,
        trim_chunk: int = TRIM_CHUNK,
        save_every: timedelta | None = None,
    ) -> None:
        self._engine = engine
        self.max_distance = max_distance
        self.min_quality = min_quality
        self._path = path
        self._follower = follower  # its row in pdq_followers ("" for a one-off: ihx match)
        self._clock = clock
        self._lease = lease
        self._trim_chunk = trim_chunk
        # The file's owner (the node) saves it this often from the trim loop and notes no
        # cursor past the file's, so the feed keeps every change since: a restart, even after
        # kill -9, and ``ihx match`` or a web view starting load the file, never rebuild.
        self._save_every = save_every if path is not None else None
        self._saved: tuple[int, datetime] | None = None  # (cursor, when) of the last save
        self._lock = threading.Lock()  # one refresh at a time; a search never waits for it
        self._index = PdqIndex()
        self._cursor = 0
        self._stale = False  # the feed was trimmed past the cursor: rebuild off request threads
        self.opened = False  # set once ``open`` has loaded or rebuilt the index
        self.failed = False  # set when ``open`` raised: it will not open without a restart

    def __len__(self) -> int:
        return len(self._index)

    def open(self) -> str:
        """Load the index file, or rebuild from the sightings; then catch up. Says which.
        A follower notes its starting cursor before it reads the sightings, so no trim goes
        past a process still opening (it would rebuild again at once)."""
        with self._lock:
            probe.warm()  # the compiled search ready before the first query
            try:
                how = self._load() or self._rebuild()
            except Exception:
                self.failed = True
                raise
            if not self._catch_up():
                how = f"{how}; the feed was trimmed meanwhile: {self._rebuild()}"
                self._catch_up()
            self.opened = True
            return how

    def save(self) -> None:
        """Write the index file (when there is a path), current to the cursor; then note the
        cursor and trim ``pdq_changes``. Called at stop, after the node's writer stopped."""
        cursor = self._save_file()
        while True:
            with self._engine.begin() as conn:
                if self._note_and_trim(conn, cursor) < self._trim_chunk:
                    return

    def trim(self, writer: Writer) -> int:
        """Catch up (outside the writer), then in one writer job note this follower's cursor
        and drop the changes every follower heard from within its lease has applied: run
        every ``[pdq] trim_interval_s``, so the feed holds only changes a live follower has
        still to apply. At most ``trim_chunk`` changes a job, repeated while a whole chunk
        went (other writer jobs run between). How many changes went."""
        self.refresh()
        if self._save_every is not None and (
            self._saved is None or self._clock() - self._saved[1] >= self._save_every
        ):
            self._save_file()
        cursor, total = self._cursor, 0
        if self._save_every is not None and self._saved is not None:
            cursor = min(cursor, self._saved[0])  # the file still finds every change after it
        while True:
            gone = writer.execute(lambda tx: self._note_and_trim(tx.conn, cursor))
            total += gone
            if gone < self._trim_chunk:
                return total

    def _save_file(self) -> int:
        """Catch up and write the file (when there is a path; a temporary file renamed over
        it); the cursor it is current to. Searches go on meanwhile; refreshes wait."""
        with self._lock:
            self._catch_up()
            cursor = self._cursor  # the file's: a rebuild elsewhere may move it on
            if self._path is not None:
                persist.save(self._index, self._path, _stamp(cursor, self.min_quality))
                self._saved = (cursor, self._clock())
            return cursor

    def _note_and_trim(self, conn: Connection, cursor: int) -> int:
        now = self._clock()
        if self._follower:
            hash_index.record_pdq_follower(conn, self._follower, cursor, now)
        gone = hash_index.trim_pdq_changes(
            conn, alive_since=now - self._lease, limit=self._trim_chunk
        )
        if gone:
            log.info("pdq_changes trimmed by %d rows", gone)
        return gone

    def refresh(self) -> None:
        """Catch up; rebuild from the sightings when the feed was trimmed past the cursor.
        Run by the trim loop (and ``open``), never by a request: searches meanwhile go on with
        the index as it was, and take the rebuilt one once it is published whole."""
        with self._lock:
            if self._stale or not self._catch_up():
                # The feed was trimmed past this cursor (not heard from within its lease): the
                # changes it missed are gone, the sightings are not.
                log.warning("PDQ index behind the trimmed change feed: %s", self._rebuild())
                self._stale = False
                self._catch_up()

    def _refresh_if_free(self) -> None:
        """Catch up unless another thread is at it: a search then goes on with the index as
        last published (the index publishes each merge whole, so it never sees half of one),
        and that refresh, or the next search's, applies the rest. Never a rebuild (seconds to
        a minute at 10 M hashes): a feed trimmed past the cursor is only flagged, and the trim
        loop rebuilds (``refresh``)."""
        if self._stale or not self._lock.acquire(blocking=False):
            return
        try:
            if not self._catch_up():
                self._stale = True
                log.warning("PDQ index behind the trimmed change feed: rebuilt by the trim loop")
        finally:
            self._lock.release()

    def match(
        self,
        hashes: Sequence[ContentHash | None],
        max_distance: int | None = None,
        *,
        include_exact: bool = False,
        own: Sequence[str] | None = None,
    ) -> list[NearAnswer]:
        """Per entry (an item's PDQ hash, or ``None``), its near-known content; one search.
        ``include_exact``: the hash itself too, at distance 0 (``ihx match``).
        ``own``: per entry, a case or report id whose sightings are the item's own and never
        near to it (the next sighting of that hash is named, if any)."""
        radius = self.max_distance if max_distance is None else max_distance
        if not 0 <= radius <= MAX_DISTANCE:
            raise ValueError(f"max distance is 0 to {MAX_DISTANCE}")
        answers: list[NearAnswer] = [((), self._why_not(h)) for h in hashes]
        asked = [i for i, h in enumerate(hashes) if h is not None and not answers[i][1]]
        if not asked:
            return answers  # nothing to search: no query of the change feed either
        self._refresh_if_free()
        wanted = [hashes[i].hex for i in asked]  # type: ignore[union-attr]
        index = self._index  # once: a rebuild may swap it, and ids belong to one index
        # Hits come nearest first per query: past the MAX_NEAR shown, only those that may be
        # passed over (the hash itself; a hash only this batch's own items sighted) count.
        found = _first_per_query(index.search(to_codes(wanted), radius), len(set(wanted)) + 1)
        hit_hex = to_hex(index.code_of(found.ids))
        with self._engine.connect() as conn:
            seen = hash_index.pdq_sightings(conn, sorted(set(hit_hex)), self.min_quality)
        mine = [own[i] if own is not None else "" for i in asked]
        near: dict[int, list[NearSighting]] = {}
        for q, hx, d in zip(found.query.tolist(), hit_hex, found.distance.tolist(), strict=True):
            k = next((s for s in seen.get(hx, ()) if mine[q] not in (s.case_id, s.report_id)), None)
            exact = hx == wanted[q] and not include_exact
            if k is None or exact or len(near.setdefault(q, [])) >= MAX_NEAR:
                continue
            near[q].append(NearSighting(hx, int(d), k.sighting()))
        for q, i in enumerate(asked):
            answers[i] = (tuple(near.get(q, ())), "")
        return answers

    def _why_not(self, h: ContentHash | None) -> str:
        if h is None or h.algorithm is not HashAlgorithm.PDQ:
            return "no pdq hash"
        if h.quality is None:
            return "pdq quality unknown: not matched"
        if h.quality < self.min_quality:
            return f"pdq quality {h.quality} below {self.min_quality}: not matched"
        return ""

    def _load(self) -> str:
        if self._path is None or not self._path.exists():
            return ""
        try:
            index, stamp = persist.load(self._path)
        except persist.IndexFileError as exc:
            log.warning("PDQ index file refused, rebuilding: %s", exc)
            return ""
        cursor, quality = divmod(stamp, 128)
        self._note_start(cursor)
        with self._engine.connect() as conn:
            current = hash_index.pdq_cursor(conn)
            first = hash_index.pdq_first_change(conn)
        if quality != self.min_quality or cursor > current or first > cursor + 1:
            return ""  # another threshold, a database older than the file, a feed trimmed past it
        self._index, self._cursor = index, cursor
        if self._save_every is not None:
            self._saved = (cursor, self._clock())  # the file on disk: no trim past it
        return f"loaded {self._path} ({len(index)} hashes, {current - cursor} changes since)"

    def _rebuild(self) -> str:
        with self._engine.connect() as conn:
            cursor = hash_index.pdq_cursor(conn)  # first: a change made meanwhile is re-applied
        self._note_start(cursor)
        with self._engine.connect() as conn:
            hexes = hash_index.pdq_matchable(conn, self.min_quality)
        self._index = PdqIndex.from_codes(to_codes(sorted(hexes)))  # published whole
        self._cursor = cursor
        return f"rebuilt from the sightings ({len(hexes)} hashes)"

    def _note_start(self, cursor: int) -> None:
        """A follower's row at the cursor it starts from, committed before the sightings are
        read: a trim from then on keeps every change after it. (A trim already under way may
        still pass it; ``_catch_up`` sees that, and the index is rebuilt.)"""
        if self._follower:
            with self._engine.begin() as conn:
                hash_index.record_pdq_follower(conn, self._follower, cursor, self._clock())

    def _catch_up(self) -> bool:
        """Apply the changes after the cursor; False when the feed was trimmed past it."""
        while True:
            with self._engine.connect() as conn:
                changes = hash_index.pdq_changes_after(conn, self._cursor, CHANGES_PAGE)
                if not changes:
                    return True
                if hash_index.pdq_first_change(conn) > self._cursor + 1:
                    return False  # read after the page: had a trim passed the cursor, it shows
                changed = sorted({hx for _, hx in changes})
                keep = hash_index.pdq_matchable(conn, self.min_quality, changed)
            if keep:
                self._index.add(to_codes(sorted(keep)))
            gone = [hx for hx in changed if hx not in keep]
            if gone:
                self._index.remove(to_codes(gone))
            self._cursor = changes[-1][0]
