"""Outbox drain rate on PostgreSQL: reports/s delivered by one and by three replicas of a node.

Node A (nl-eokm) runs as 1 or 3 processes (`ihx node run`, same settings, key and database,
different listen ports) on a fresh PostgreSQL database; node B (de-eco) as one more process on
another. With B down, N DE-hosted reports are submitted through A's replicas, so A's outbox holds
N. Then B starts, and the clock runs from the first delivery to the last: reports/s receipted at A
(stored at B, signed receipt applied at A). PostgreSQL is IHX_BENCH_DATABASE_URL's server
(default: postgres@127.0.0.1:5432, trust auth, as in CI); every database is dropped afterwards.

With several replicas exactly one streams to a given peer (the holder of its lease), so three
replicas are not expected to drain one peer faster than one: they buy failover, and share the
streams to many peers. The figure shows what the lease and the shared log lock cost.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common as common
from exchange_throughput import request

from exchange.client.stubs import IntakeClient
from exchange.store.engine import open_engine
from exchange.tools.provision import (
    MemberPlan,
    free_port,
    provision_federation,
    write_replica_settings,
)

A, B = "nl-eokm", "de-eco"
# A's sender retries B quickly once B is up; the lease default (10 s) is kept.
TUNING = "\n[exchange]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.25\n"


def scenario(replicas: int, n: int, root: Path, pg: Any) -> dict[str, Any]:
    fed = provision_federation(
        root,
        [MemberPlan(A, "A", ("NL",)), MemberPlan(B, "B", ("DE",))],
        coordinator=B,
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={"185.107.56.0/22": "NL", "5.9.0.0/16": "DE"},
        asn_networks={"5.9.0.0/16": (24940, "Hetzner Online GmbH")},
        static_hosts={"files.example.de": ["5.9.10.20"]},
        extra_settings=TUNING,
        database_url=pg.new,
    )
    addresses = [fed.settings[A].listen] + [f"127.0.0.1:{free_port()}" for _ in range(replicas - 1)]
    configs = [fed.config_path(A)] + [
        write_replica_settings(fed.config_path(A), f"replica-{i}.toml", addresses[i])
        for i in range(1, replicas)
    ]
    a_db = open_engine(fed.settings[A].database_url)
    procs = [common.start_node(c, root / f"a-{i}.log") for i, c in enumerate(configs)]
    try:
        for address in addresses:
            common.wait_ready(address)

        # Fill the outbox through every replica's intake while B is down.
        token = fed.token(A, ttl=900)
        t0 = time.monotonic()

        def submit(k: int) -> None:
            with IntakeClient(addresses[k], token=token, timeout=300) as client:
                for r in client.submit_requests(request(i, "o") for i in range(k, n, replicas)):
                    if r.error_code:
                        raise SystemExit(f"intake refused a report: {r.error_code}")

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(replicas)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        intake_rate = n / (time.monotonic() - t0)
        queued = common.count(a_db, "select count(*) from outbox")
        if queued != n:
            raise SystemExit(f"expected {n} reports in A's outbox, found {queued}")

        procs.append(common.start_node(fed.config_path(B), root / "b.log"))
        common.wait_ready(fed.settings[B].listen)
        deadline = time.monotonic() + 600
        first: tuple[float, int] | None = None
        while True:
            now, delivered = time.monotonic(), common.count(a_db, "select count(*) from deliveries")
            if first is None and delivered > 0:
                first = (now, delivered)
            if delivered >= n:
                break
            if now > deadline:
                raise SystemExit(f"timed out: {delivered} of {n} delivered")
            time.sleep(0.01)
        assert first is not None
        drain = (n - first[1]) / max(now - first[0], 1e-6)
        batches = common.count(a_db, "select count(*) from batches")
        holders = common.count(a_db, "select count(distinct holder) from peer_leases")
        return {
            "replicas": replicas,
            "intake_per_s": round(intake_rate),
            "drain_reports_per_s": round(drain),
            "batches": batches,
            "lease_holders": holders,
        }
    finally:
        common.stop(procs)
        a_db.dispose()


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--reports", type=int, help="reports queued (default 50,000; --quick 10,000)")
    args = p.parse_args()
    n = args.reports or (10_000 if args.quick else 50_000)
    pg = common.PostgresDatabases()
    results: dict[str, Any] = {}
    try:
        with common.scratch("ihx-bench-outbox-") as root:
            for replicas in (1, 3):
                print(f"{replicas} replica(s) of A: {n:,} reports queued, then drained to B …")
                figures = scenario(replicas, n, root / f"r{replicas}", pg)
                print(
                    f"  intake (all replicas) {figures['intake_per_s']:,} reports/s; drain "
                    f"{figures['drain_reports_per_s']:,} reports/s in {figures['batches']} "
                    f"batches; {figures['lease_holders']} replica(s) held B's lease"
                )
                results[f"replicas_{replicas}"] = figures
    finally:
        pg.close()
    common.emit({"bench": "outbox", "db": "postgresql", "reports": n, **results})


if __name__ == "__main__":
    main()
