"""Retry delays for a peer: exponential from 1 s to at most 5 minutes, with jitter, forever.

Jitter is "equal jitter" (half fixed, half random) so that many nodes retrying a peer that came
back do not arrive in lock-step, while a retry is never much sooner than planned. Randomness is
injected, and so is the wait itself (``Wait``: the sender waits on an event it sets to cut the
wait short; a test fast-forwards it). ``reset`` is called as soon as the peer is heard from.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

# Wait on ``event`` at most ``seconds``; True if it was set (the wait was cut short).
Wait = Callable[[threading.Event, float], bool]


def event_wait(event: threading.Event, seconds: float) -> bool:
    """The real wait."""
    return event.wait(seconds)


class Backoff:
    def __init__(self, rng: random.Random, *, initial: float = 1.0, maximum: float = 300.0) -> None:
        self._rng = rng
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2.0 ** min(self.failures, 32)))
        self.failures += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0
