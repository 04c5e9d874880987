"""The health monitor (exchange/health_monitor.py) against a real writer, pool and health servicer.

Worker exhaustion is real: a ``ThreadPoolExecutor`` whose only worker is held by a task, as a
gRPC server's pool is when every worker is busy. A refused write comes through the writer's
``on_failure`` hook; recovery then needs a probe that really writes a row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from grpc_health.v1 import health, health_pb2
from sqlalchemy import Engine, select

from exchange.ops.health import HealthMonitor
from exchange.store import schema
from exchange.store.meta import PROBE_KEY
from exchange.store.writer import Writer

SERVICES = ("ihx.v1.Intake",)


def status(servicer: health.HealthServicer, service: str = "") -> str:
    context: Any = None  # Check reads no context for a known service
    response = servicer.Check(health_pb2.HealthCheckRequest(service=service), context)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=False)


@pytest.fixture
def servicer() -> health.HealthServicer:
    s = health.HealthServicer()
    for name in ("", *SERVICES):
        s.set(name, health_pb2.HealthCheckResponse.SERVING)
    return s


def test_no_free_worker_is_not_serving_until_one_is_free(
    writer: Writer, pool: ThreadPoolExecutor, servicer: health.HealthServicer
) -> None:
    monitor = HealthMonitor(servicer, SERVICES, writer=writer, pool=pool, pool_timeout=0.2)
    assert monitor.check() == (True, "")
    release = threading.Event()
    pool.submit(release.wait)  # the only worker is taken
    serving, reason = monitor.check()
    assert not serving
    assert reason.startswith("workers:")
    assert status(servicer) == "NOT_SERVING"
    assert status(servicer, SERVICES[0]) == "NOT_SERVING"
    release.set()
    assert monitor.check() == (True, "")
    assert status(servicer) == "SERVING"
    assert status(servicer, SERVICES[0]) == "SERVING"


def test_a_refused_write_is_not_serving_until_a_real_write_commits(
    engine: Engine, writer: Writer, servicer: health.HealthServicer
) -> None:
    monitor = HealthMonitor(servicer, SERVICES, writer=writer, pool=None)
    assert monitor.check() == (True, "")
    meta = schema.node_meta
    with engine.connect() as conn:
        # The steady-state probe changes nothing.
        assert conn.execute(select(meta.c.value).where(meta.c.key == PROBE_KEY)).first() is None
    monitor.write_failed("database or disk is full")
    assert status(servicer) == "NOT_SERVING"
    assert monitor.reason == "database: database or disk is full"
    assert monitor.check() == (True, "")
    assert status(servicer) == "SERVING"
    with engine.connect() as conn:
        assert conn.execute(select(meta.c.value).where(meta.c.key == PROBE_KEY)).first()


def test_a_probe_queued_before_a_refused_write_does_not_make_it_serving(
    engine: Engine, writer: Writer, servicer: health.HealthServicer
) -> None:
    """The failure hook and a probe already in the writer's queue race: the probe's success
    says nothing about the write refused after it was queued, so health stays NOT_SERVING
    until a probe queued since — one that really writes — commits."""
    monitor = HealthMonitor(servicer, SERVICES, writer=writer, pool=None)
    gate = threading.Event()
    writer.submit(lambda tx: gate.wait(10))  # the writer is busy: the next probe waits
    answers: list[tuple[bool, str]] = []
    checking = threading.Thread(target=lambda: answers.append(monitor.check()))
    checking.start()
    deadline = time.monotonic() + 10
    while monitor._probe is None and time.monotonic() < deadline:  # the probe is queued
        time.sleep(0.01)
    monitor.write_failed("database or disk is full")
    gate.set()
    checking.join(10)
    assert answers == [(False, "database: a write failed after this probe was queued")]
    assert status(servicer) == "NOT_SERVING"
    with engine.connect() as conn:
        meta = schema.node_meta
        assert conn.execute(select(meta.c.value).where(meta.c.key == PROBE_KEY)).first() is None
    assert monitor.check() == (True, "")
    assert status(servicer) == "SERVING"
    with engine.connect() as conn:
        assert conn.execute(select(meta.c.value).where(meta.c.key == PROBE_KEY)).first()


def test_a_check_that_found_the_database_well_loses_to_a_write_refused_since(
    writer: Writer, servicer: health.HealthServicer
) -> None:
    """The window after a probe cleared the failure and before its check sets SERVING: a write
    refused in it wins, and the servicer agrees with the monitor."""
    monitor = HealthMonitor(servicer, SERVICES, writer=writer, pool=None)
    monitor.write_failed("database or disk is full")
    assert monitor._set(True, "") == (False, "database: database or disk is full")
    assert (monitor.serving, status(servicer), status(servicer, SERVICES[0])) == (
        False,
        "NOT_SERVING",
        "NOT_SERVING",
    )
    assert monitor.check() == (True, "")  # a probe queued after it: it really writes
    assert status(servicer) == "SERVING"
