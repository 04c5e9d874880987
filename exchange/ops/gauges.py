"""Gauges read from the database by one background thread, served from its last reading.

Why: a gauge read at scrape time costs a query per scrape per Prometheus replica, and a slow
or unreachable database would then stall ``/metrics`` — exactly when it is needed. Here one
thread reads every ``interval`` seconds (longer after a slow read: it spends at most a fifth of
its time reading); a scrape only copies the last reading. Each read is a bounded count: the work
queues in one pass over the holder's item states (store/lifecycle.queue_counts), a partner's
unacknowledged cases over ``partner_cases``' acked_at index, the outbox grouped by destination,
the few ``peers`` rows — measured at 100k cases by ``bench/gauges_read.py``. A failed read keeps
the previous values and counts ``ihx_gauges_read_failures_total``;
``ihx_gauges_read_timestamp_seconds`` says how old the values are.

The families:
``ihx_case_queue{queue}``, ``ihx_partner_backlog{partner,state}``,
``ihx_outbox_pending{destination}``, ``ihx_outbox_oldest_pending_seconds{destination}``,
``ihx_peer_failing_seconds{peer}`` (0 while delivery works), ``ihx_takedown_watches{state}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from common.clock import Clock
from exchange.store import partners as partner_store
from exchange.store.overview import failing_peers, outbox_depth

log = logging.getLogger(__name__)

Counts = Callable[[], Mapping[str, int]]
BUSY_AT_MOST = 5  # the next read waits at least this many times the last read's duration


@dataclass(frozen=True)
class GaugeSources:
    """Where the gauges come from: the database, and the views that already count queues."""

    engine: Engine
    clock: Clock
    queues: Counts
    takedown: Counts | None = None


class DatabaseGauges(Collector):
    """The cached gauges; ``refresh`` reads them (the thread calls it, tests may too)."""

    def __init__(self, sources: GaugeSources, failures: Counter, interval: float) -> None:
        self._sources = sources
        self._failures = failures
        self._lock = threading.Lock()
        self._families: list[GaugeMetricFamily] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._took = 0.0

    def start(self) -> None:
        self._took = self.refresh()  # values from the first scrape on
        self._thread = threading.Thread(target=self._run, name="ihx-gauges", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def refresh(self) -> float:
        """Read every gauge now; the seconds the read took."""
        began = time.monotonic()
        try:
            families = list(self._read())
        except Exception as error:  # the database is down: keep the last values, say so
            self._failures.inc()
            log.warning("metrics gauges not read: %s", error)
            return time.monotonic() - began
        with self._lock:
            self._families = families
        return time.monotonic() - began

    def _run(self) -> None:
        # A slow read (a huge database, a loaded machine) waits longer before the next: the
        # thread never takes more than a fifth of a core.
        while not self._stop.wait(max(self._interval, BUSY_AT_MOST * self._took)):
            self._took = self.refresh()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # nothing to read at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            families = list(self._families)
        yield from families

    def _read(self) -> Iterator[GaugeMetricFamily]:
        s = self._sources
        now = s.clock()
        yield _counted(
            "ihx_case_queue", "Cases held here with an item in each work queue", "queue", s.queues()
        )
        with s.engine.connect() as conn:
            backlog = partner_store.backlog(conn)
        partners = GaugeMetricFamily(
            "ihx_partner_backlog",
            "Cases offered to a partner and not acknowledged, pulled or not yet",
            labels=["partner", "state"],
        )
        for (partner, state), n in sorted(backlog.items()):
            partners.add_metric([partner, state], n)
        yield partners
        yield from _outbox(s.engine, now)
        yield _failing(failing_peers(s.engine), now)
        if s.takedown is not None:
            yield _counted("ihx_takedown_watches", "Watched cases per state", "state", s.takedown())
        stamp = GaugeMetricFamily(
            "ihx_gauges_read_timestamp_seconds", "When the database gauges were last read"
        )
        stamp.add_metric([], now.timestamp())
        yield stamp


def _counted(name: str, help_text: str, label: str, counts: Mapping[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text, labels=[label])
    for value, n in sorted(counts.items()):
        gauge.add_metric([value], n)
    return gauge


def _outbox(engine: Engine, now: datetime) -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily(
        "ihx_outbox_pending", "Reports waiting for a receipt", labels=["destination"]
    )
    oldest = GaugeMetricFamily(
        "ihx_outbox_oldest_pending_seconds",
        "Age of the oldest report waiting for a receipt",
        labels=["destination"],
    )
    for destination, count, first in outbox_depth(engine):
        depth.add_metric([destination], count)
        age = (now - first).total_seconds() if first is not None else 0.0
        oldest.add_metric([destination], max(0.0, age))
    yield depth
    yield oldest


def _failing(peers: Mapping[str, datetime | None], now: datetime) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        "ihx_peer_failing_seconds",
        "How long delivery to a peer has been failing (0: it works)",
        labels=["peer"],
    )
    for peer, since in sorted(peers.items()):
        gauge.add_metric([peer], max(0.0, (now - since).total_seconds()) if since else 0.0)
    return gauge
