"""A whole-check deadline: a host that dribbles its answer cannot hold a worker for long.

urllib3's read timeout bounds each ``recv``, not the answer: a server that sends a header byte
every few seconds (slow-loris in reverse) would keep a check, and the worker running it, busy
for hours, and a few such hosts would stall the whole pool. So each check is *watched*: the
sockets it opens are registered, and one watchdog thread per prober shuts them down
(``shutdown(SHUT_RDWR)``, which wakes a blocked ``recv`` or TLS handshake) once the check's
deadline has passed. The prober then reports the check as past its deadline, whatever the
half-read answer looked like.

Design:
- Only the checks running now are held (at most the pool's concurrency): the thread looks at
  them every ``tick_s`` while there are any, and sleeps while there are none. A deadline is
  kept to within one tick; memory stays flat however many checks a day brings.
- Sockets are held as Python objects, never as file descriptor numbers: a socket closed by its
  check has fd -1, so shutting it down late fails harmlessly instead of hitting a reused fd.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator


class Watch:
    """One check's deadline and the sockets it opened."""

    __slots__ = ("_done", "_expired", "_lock", "_sockets", "due")

    def __init__(self, due: float) -> None:
        self.due = due
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
    """Expires the watches of running checks at their deadlines, on one daemon thread."""

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, *, tick_s: float = 0.1
    ) -> None:
        self._monotonic = monotonic
        self._tick_s = tick_s
        self._cond = threading.Condition()
        self._running: set[Watch] = set()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, seconds: float) -> Iterator[Watch]:
        """A watch for the check run inside the ``with``; finished when it leaves."""
        watch = Watch(self._monotonic() + seconds)
        with self._cond:
            self._running.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="deadline-watchdog", daemon=True
                )
                self._thread.start()
            if len(self._running) == 1:
                self._cond.notify()  # the thread sleeps while nothing runs
        try:
            yield watch
        finally:
            watch.finish()
            with self._cond:
                self._running.discard(watch)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._running:
                    self._cond.wait()
                now = self._monotonic()
                late = [w for w in self._running if w.due <= now]
                self._running.difference_update(late)
            for watch in late:  # outside the lock: shutting sockets must not block new checks
                watch.expire()
            with self._cond:
                self._cond.wait(self._tick_s)
