"""Helpers shared by the benchmark scripts: argument parsing, GeoIP discovery, output, a scratch
directory and PostgreSQL databases per run, and the node processes (start, wait, stop; their CPU
time and peak memory)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from auth.keys import SigningKey
from auth.manifest import Manifest, Member, MemberKey

ROOT = Path(__file__).resolve().parent.parent
SHARED_GEO = ROOT.parent / "shared" / "geoip"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="finish within 60 s")
    return p


def real_geoip() -> tuple[Path | None, Path | None]:
    country = os.environ.get("IHX_GEOIP_COUNTRY_DB")
    asn = os.environ.get("IHX_GEOIP_ASN_DB")
    if country:
        return Path(country), Path(asn) if asn else None
    if (SHARED_GEO / "country-geolite2-layout.mmdb").exists():
        return SHARED_GEO / "country-geolite2-layout.mmdb", SHARED_GEO / "asn-geolite2-layout.mmdb"
    return None, None


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def emit(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True))


# -- PostgreSQL ----------------------------------------------------------------------------------

# The server the PostgreSQL figures use (trust auth on 127.0.0.1, as in CI); the URL's database
# is only used to CREATE and DROP the fresh databases of each run.
POSTGRESQL_ADMIN_URL = os.environ.get(
    "IHX_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def scratch(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A directory for one run's databases, keys and logs, removed afterwards unless ``keep``
    (a full run leaves gigabytes)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


class PostgresDatabases:
    """Fresh, empty PostgreSQL databases for one run (``new()``); ``close()`` drops them all."""

    def __init__(self, admin_url: str = POSTGRESQL_ADMIN_URL) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self._admin_url = admin_url
        self._engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._names: list[str] = []

    def new(self, _label: str = "") -> str:
        import secrets

        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = "ihx_bench_" + secrets.token_hex(6)
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self._names.append(name)
        return make_url(self._admin_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        from sqlalchemy import text

        with self._engine.connect() as conn:
            for name in self._names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._names.clear()
        self._engine.dispose()


# -- node processes ------------------------------------------------------------------------------

# The `ihx` command of the virtual environment running the bench.
IHX = str(Path(sys.executable).parent / "ihx")


def start_node(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`ihx node run --config CONFIG` as a child process, its output to ``log``."""
    return start_process([IHX, "node", "run", "--config", str(config)], log)


def start_process(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    compiled_kernels()
    out = log.open("wb")
    return subprocess.Popen(argv, stdout=out, stderr=out)


@functools.cache
def compiled_kernels() -> None:
    """Compile the PDQ kernels into numba's cache once, here, before any node starts.

    Each node compiles them at start when the cache is empty (a fresh install: ~10-20 s of a
    core each); six nodes starting at once on two cores then took over a minute to listen, and
    the bench gave up waiting. From the cache a node loads them in under a second.
    """
    from exchange.pdq.probe import warm

    warm()


def wait_ready(address: str, timeout: float = 30.0) -> None:
    """Until the gRPC server at ``address`` accepts a channel (else grpc.FutureTimeoutError)."""
    import grpc

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    channel.close()


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM to each, then wait; a process still running after ``timeout`` is killed."""
    procs = list(procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def count(db: Any, sql: str, **params: Any) -> int:
    """One integer from ``sql`` on the SQLAlchemy engine ``db``."""
    from sqlalchemy import text

    with db.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the running process ``pid`` has used so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storage_writes(pid: int) -> int:
    """Bytes process ``pid`` (all its threads) caused to be written to files: ``write_bytes`` of
    /proc/<pid>/io, page-granular, counted when a page is first dirtied (with
    ``synchronous=FULL`` flushing every commit, close to what reaches the disk); truncation is
    not subtracted (SQLite does not truncate its WAL here). For a SQLite node, mostly its WAL
    frames and checkpoints (its log file and the -shm map count too); not ``wchar``, which counts
    socket writes as well."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "write_bytes":
            return int(value)
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes")


def peak_rss_mib(pid: int) -> float:
    """The running process's peak resident set (VmHWM in /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def bench_manifest(members: Sequence[tuple[str, str]], coordinator: str, now: datetime) -> Manifest:
    """A manifest for in-process benches: each (member, country) with a fresh key of its own."""
    return Manifest(
        network="bench",
        epoch=1,
        issued_at=now,
        members=tuple(
            Member(
                id=member,
                name=cc,
                countries=frozenset({cc}),
                endpoint=f"{cc.lower()}.example:7443",
                keys=(MemberKey.of(SigningKey.generate().public, now),),
            )
            for member, cc in members
        ),
        orphan_rules={},
        coordinator=coordinator,
        coordinator_keys=(MemberKey.of(SigningKey.generate().public, now),),
    )


# -- a node's single writer, from its /metrics ---------------------------------------------------


def writer_counters(metrics_listen: str) -> dict[str, Any]:
    """The writer's counters and queue-wait buckets as a node serves them now (with the time
    they were read), for ``writer_load`` over a phase."""
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{metrics_listen}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, Any] = {"at": time.monotonic(), "buckets": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "ihx_writer_queue_wait_seconds_bucket":
                out["buckets"][float(s.labels["le"])] = s.value
            elif s.name.startswith("ihx_writer_") and s.name.endswith("_total"):
                out[s.name.removeprefix("ihx_writer_").removesuffix("_total")] = s.value
    return out


def writer_load(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """How busy the writer was between two readings: the fraction of the time it spent on
    groups, groups per second, time per group and COMMIT's share of it, and the queue wait of
    a group's oldest job at the 50th and 99th percentile (a bucket's upper bound: "at most";
    None past the last bound)."""
    seconds = after["at"] - before["at"]
    groups = after["groups"] - before["groups"]
    busy = after["busy_seconds"] - before["busy_seconds"]
    waits = {le: after["buckets"][le] - before["buckets"].get(le, 0) for le in after["buckets"]}

    def at_most(q: float) -> float | None:
        bound = min(le for le, n in waits.items() if n >= q * groups)
        return None if bound == float("inf") else bound * 1000

    return {
        "busy_fraction": round(busy / seconds, 3),
        "groups_per_s": round(groups / seconds, 1),
        "ms_per_group": round(busy / groups * 1000, 2) if groups else 0.0,
        "commit_share": round((after["commit_seconds"] - before["commit_seconds"]) / busy, 3)
        if busy
        else 0.0,
        "wait_p50_ms_at_most": at_most(0.5) if groups else 0.0,
        "wait_p99_ms_at_most": at_most(0.99) if groups else 0.0,
    }


def writer_text(load: dict[str, Any]) -> str:
    def wait(key: str) -> str:
        value = load[key]
        return "> 10 s" if value is None else f"≤ {value:g} ms"

    return (
        f"writer busy {load['busy_fraction']:.0%} of the time, {load['groups_per_s']:,.0f} "
        f"groups/s of {load['ms_per_group']} ms ({load['commit_share']:.0%} COMMIT), oldest job "
        f"waited p50 {wait('wait_p50_ms_at_most')}, p99 {wait('wait_p99_ms_at_most')}"
    )
