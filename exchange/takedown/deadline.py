"""A whole-check deadline: a host that dribbles its answer cannot hold a worker for long.

urllib3's read timeout bounds each ``recv``, not the answer: a server that sends a header byte
every few seconds (slow-loris in reverse) would keep a check, and the worker running it, busy
for hours, and a few such hosts would stall the whole pool. So each check is *watched*: the
sockets it opens are registered, and one watchdog thread per prober shuts them down
(``shutdown(SHUT_RDWR)``, which wakes a blocked ``recv`` or TLS handshake) when the check's
deadline passes. The prober then reports the check as past its deadline, whatever the
half-read answer looked like.

A finished check's entry stays in the heap until its deadline (popped then, doing nothing): at
most checks/s x deadline small entries, cheaper than removing each from the middle.

Sockets are held as Python objects, never as file descriptor numbers: a socket closed by its
check has fd -1, so shutting it down late fails harmlessly instead of hitting a reused fd.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable


class Watch:
    """One check's deadline and the sockets it opened."""

    __slots__ = ("_done", "_expired", "_lock", "_sockets")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._done = False

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    def add(self, sock: socket.socket) -> None:
        """A socket the check has opened (shut at once if the deadline already passed)."""
        with self._lock:
            if self._expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def finish(self) -> None:
        """The check is over: its sockets are the caller's again, nothing will be shut."""
        with self._lock:
            self._done = True
            self._sockets.clear()

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its check, or never connected
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """Expires watches at their deadlines, on one daemon thread started on first use."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> Watch:
        watch = Watch()
        with self._cond:
            heapq.heappush(self._heap, (self._monotonic() + seconds, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="deadline-watchdog", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is watch:  # the thread sleeps until an earlier deadline otherwise
                self._cond.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                due, _, watch = self._heap[0]
                wait = due - self._monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            watch.expire()  # outside the lock: shutting sockets must not block new watches
