"""Figures kept briefly: the answer to an expensive read, reused for a few seconds.

A statistics page asks for its period's snapshot once and each of its charts once more; every
case-queue page shows the counts of every queue, each a set-based count over the item states.
``Kept`` keeps each answer for ``ttl`` in a small bounded map (oldest dropped first), so a page
and its images, or several people reading the queues, cost one read per ``ttl``. What a page
shows from it is at most ``ttl`` old, and the page says so where it matters.

Single flight: while one request computes a key's answer, the others asking for the same key
wait for it instead of starting the same expensive read (eight people opening the scorecard
cost one read, not eight). Shared by the web view's pages and the node's ``GetStatistics``
(exchange/edge/stats_service.py), so it lives beside both rather than in either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from common.clock import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    def __init__(self, clock: Clock, *, ttl: timedelta, most: int = 32) -> None:
        self._clock = clock
        self._ttl = ttl
        self._most = most
        self._kept: OrderedDict[K, tuple[datetime, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[K, threading.Lock] = {}  # one per key being computed

    def _fresh(self, key: K) -> tuple[datetime, V] | None:
        now = self._clock()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and timedelta(0) <= now - kept[0] < self._ttl:
                return kept
            return None

    def get(self, key: K, compute: Callable[[], V]) -> V:
        """The kept answer for ``key`` if younger than ``ttl``, else ``compute()`` kept anew
        (computed once for everyone asking meanwhile)."""
        kept = self._fresh(key)
        if kept is not None:
            return kept[1]
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # others asking for this key wait here for the one computing it
            kept = self._fresh(key)
            if kept is not None:
                return kept[1]
            try:
                return self._compute(key, compute)
            finally:
                with self._lock:
                    self._flights.pop(key, None)

    def _compute(self, key: K, compute: Callable[[], V]) -> V:
        value = compute()  # outside the store's lock: one slow read never holds up other keys
        with self._lock:
            # Kept from when the read finished: a read slower than ``ttl`` is still reused.
            self._kept[key] = (self._clock(), value)
            self._kept.move_to_end(key)
            while len(self._kept) > self._most:
                self._kept.popitem(last=False)
        return value
