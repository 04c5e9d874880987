"""Takedown re-checks per second: CheckPool + Prober against a local HTTP server.

What the node's scheduler does when thousands of watched URLs fall due at once: each check
re-traces its URL (static resolver, GeoIP databases built for the run with many networks and
ASNs), connects to the traced address — routed to the loopback server — and asks HEAD. The
pool runs with the node's default limits (32 at once, 2 per host) over many distinct hosts.

The server is a ``ThreadingHTTPServer`` in its own process (its CPU is not the prober's), one
new connection per check as in production (checks of one host are hours apart). Printed:
checks/s, per-check latency p50/p99 (measured in the worker, without queueing), the prober
process's CPU time per check, and its RSS before and after. Goal: ≥ 500 checks/s.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import bench_common as common

from exchange.takedown.dispatch import CheckPool, Target
from exchange.takedown.model import Check
from exchange.takedown.probe import Prober
from routing.geoip import GeoIp
from routing.geoip_build import build_asn_db, build_country_db
from routing.resolver import StaticResolver
from routing.trace import Tracer

NOW = datetime(2026, 11, 22, tzinfo=UTC)
GOAL = 500.0
COUNTRIES = ("NL", "DE", "FR", "GB", "US", "RO", "SE", "PL", "IT", "ES")
NETWORKS = 200  # /24s, each its own ASN, spread over the countries


# -- the server (its own process) -----------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 32 connects at once must not overflow the listen backlog


def _serve(conn: Connection) -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    conn.send(server.server_address[1])
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    conn.recv()  # until the parent says stop (or goes away)
    server.shutdown()


# -- the world: hosts, addresses, GeoIP ------------------------------------------------------


def networks() -> list[ipaddress.IPv4Network]:
    """NETWORKS public /24s (none special-purpose), in 185.0.0.0/8 and 91.0.0.0/8."""
    out = []
    for i in range(NETWORKS):
        first = 185 if i % 2 else 91
        out.append(ipaddress.IPv4Network(f"{first}.{i // 2}.{i % 250}.0/24"))
    return out


def world(folder: Path, hosts: int) -> tuple[Tracer, GeoIp]:
    nets = networks()
    country = {str(n): COUNTRIES[i % len(COUNTRIES)] for i, n in enumerate(nets)}
    asn = {str(n): (64_512 + i, f"Hoster {i} B.V.") for i, n in enumerate(nets)}
    country_db = build_country_db(folder / "country.mmdb", country, build_time=NOW)
    asn_db = build_asn_db(folder / "asn.mmdb", asn, build_time=NOW)
    table = {
        f"host{h}.example": [str(nets[h % len(nets)].network_address + 1 + h // len(nets) % 250)]
        for h in range(hosts)
    }
    geoip = GeoIp(country_db, asn_db)
    return Tracer(StaticResolver(table), geoip, lambda: NOW), geoip


def targets(count: int, hosts: int, offset: int = 0) -> Iterator[Target]:
    for i in range(offset, offset + count):
        host = f"host{i % hosts}.example"
        yield Target(f"case-{i}", f"http://{host}/p/{i % 97}/item{i}.jpg", host)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the run -----------------------------------------------------------------------------------


def measure(pool: CheckPool, work: Iterable[Target]) -> tuple[float, float, Counter[str]]:
    cpu = time.process_time()
    started = time.perf_counter()
    outcomes: Counter[str] = Counter()
    for _, check in pool.run(work):
        outcomes[check.outcome.value] += 1
    return time.perf_counter() - started, time.process_time() - cpu, outcomes


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--checks", type=int, default=None, help="checks to run (20,000; 5,000 quick)")
    p.add_argument("--hosts", type=int, default=5_000, help="distinct host names")
    args = p.parse_args()
    n = args.checks or (5_000 if args.quick else 20_000)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    port: int = parent.recv()

    with tempfile.TemporaryDirectory(prefix="ihx-bench-takedown-") as tmp:
        tracer, geoip = world(Path(tmp), args.hosts)
        latencies: list[float] = []
        prober = Prober(
            tracer,
            lambda: NOW,
            user_agent="ihx-bench/1 (benchmark; +https://hotline.example/recheck)",
            route=lambda _address, _port: ("127.0.0.1", port),
        )

        def timed(url: str) -> Check:
            t = time.perf_counter()
            check = prober.check(url)
            latencies.append(time.perf_counter() - t)  # list.append is atomic
            return check

        rss_before = rss_mib()
        pool = CheckPool(timed, lambda: NOW)  # the defaults: 32 at once, 2 per host
        try:
            measure(pool, list(targets(500, args.hosts, offset=n)))  # warm-up
            latencies.clear()
            rss_warm = rss_mib()
            wall, cpu, outcomes = measure(pool, targets(n, args.hosts))  # read lazily
        finally:
            pool.close()
            geoip.close()
        rss_after = rss_mib()
    parent.send("stop")
    server.join(timeout=10)

    rate = n / wall
    p50 = common.percentile(latencies, 50) * 1000
    p99 = common.percentile(latencies, 99) * 1000
    print(f"re-checks: {n:,} over {args.hosts:,} hosts, CheckPool defaults (32 / 2 per host)")
    print(
        f"  {rate:,.0f} checks/s (goal ≥ {GOAL:.0f})  wall {wall:.2f} s  outcomes {dict(outcomes)}"
    )
    print(f"  per-check latency p50 {p50:.2f} ms  p99 {p99:.2f} ms (in the worker, no queueing)")
    print(f"  prober CPU {cpu / n * 1e6:.0f} µs per check")
    print(
        f"  RSS {rss_before:.1f} MiB before the pool → {rss_warm:.1f} MiB after the warm-up"
        f" → {rss_after:.1f} MiB after the run"
    )
    result: dict[str, Any] = {
        "bench": "takedown",
        "checks": n,
        "hosts": args.hosts,
        "checks_per_s": round(rate, 1),
        "goal_checks_per_s": GOAL,
        "latency_p50_ms": round(p50, 3),
        "latency_p99_ms": round(p99, 3),
        "cpu_us_per_check": round(cpu / n * 1e6, 1),
        "rss_mib_before": round(rss_before, 1),
        "rss_mib_warm": round(rss_warm, 1),
        "rss_mib_after": round(rss_after, 1),
        "outcomes": dict(outcomes),
    }
    common.emit(result)


if __name__ == "__main__":
    main()
