"""The folder: brings the rollups up to date with what changed since its watermarks.

Two sources, each read a page at a time in one transaction with the watermark it advances:
- the routing log after the last index folded (intake, sent, received, delivery latency) —
  entries never change, so the index alone makes it exactly once; intake entries and sent
  entries of one report are counted by the database, per kind, key and day, a batch's one
  sent entry by the reports it lists, the rest read one by one — a batch's receipt as one per
  report (store/stats.log_page);
- the item states updated since the last ``updated_at`` folded (less a look-back, for a
  writer whose transaction took its time before committing) — each item's facts as last
  counted are kept beside the rollup, and only the difference is added, so an item read twice
  adds nothing: exactly once whatever the overlap, and across a kill -9 (the watermarks commit
  with the counts they cover).
Folding runs in the node's writer (a background job, and before each snapshot), off the intake
path: recording a report or an event costs the statistics nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from exchange.stats.facts import (
    Contribution,
    ItemFacts,
    counted,
    item_delta,
    item_facts,
    log_contributions,
)
from exchange.store import stats as store
from exchange.times import from_micros, to_micros

LOG_MARK = "log"
ITEMS_MARK = "items"
VERSION_MARK = "version"
# What a fact contributes (facts.py), as a number: a rollup counted by another version cannot
# have its items' counts taken back, so it is dropped and folded again from nothing.
# 3: a moved item counts at its old holder only as moved (facts.py); 4: a batch's one `sent`
# and `receipted` entry (0019) — folded again, as an older node folding during a rolling
# upgrade would have counted a new node's batch entries as one report each.
FOLD_VERSION = 4
DEFAULT_LOOKBACK = timedelta(seconds=30)
# A page — that many item states, and that many log indexes — is one writer job, so intake
# waits little behind it (the item states cost most: ~0.1 s a page on a 2-core machine).
DEFAULT_PAGE = 2000

ItemCursor = tuple[datetime, str, str, int]


@dataclass(frozen=True, slots=True)
class Page:
    """One page folded: whether more is waiting, where the item pass goes on (None: it is
    over), item rows read."""

    more: bool
    after: ItemCursor | None
    rows: int


class Folder:
    def __init__(
        self,
        *,
        member: str,
        lookback: timedelta = DEFAULT_LOOKBACK,
        page: int = DEFAULT_PAGE,
    ) -> None:
        if page < 1:
            raise ValueError("a fold page spans at least one item state and one log index")
        self._member = member
        self._lookback = lookback
        self._page = page

    def fold_page(
        self, conn: Connection, after: ItemCursor | None = None, *, items: bool = True
    ) -> Page:
        """Fold one page of each source in ``conn``'s transaction (which must commit for the
        page to count). ``after``: the item cursor the previous page of this pass returned;
        ``items=False``: this pass is over, only the log goes on (reading the look-back
        again for every page of a long log would be wasted)."""
        store.lock_folder(conn)
        if store.mark(conn, VERSION_MARK) != FOLD_VERSION:
            store.reset(conn)
            store.set_mark(conn, VERSION_MARK, FOLD_VERSION)
            after, items = None, True
        delta: Counter[Contribution] = Counter()
        log_more = self._log(conn, delta)
        read, cursor = self._items(conn, delta, after) if items else (0, None)
        store.add_counts(conn, delta)
        return Page(log_more or cursor is not None, cursor, read)

    def _log(self, conn: Connection, delta: Counter[Contribution]) -> bool:
        last = store.mark(conn, LOG_MARK)
        last = -1 if last is None else last  # the log's first index is 0
        page = store.log_page(conn, last, self._page)
        for kind, key, day, n in page.counts:
            delta[counted(kind, key, day)] += n
        for entry in page.each:
            delta.update(log_contributions(entry))
        if page.last is not None:
            store.set_mark(conn, LOG_MARK, page.last)
        return page.more

    def _items(
        self, conn: Connection, delta: Counter[Contribution], after: ItemCursor | None
    ) -> tuple[int, ItemCursor | None]:
        mark = store.mark(conn, ITEMS_MARK)
        since = None if mark is None else from_micros(mark) - self._lookback
        rows = store.changed_items(conn, self._member, since=since, after=after, limit=self._page)
        saves: list[tuple[store.ItemKey, str | None]] = []
        for ch in rows:
            old = ItemFacts.decode(ch.counted) if ch.counted else None
            new = item_facts(ch.row) if ch.row is not None else None
            if old != new:
                delta.update(item_delta(old, new))
                saves.append((ch.key, new.encode() if new is not None else None))
        store.save_facts(conn, saves)
        if not rows:
            return 0, None
        last = rows[-1]
        newest = max(to_micros(last.updated_at), mark or 0)
        store.set_mark(conn, ITEMS_MARK, newest)
        cursor = (last.updated_at, *last.key) if len(rows) == self._page else None
        return len(rows), cursor
