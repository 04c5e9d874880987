"""Health that tells the truth: NOT_SERVING while the node cannot serve, SERVING once it can.

Why: health used to be set to SERVING at start and never looked at again, so a node whose
workers were all taken, or whose database refused every write, still told Kubernetes and its
load balancer to send it traffic.

Design: one thread checks, every ``interval`` seconds, the two things every call needs:

* **a worker**: a no-op handed to the gRPC server's own pool must run within ``pool_timeout``
  (admission, exchange/admission.py, sizes the pool so this holds unless something is wrong);
* **a writable database**: a write statement through the single writer must commit within
  ``write_timeout``. In steady state the probe is ``UPDATE … WHERE`` no row — it still needs the
  write lock, so a locked, read-only or unreachable database fails it — and changes nothing.
  After a real write failed (the writer's ``on_failure`` hook turns health NOT_SERVING at once),
  recovery needs a probe that really writes a row (``node_meta`` key ``health-probe``), so a
  full disk does not flap between the two states. Both statements live in ``store/meta.py``.
  A probe queued before a write failed proves nothing about it, however it ends: its success
  does not turn health SERVING again (it once raced the failure hook and did).

The status is set for the whole server ("") and every service name. ``check`` is callable
directly (tests); the clock is injectable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout

from grpc_health.v1 import health, health_pb2

from exchange.ops.metrics import Metrics
from exchange.store.meta import stamp_probe, touch_probe
from exchange.store.writer import Tx, Writer

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    def __init__(
        self,
        servicer: health.HealthServicer,
        services: Sequence[str],
        *,
        writer: Writer,
        pool: Executor | None,
        interval: float = 5.0,
        pool_timeout: float = 1.0,
        write_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._servicer = servicer
        self._services = ("", *services)
        self._writer = writer
        self._pool = pool
        self._interval = interval
        self._pool_timeout = pool_timeout
        self._write_timeout = write_timeout
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._write_failed = False
        # Write failures so far; a probe notes the count it was queued at. One queued before a
        # failure may still report success after it: it says nothing about the failure.
        self._failures = 0
        self._probe_failures = 0
        self._probe: Future[None] | None = None
        self._probe_since = 0.0
        self.serving = True
        self.reason = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if metrics is not None:
            metrics.health_serving.set(1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ihx-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self._write_timeout + self._pool_timeout + 1)

    def write_failed(self, reason: str) -> None:
        """The writer's ``on_failure`` hook: the database refused a transaction."""
        with self._lock:
            self._write_failed = True
            self._failures += 1
        self._set(False, f"database: {reason}")
        self._wake.set()

    def check(self) -> tuple[bool, str]:
        """Probe now; set and return (serving, reason)."""
        problem = self._check_pool() or self._check_database()
        return self._set(problem is None, problem or "")

    # -- probes ---------------------------------------------------------------------------------

    def _check_pool(self) -> str | None:
        if self._pool is None:
            return None
        try:
            self._pool.submit(_nothing).result(self._pool_timeout)
        except FutureTimeout:
            return f"workers: none free within {self._pool_timeout:g} s"
        except RuntimeError:  # the pool is shut down: the server is stopping
            return "workers: the server is stopping"
        return None

    def _check_database(self) -> str | None:
        with self._lock:
            probe = self._probe
            if probe is None:
                # One probe at a time: a database that hangs must not collect a queue of them.
                really_write = self._write_failed
                probe = self._writer.submit(lambda tx: _probe_write(tx, really_write))
                self._probe, self._probe_since = probe, self._clock()
                self._probe_failures = self._failures
        waited = self._clock() - self._probe_since
        try:
            probe.result(max(0.0, self._write_timeout - waited))
        except FutureTimeout:
            return f"database: no write committed within {self._write_timeout:g} s"
        except Exception as error:
            with self._lock:
                self._probe = None
            return f"database: {error}"
        with self._lock:
            self._probe = None
            if self._failures != self._probe_failures:  # queued before a write failed: stale
                return "database: a write failed after this probe was queued"
            self._write_failed = False
        return None

    def _set(self, serving: bool, reason: str) -> tuple[bool, str]:
        """Set health; the (serving, reason) it is now. A write refused since the probe that
        found the database well outranks it: SERVING waits for a probe queued after it. The
        servicer is told under the lock, so of two threads setting at once it ends as we do."""
        with self._lock:
            if serving and self._write_failed:
                return self.serving, self.reason
            changed = serving != self.serving
            self.serving, self.reason = serving, reason
            if changed:
                status = SERVING if serving else NOT_SERVING
                for name in self._services:
                    self._servicer.set(name, status)
        if not changed:
            return serving, reason
        if serving:
            log.warning("health: SERVING again")
        else:
            log.error("health: NOT_SERVING (%s)", reason)
        if self._metrics is not None:
            self._metrics.health_serving.set(1 if serving else 0)
            label = "serving" if serving else "not_serving"
            self._metrics.health_changes.labels(label, reason.split(":", 1)[0]).inc()
        return serving, reason

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the monitor must outlive a bug
                log.exception("health check failed")
            self._wake.wait(self._interval)
            self._wake.clear()


def _nothing() -> None:
    return None


def _probe_write(tx: Tx, really_write: bool) -> None:
    if really_write:
        stamp_probe(tx.conn, str(time.time()))
    else:
        touch_probe(tx.conn)
