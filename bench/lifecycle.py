"""Three nodes on this machine: case lifecycle events/s end to end, and action → origin latency.

nl-eokm (the origin) and the coordinator inhope run as ``ihx node run`` processes; de-eco (the
holder) runs in ``bench/lifecycle_driver.py``, which starts the node and works cases through
its own command API (``case_work``: assess, then act) in analyst threads — each step a signed
event that de-eco's outbox delivers to the origin and to the coordinator. Each node has its
own SQLite file (``--db sqlite``, the default) or its own fresh PostgreSQL database (``--db
postgresql``, on IHX_BENCH_DATABASE_URL's server, dropped afterwards).

First nl-eokm's intake takes one report per case (hosted in DE), de-eco opens the cases. Then:

- sustained: N events (four per case: assessed, law enforcement, host notice, removed) made as
  fast as de-eco's analysts make them; the clock runs from the first event made at de-eco to
  the last one applied at the origin (and at the coordinator). Also de-eco's own making rate
  and each process's CPU time per event. Twice: 128 analysts making one call per step
  (``assess`` / ``act``, as through the Cases service), and 8 making the next step of 100 cases
  per call (``case_work.run``, a tool's bulk action);
- latency: events made at a steady 100/s; per event, its time at de-eco (``at``, set in the
  transaction that records it) → stored at the origin (one clock: the same machine).

Machine reference, measured in the same run: Ed25519 verify/s and SQLite Core bulk insert rows/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common as common
from exchange_throughput import ed25519_verify_rate, sqlite_insert_rate
from sqlalchemy import Engine, text

from exchange.client.stubs import IntakeClient
from exchange.store.engine import open_engine
from exchange.tools.provision import MemberPlan, provision_federation
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb

DRIVER = Path(__file__).resolve().parent / "lifecycle_driver.py"
NL, DE, COORDINATOR = "nl-eokm", "de-eco", "inhope"
EVENTS_PER_CASE = 4
PACED_RATE = 100.0
# The holder's analysts in the sustained runs: many callers of one step each, or a few callers
# of the next step of many cases each (a tool's bulk action).
SINGLE_CALLERS = 128
BULK_CALLERS, BULK = 8, 100


def request(i: int, run: str) -> ipb.SubmitReportRequest:
    digest = hashlib.sha256(f"lc:{run}:{i}".encode()).hexdigest()
    return ipb.SubmitReportRequest(
        url=f"https://files.example.de/{run}/lc/{i}/photo.jpg",
        site_type=pb.SITE_TYPE_IMAGE_HOST,
        items=[
            pb.Item(
                hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=digest)],
                classification=pb.CLASSIFICATION_BASELINE,
                media_type=pb.MEDIA_TYPE_IMAGE,
                age_group=pb.AGE_GROUP_PREPUBESCENT,
            )
        ],
        client_ref=str(i),
    )


# -- the nodes ----------------------------------------------------------------------------------


def scalar(db: Engine, sql: str, **params: Any) -> Any:
    with db.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def wait_for(db: Engine, sql: str, target: int, timeout: float, **params: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(scalar(db, sql, **params)) >= target:
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {target} rows: {sql}")


class Run:
    """The federation, its three processes and their databases."""

    def __init__(self, root: Path, pg: Any) -> None:
        self.root = root
        self.fed = provision_federation(
            root / "fed",
            [
                MemberPlan(NL, "EOKM", ("NL",)),
                MemberPlan(DE, "eco", ("DE",)),
                MemberPlan(COORDINATOR, "INHOPE", ()),
            ],
            coordinator=COORDINATOR,
            now=datetime.now(UTC),
            orphan_rules={},
            country_networks={"185.107.56.0/22": "NL", "5.9.0.0/16": "DE"},
            asn_networks={"5.9.0.0/16": (24940, "Hetzner Online GmbH")},
            static_hosts={"files.example.de": ["5.9.10.20"]},
            database_url=pg.new if pg is not None else None,
        )
        self.db = {m: open_engine(self.fed.settings[m].database_url) for m in (NL, DE, COORDINATOR)}
        self.jobs = root / "jobs"
        self.jobs.mkdir()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.job_count = 0

    def start(self) -> None:
        for m in (NL, COORDINATOR):
            self.procs[m] = common.start_node(self.fed.config_path(m), self.root / f"{m}.log")
        driver = [sys.executable, str(DRIVER), "--config", str(self.fed.config_path(DE))]
        self.procs[DE] = common.start_process(
            [*driver, "--jobs", str(self.jobs)], self.root / f"{DE}.log"
        )
        for m in (NL, DE, COORDINATOR):
            common.wait_ready(self.fed.settings[m].listen, timeout=60)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each node's process has used so far."""
        return {member: common.cpu_seconds(proc.pid) for member, proc in self.procs.items()}

    def stop(self) -> None:
        common.stop(self.procs.values(), timeout=20)
        for db in self.db.values():
            db.dispose()

    def open_cases(self, run: str, n: int) -> list[str]:
        """n reports to nl-eokm's intake, each a new case at de-eco; their case ids."""
        before = int(scalar(self.db[NL], "select count(*) from deliveries"))
        token = self.fed.token(NL, ttl=900)
        with IntakeClient(self.fed.settings[NL].listen, token=token, timeout=600) as client:
            for r in client.submit_requests(request(i, run) for i in range(n)):
                if r.error_code:
                    raise SystemExit(f"intake refused a report: {r.error_code}")
        wait_for(self.db[NL], "select count(*) from deliveries", before + n, 600)
        with self.db[NL].connect() as conn:
            rows = conn.execute(
                text(
                    "select d.remote_case_id from deliveries d join reports r "
                    "on r.seq = d.report_seq where r.url like :p"
                ),
                {"p": f"%/{run}/lc/%"},
            ).scalars()
            return sorted(set(rows))

    def job(self, cases: list[str], *, threads: int, rate: float | None, bulk: int = 1) -> Path:
        """Hand de-eco's analysts a job (atomically: the driver sees it whole or not at all)."""
        n = self.job_count
        self.job_count += 1
        spec = {
            "cases": cases,
            "threads": threads,
            "bulk": bulk,
            "rate": rate,
            "ack": str(self.root / f"{n}.ack"),
        }
        tmp = self.jobs / f"{n}.tmp"
        tmp.write_text(json.dumps(spec))
        tmp.rename(self.jobs / f"{n}.json")
        return self.jobs / f"{n}.done"

    def events(self, member: str, cases: list[str]) -> list[tuple[str, int, int]]:
        """(event id, at, stored_at) in µs of the cases' events held at ``member``."""
        out: list[tuple[str, int, int]] = []
        with self.db[member].connect() as conn:
            for start_at in range(0, len(cases), 500):
                part = cases[start_at : start_at + 500]
                rows = conn.execute(
                    text(
                        "select id, at, stored_at from case_events where case_id in :ids"
                    ).bindparams(_expanding("ids")),
                    {"ids": part},
                )
                out.extend((r.id, r.at, r.stored_at) for r in rows)
        return out

    def wait_events(self, cases: list[str], n: int, timeout: float) -> None:
        for member in (DE, NL, COORDINATOR):
            deadline = time.monotonic() + timeout
            while len(self.events(member, cases)) < n:
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out waiting for {n} events at {member}")
                time.sleep(0.1)


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.05)


