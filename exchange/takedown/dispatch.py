"""Many re-checks at once, with a global and a per-host concurrency limit.

The scheduler hands over thousands of due URLs at a time, many on the same few hosts. Asking a
host more than a couple of things at once is rude (and gets a hotline blocked), and one host
that takes seconds to answer must not hold the workers every other host needs.

Design:
- ``Target.host`` is the key of the per-host limit.
- A fixed set of worker threads (``concurrency``, started once): never a thread per target.
- Each host has its own queue. A host is on the *ready* ring only while it has queued targets
  and fewer than ``per_host_concurrency`` checks running; workers take the next host off the
  ring, one target from it, and put the host back at the end if it can take more — so hosts are
  served round-robin and a host's surplus waits in its queue, not in a worker.
- ``run(targets)`` reads targets lazily, keeping at most ``backlog`` of them queued or running,
  and yields each ``(target, check)`` as it completes. Leaving the loop early drops the run's
  targets that have not started.
- A check that raises is a bug, not a host's doing: it becomes an UNREACHABLE Check naming the
  error class, logged (host only, never the URL), and the worker carries on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from common.clock import Clock
from exchange.takedown.model import Check, Outcome, Target

__all__ = ["CheckPool", "Target"]

log = logging.getLogger(__name__)

_Results = queue.SimpleQueue[tuple[Target, Check]]


@dataclass(frozen=True, slots=True)
class _Job:
    target: Target
    results: _Results


class CheckPool:
    """Runs checks on a fixed set of worker threads; ``close()`` stops them."""

    def __init__(
        self,
        check: Callable[[str], Check],
        clock: Clock,
        *,
        concurrency: int = 32,
        per_host_concurrency: int = 2,
        backlog: int = 10_000,
    ) -> None:
        if concurrency < 1 or per_host_concurrency < 1:
            raise ValueError("concurrency limits must be at least 1")
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        self._check = check
        self._clock = clock
        self._per_host = per_host_concurrency
        self._backlog = backlog
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, int] = {}
        self._ready: deque[str] = deque()
        self._closed = False
        self._workers = [
            threading.Thread(target=self._serve, name=f"recheck-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for worker in self._workers:
            worker.start()

    def run(self, targets: Iterable[Target]) -> Iterator[tuple[Target, Check]]:
        """Check every target; yields ``(target, check)`` in the order checks complete."""
        results: _Results = queue.SimpleQueue()
        pending = iter(targets)
        outstanding = 0
        exhausted = False
        try:
            while True:
                while not exhausted and outstanding < self._backlog:
                    target = next(pending, None)
                    if target is None:
                        exhausted = True
                    else:
                        self._submit(_Job(target, results))
                        outstanding += 1
                if outstanding == 0:
                    return
                done = results.get()
                outstanding -= 1
                yield done
        finally:
            if outstanding:
                self._drop(results)

    def close(self, timeout: float | None = None) -> None:
        """Stop the workers once their current checks end; queued targets are dropped. With a
        ``timeout``, wait at most that long in all (a node stopping does not wait out a slow
        host's deadline: the workers are daemons and their results are no longer read)."""
        with self._work:
            self._closed = True
            self._queues.clear()
            self._ready.clear()
            self._work.notify_all()
        end = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if end is None else max(0.0, end - time.monotonic()))

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the per-host queues -------------------------------------------------------------------

    def _submit(self, job: _Job) -> None:
        host = job.target.host
        with self._work:
            if self._closed:
                raise RuntimeError("the check pool is closed")
            waiting = self._queues.get(host)
            if waiting is None:
                waiting = self._queues[host] = deque()
            waiting.append(job)
            if len(waiting) == 1 and self._running.get(host, 0) < self._per_host:
                self._ready.append(host)
                self._work.notify()

    def _take(self) -> _Job | None:
        """The next job, round-robin over the hosts that may take one more; None when closed."""
        with self._work:
            while not self._ready:
                if self._closed:
                    return None
                self._work.wait()
            host = self._ready.popleft()
            waiting = self._queues[host]
            job = waiting.popleft()
            running = self._running[host] = self._running.get(host, 0) + 1
            if not waiting:
                del self._queues[host]
            elif running < self._per_host:
                self._ready.append(host)
                self._work.notify()  # the host can take one more: wake another worker for it
            return job

    def _done(self, host: str) -> None:
        with self._work:
            running = self._running[host] - 1
            if running:
                self._running[host] = running
            else:
                del self._running[host]
            waiting = self._queues.get(host)
            # The host was off the ring because it was at its limit; it may take one more now.
            if waiting and running == self._per_host - 1:
                self._ready.append(host)
                self._work.notify()

    def _drop(self, results: _Results) -> None:
        """Forget the queued jobs of an abandoned run (running ones finish unobserved)."""
        with self._work:
            for host in list(self._queues):
                kept = deque(job for job in self._queues[host] if job.results is not results)
                if kept:
                    self._queues[host] = kept
                else:
                    del self._queues[host]
            self._ready = deque(host for host in self._ready if host in self._queues)

    # -- the workers ---------------------------------------------------------------------------

    def _serve(self) -> None:
        while (job := self._take()) is not None:
            try:
                check = self._one(job.target)
            finally:
                self._done(job.target.host)
            job.results.put((job.target, check))

    def _one(self, target: Target) -> Check:
        try:
            return self._check(target.url)
        except Exception as error:  # a bug in a check must not end the worker
            log.exception(
                "re-check failed unexpectedly",
                extra={"case_id": target.case_id, "host": target.host},
            )
            return Check(
                at=self._clock(),
                outcome=Outcome.UNREACHABLE,
                detail=f"check failed: {type(error).__name__}",
            )
