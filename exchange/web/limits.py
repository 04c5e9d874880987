"""Rate limits of the web view: a token bucket per key (a client address, a session id).

Used for logins per client address and case views per session, so one client cannot flood the
session store or the routing log. Memory is bounded: at most ``most`` keys are tracked, the one
least recently used is forgotten first (forgetting only refills that key's bucket — it never
refuses anyone else). Pure: the clock is a parameter; a lock makes it safe under threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from common.clock import Clock


class RateLimit:
    """``burst`` requests at once per key, then one per ``every_s`` seconds."""

    def __init__(self, clock: Clock, *, burst: int, every_s: float, most: int = 10_000) -> None:
        self._clock = clock
        self._burst = float(burst)
        self._every = every_s
        self._most = most
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one request from ``key``'s bucket; False when it is empty (refuse the request)."""
        now = self._clock().timestamp()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + max(0.0, now - last) / self._every)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self._most:
                self._buckets.popitem(last=False)
            return allowed

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)
