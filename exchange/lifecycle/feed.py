"""A wake-up for WatchCases streams: "the case feed grew", without polling the database.

The recorder calls ``notify`` after each COMMIT that stored an event; a stream that has sent
everything up to its cursor waits on ``wait`` (bounded, so it also notices a cancelled call or
a stopping node) and then reads what is new from the store. Only a counter is shared.
"""

from __future__ import annotations

import threading


class ChangeFeed:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def notify(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the version passes ``seen`` or ``timeout`` seconds pass; the version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen, timeout=timeout)
            return self._version
