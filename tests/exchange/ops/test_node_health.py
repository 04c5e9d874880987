"""A live node's gRPC health (grpc.health.v1 over the wire): NOT_SERVING while its database is
unreachable, read-only or full, SERVING again on recovery — for the node ("") and each service.

Each fault is the real thing, made from outside the node:

* **unreachable**: PostgreSQL refuses the node's database (``ALLOW_CONNECTIONS false``) and
  ends its sessions (``pg_terminate_backend``), as a database restart or failover does;
* **read-only**: PostgreSQL makes every new transaction of the database read-only
  (``default_transaction_read_only``), as a standby does, and ends the sessions;
* **full**: the SQLite file lives on a small tmpfs that a filler file fills; writes then fail
  with SQLITE_FULL, and deleting the filler frees the space.

The node probes every 0.1 s (``[exchange] health_probe_s``); the test polls the health service
until the state it waits for, with a generous deadline — no timing assertion.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from exchange.client.stubs import IntakeClient
from exchange.node import Node
from tests.conftest import GeoRow
from tests.dbs import Databases, postgresql_admin_url
from tests.exchange.factories import make_submission, url_in
from tests.exchange.ops.live_node import live_node

SERVICES = ("", "ihx.v1.Intake", "ihx.v1.Exchange")


def statuses(address: str) -> set[str]:
    """The health of the node and of each service, as the names of their states."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {
            health_pb2.HealthCheckResponse.ServingStatus.Name(
                stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
            )
            for name in SERVICES
        }


def wait_until(address: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := statuses(address)) != {wanted}:
        if time.monotonic() > deadline:
            raise AssertionError(f"health stayed {seen}, never {wanted}")
        time.sleep(0.05)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Databases]:
    dbs = Databases(tmp_path / "dbs", postgresql_admin_url())
    yield dbs
    dbs.close()


def _admin(sql: str) -> None:
    engine = create_engine(postgresql_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _end_sessions(database: str) -> None:
    _admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


def test_unreachable_postgresql_is_not_serving_until_it_is_back(
    tmp_path: Path, geo_table: Mapping[str, GeoRow], postgres: Databases
) -> None:
    urls: dict[str, str] = {}
    with live_node(tmp_path / "fed", geo_table, lambda m: urls.setdefault(m, postgres.new(m))) as (
        _fed,
        node,
    ):
        database = make_url(urls["nl-eokm"]).database
        wait_until(node.address, "SERVING")
        _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            _end_sessions(str(database))
            wait_until(node.address, "NOT_SERVING")
        finally:
            _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        wait_until(node.address, "SERVING")


def test_read_only_postgresql_is_not_serving_until_writable(
    tmp_path: Path, geo_table: Mapping[str, GeoRow], postgres: Databases
) -> None:
    urls: dict[str, str] = {}
    with live_node(tmp_path / "fed", geo_table, lambda m: urls.setdefault(m, postgres.new(m))) as (
        _fed,
        node,
    ):
        database = make_url(urls["nl-eokm"]).database
        wait_until(node.address, "SERVING")
        _admin(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        try:
            _end_sessions(str(database))
            wait_until(node.address, "NOT_SERVING")
            monitor = node.health_monitor
            assert monitor is not None
            # The ended sessions fail first; the probes after them find the database read-only.
            deadline = time.monotonic() + 60
            while "read-only" not in monitor.reason:
                assert time.monotonic() < deadline, monitor.reason
                time.sleep(0.05)
            assert statuses(node.address) == {"NOT_SERVING"}
        finally:
            _admin(f'ALTER DATABASE "{database}" SET default_transaction_read_only = off')
            _end_sessions(str(database))  # sessions read the setting when they start
        wait_until(node.address, "SERVING")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a real file system that fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
        except OSError:
            pass
    return filler


def health_changes(node: Node, status: str, reason: str) -> float:
    """How often the node's health has changed to ``status`` (for ``reason``: "" for SERVING)."""
    labels = {"status": status, "reason": reason}
    return node.metrics.registry.get_sample_value("ihx_health_changes_total", labels) or 0.0


def wait_until_true(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


class Watched:
    """The node's health as its Watch stream tells it, in order. A state that lasts only
    briefly may be missed: grpcio's watcher keeps only the latest one to send."""

    def __init__(self, address: str) -> None:
        self.seen: list[str] = []
        self._channel = grpc.insecure_channel(address)
        stub = health_pb2_grpc.HealthStub(self._channel)
        self._stream = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name
        try:
            for answer in self._stream:
                self.seen.append(name(answer.status))
        except grpc.RpcError:
            pass  # closed

    def wait_for(self, wanted: str, after: int = 0, timeout: float = 60) -> int:
        """The index of the first ``wanted`` state at or after ``after``."""
        deadline = time.monotonic() + timeout
        while wanted not in self.seen[after:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"health went {self.seen}, never {wanted}")
            time.sleep(0.05)
        return self.seen.index(wanted, after)

    def close(self) -> None:
        self._stream.cancel()
        self._channel.close()


def test_a_full_disk_is_not_serving_until_space_is_freed(
    tmp_path: Path, geo_table: Mapping[str, GeoRow], small_disk: Path
) -> None:
    with live_node(tmp_path / "fed", geo_table, lambda m: f"sqlite:///{small_disk / m}.db") as (
        fed,
        node,
    ):
        wait_until(node.address, "SERVING")
        watched = Watched(node.address)
        try:
            watched.wait_for("SERVING")
            filler = _fill(small_disk)
            refused = 0
            with IntakeClient(node.address, token=fed.token("nl-eokm")) as intake:
                for n in range(500):  # until the database cannot grow: bounded
                    try:
                        intake.submit(
                            make_submission(url_in("NL", f"/full-{n}.jpg"), hashes=[f"full-{n}"])
                        )
                    except grpc.RpcError:
                        refused += 1
                        break
            assert refused == 1, "every write fit on a full disk"
            # NOT_SERVING may last only until a probe's one-row write fits in space the refused
            # transaction gave back — shorter than a Watch stream takes to send it (grpcio's
            # watcher keeps only the latest state). The monitor's count of changes keeps all.
            wait_until_true(lambda: health_changes(node, "not_serving", "database") >= 1)
            filler.unlink()
            wait_until_true(lambda: health_changes(node, "serving", "") >= 1)
            watched.wait_for("SERVING")
        finally:
            watched.close()
        wait_until(node.address, "SERVING")