# -- the figures ---------------------------------------------------------------------------------


def sustained(run: Run, cases: list[str], threads: int, bulk: int) -> dict[str, Any]:
    n = len(cases) * EVENTS_PER_CASE
    how = (
        f"{threads} analysts, one call per step"
        if bulk == 1
        else f"{threads} analysts, the next step of {bulk} cases per call"
    )
    print(f"sustained: {n:,} events on {len(cases):,} cases as fast as de-eco makes them ({how}) …")
    cpu_before = run.cpu_seconds()
    done = run.job(cases, threads=threads, rate=None, bulk=bulk)
    wait_file(done, 600)
    run.wait_events(cases, n, 600)
    cpu_after = run.cpu_seconds()
    made = run.events(DE, cases)
    first = min(at for _, at, _ in made)
    made_s = (max(at for _, at, _ in made) - first) / 1e6
    out: dict[str, Any] = {"made_per_s": n / made_s}
    # CPU per event in each process (including the holder's analysts): the cost, whatever else
    # the machine runs meanwhile; two cores' worth of it bounds the rate on this machine.
    cpu = {m: (cpu_after[m] - cpu_before[m]) * 1000 / n for m in (DE, NL, COORDINATOR)}
    out["cpu_ms_per_event"] = {m: round(v, 3) for m, v in cpu.items()}
    for member, label in ((NL, "origin"), (COORDINATOR, "coordinator")):
        last = max(stored for _, _, stored in run.events(member, cases))
        out[f"to_{label}_per_s"] = n / ((last - first) / 1e6)
    print(f"  made at de-eco (holder): {out['made_per_s']:,.0f} events/s")
    print(f"  made at de-eco → applied at the origin: {out['to_origin_per_s']:,.0f} events/s")
    print(
        "  made at de-eco → applied at the coordinator: "
        f"{out['to_coordinator_per_s']:,.0f} events/s"
    )
    print(
        "  CPU per event: "
        + ", ".join(f"{m} {v:.3f} ms" for m, v in cpu.items())
        + f"; all {sum(cpu.values()):.3f} ms (= {_cpus() * 1000 / sum(cpu.values()):,.0f} "
        f"events/s on {_cpus()} cores, were nothing else running)"
    )
    return out


def latency(run: Run, cases: list[str]) -> dict[str, Any]:
    n = len(cases) * EVENTS_PER_CASE
    print(f"latency: {n:,} events at {PACED_RATE:.0f}/s …")
    done = run.job(cases, threads=8, rate=PACED_RATE)
    wait_file(done, 600)
    run.wait_events(cases, n, 300)
    made = {e: at for e, at, _ in run.events(DE, cases)}
    out: dict[str, Any] = {}
    for member, label in ((NL, "origin"), (COORDINATOR, "coordinator")):
        ms = [(stored - made[e]) / 1000 for e, _, stored in run.events(member, cases)]
        out[label] = {
            "p50": round(common.median(ms), 1),
            "p99": round(common.percentile(ms, 99), 1),
            "max": round(max(ms), 1),
        }
        print(
            f"  action at de-eco → stored at the {label}: p50 {out[label]['p50']:.1f} ms, "
            f"p99 {out[label]['p99']:.1f} ms, max {out[label]['max']:.1f} ms ({len(ms):,} events)"
        )
    span = (max(made.values()) - min(made.values())) / 1e6
    out["paced_rate"] = round(n / span, 1) if span else None
    return out


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--events", type=int, help="events in each sustained run")
    p.add_argument("--keep", action="store_true", help="keep the nodes' directories")
    args = p.parse_args()
    pg = common.PostgresDatabases() if args.db == "postgresql" else None
    try:
        run_bench(args, pg)
    finally:
        if pg is not None:
            pg.close()


def run_bench(args: Any, pg: Any) -> None:
    n = args.events or (8_000 if args.quick else 20_000)
    paced_s = 8 if args.quick else 20
    root = Path(tempfile.mkdtemp(prefix="ihx-bench-lc-"))
    print("machine reference …")
    verify = ed25519_verify_rate(1.0)
    sqlite_rows = sqlite_insert_rate(50_000 if args.quick else 200_000, root)
    print(f"  Ed25519 verify/s: {verify:,.0f}")
    print(f"  SQLite Core bulk insert rows/s (WAL, synchronous=FULL): {sqlite_rows:,.0f}")
    run = Run(root, pg)
    run.start()
    try:
        n_cases = n // EVENTS_PER_CASE
        paced_cases = int(PACED_RATE * paced_s) // EVENTS_PER_CASE
        print(f"opening {2 * n_cases + paced_cases:,} cases at de-eco (reports from nl-eokm) …")
        singly, in_bulk = run.open_cases("s", n_cases), run.open_cases("b", n_cases)
        paced = run.open_cases("p", paced_cases)
        one = sustained(run, singly, SINGLE_CALLERS, 1)
        bulk = sustained(run, in_bulk, BULK_CALLERS, BULK)
        slow = latency(run, paced)
    finally:
        run.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    common.emit(
        {
            "bench": "lifecycle",
            "db": args.db,
            "events": n,
            # one call per step (assess / act), SINGLE_CALLERS at once
            "single_calls": _figures(one),
            # the next step of BULK cases per call (case_work.run), BULK_CALLERS at once
            "bulk_calls": _figures(bulk),
            "latency_at_100_per_s_ms": slow["origin"],
            "latency_to_coordinator_ms": slow["coordinator"],
            "paced_rate": slow["paced_rate"],
            "machine": {
                "cpus": _cpus(),
                "ed25519_verify_per_s": round(verify),
                "sqlite_insert_rows_per_s": round(sqlite_rows),
            },
            "goal_sustained_events_per_s": 2000,
            "goal_p99_ms": 1000,
        }
    )


def _figures(out: dict[str, Any]) -> dict[str, Any]:
    return {
        "made_at_holder_per_s": round(out["made_per_s"]),
        "sustained_events_per_s": round(out["to_origin_per_s"]),
        "sustained_to_coordinator_per_s": round(out["to_coordinator_per_s"]),
        "cpu_ms_per_event": out["cpu_ms_per_event"],
    }


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
