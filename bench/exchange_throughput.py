"""Two nodes on this machine: sustained reports/s intake → receipted storage, latency, ceilings.

Node A (nl-eokm) and node B (de-eco) run as separate processes (`ihx node run`), each with its
own SQLite file (`--db sqlite`, the default) or its own fresh PostgreSQL database (`--db
postgresql`, on IHX_BENCH_DATABASE_URL's server, dropped afterwards); every report is hosted in B's
country, so A forwards all of them. The client streams reports to A's bulk intake.

- sustained: N reports streamed as fast as A takes them; the clock stops when B has stored all
  and A holds a signed receipt for each;
- latency: reports paced at 1,000/s; per report, A's intake time → B's receipt time (one clock);
- ceilings, measured in the same run: a bare gRPC bidirectional stream of report-sized messages
  doing no work, Ed25519 verify/s, SQLite Core bulk insert rows/s (WAL, synchronous=FULL) and,
  with `--db postgresql`, PostgreSQL Core bulk insert rows/s.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common as common
import grpc
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)

from auth.keys import SigningKey
from exchange.client.stubs import IntakeClient
from exchange.store.engine import open_engine
from exchange.times import from_micros
from exchange.tools.provision import MemberPlan, free_port, provision_federation
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb

IHX = str(Path(sys.executable).parent / "ihx")


def request(i: int, run: str) -> ipb.SubmitReportRequest:
    digest = hashlib.sha256(f"{run}:{i}".encode()).hexdigest()
    return ipb.SubmitReportRequest(
        url=f"https://files.example.de/{run}/album/{i}/photo.jpg",
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


# -- ceilings ---------------------------------------------------------------------------------


def ed25519_verify_rate(seconds: float) -> float:
    key = SigningKey.generate()
    msg = os.urandom(1024)
    sig = key.sign(msg)
    public = key.public
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for _ in range(200):
            public.verify(sig, msg)
        n += 200
    return n / (time.perf_counter() - t)


def sqlite_insert_rate(rows: int, directory: Path) -> float:
    engine = create_engine(f"sqlite:///{directory / 'ceiling.db'}")

    @event.listens_for(engine, "connect")
    def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")

    return insert_rate(engine, rows)


def insert_rate(engine: Engine, rows: int) -> float:
    """Core bulk inserts of report-like rows, 1,000 per statement, one transaction."""
    md = MetaData()
    table = Table(
        "t",
        md,
        Column("id", String(40), primary_key=True),
        Column("url", Text),
        Column("key", LargeBinary),
        Column("n", Integer),
    )
    md.create_all(engine)
    data = [
        {
            "id": f"r-{i:032x}",
            "url": f"https://files.example.de/a/{i}",
            "key": os.urandom(32),
            "n": i,
        }
        for i in range(rows)
    ]
    t = time.perf_counter()
    with engine.begin() as conn:
        for start in range(0, rows, 1000):
            conn.execute(table.insert(), data[start : start + 1000])
    rate = rows / (time.perf_counter() - t)
    engine.dispose()
    return rate


def _echo_server(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield b"k"

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(stream)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def bare_stream_rate(message_bytes: int, count: int) -> float:
    port = free_port()
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=_echo_server, args=(port, ready), daemon=True)
    proc.start()
    ready.wait(10)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.stream_stream("/bench.Echo/Stream")
        payload = os.urandom(message_bytes)
        t = time.perf_counter()
        n = sum(1 for _ in call(iter([payload] * count), timeout=120))
        rate = n / (time.perf_counter() - t)
        channel.close()
        return rate
    finally:
        proc.terminate()
        proc.join(5)


# -- the two nodes ------------------------------------------------------------------------------


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([IHX, "node", "run", "--config", str(config)], stdout=out, stderr=out)


def wait_ready(address: str, timeout: float = 30.0) -> None:
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    channel.close()


def count(db: Engine, sql: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def wait_for(db: Engine, sql: str, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count(db, sql) >= target:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {target} rows: {sql}")


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = p.parse_args()
    pg = common.PostgresDatabases() if args.db == "postgresql" else None
    try:
        run(args, pg)
    finally:
        if pg is not None:
            pg.close()


def run(args: Any, pg: Any) -> None:
    n = 20_000 if args.quick else 100_000
    paced_seconds = 5 if args.quick else 20
    root = Path(tempfile.mkdtemp(prefix="ihx-bench-"))

    print("ceilings …")
    sample = request(0, "x").SerializeToString()
    verify = ed25519_verify_rate(1.0)
    sqlite_rows = sqlite_insert_rate(50_000 if args.quick else 200_000, root)
    pg_rows = None
    if pg is not None:
        ceiling = create_engine(pg.new())
        pg_rows = insert_rate(ceiling, 50_000 if args.quick else 200_000)
        ceiling.dispose()
    bare_single = bare_stream_rate(len(sample) + 200, 5_000 if args.quick else 20_000)
    bare_batch = bare_stream_rate((len(sample) + 200) * 500, 100 if args.quick else 400)
    print(f"  Ed25519 verify/s: {verify:,.0f}")
    print(f"  SQLite Core bulk insert rows/s (WAL, synchronous=FULL): {sqlite_rows:,.0f}")
    if pg_rows is not None:
        print(f"  PostgreSQL Core bulk insert rows/s: {pg_rows:,.0f}")
    print(f"  bare gRPC bidi stream, {len(sample) + 200} B messages: {bare_single:,.0f} msg/s")
    print(
        f"  bare gRPC bidi stream, 500-report messages: {bare_batch:,.0f} msg/s "
        f"(= {bare_batch * 500:,.0f} reports/s)"
    )

    fed = provision_federation(
        root / "fed",
        [MemberPlan("nl-eokm", "A", ("NL",)), MemberPlan("de-eco", "B", ("DE",))],
        coordinator="de-eco",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={"185.107.56.0/22": "NL", "5.9.0.0/16": "DE"},
        asn_networks={"5.9.0.0/16": (24940, "Hetzner Online GmbH")},
        static_hosts={"files.example.de": ["5.9.10.20"]},
        database_url=pg.new if pg is not None else None,
    )
    a_db = open_engine(fed.settings["nl-eokm"].database_url)
    b_db = open_engine(fed.settings["de-eco"].database_url)
    procs = [start(fed.config_path(m), root / f"{m}.log") for m in ("nl-eokm", "de-eco")]
    try:
        a_addr = fed.settings["nl-eokm"].listen
        wait_ready(a_addr)
        wait_ready(fed.settings["de-eco"].listen)

        print(f"sustained: {n:,} reports streamed to A …")
        with IntakeClient(a_addr, token=fed.token("nl-eokm", ttl=900), timeout=600) as client:
            t0 = time.monotonic()
            acked = sum(
                1
                for r in client.submit_requests(request(i, "s") for i in range(n))
                if not r.error_code
            )
            t_ack = time.monotonic()
        t_b = wait_for(b_db, "select count(*) from reports where role='received'", n, 600)
        t_r = wait_for(a_db, "select count(*) from deliveries", n, 600)
        sustained = n / (max(t_b, t_r) - t0)
        intake_rate = acked / (t_ack - t0)
        print(f"  intake at A acknowledged: {intake_rate:,.0f} reports/s")
        print(f"  intake at A → stored at B and receipted at A: {sustained:,.0f} reports/s")

        print(f"latency: 1,000 reports/s for {paced_seconds} s …")
        paced_n = 1000 * paced_seconds

        def paced() -> Iterator[ipb.SubmitReportRequest]:
            start_t = time.monotonic()
            for i in range(paced_n):
                due = start_t + i / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                yield request(i, "p")

        with IntakeClient(a_addr, token=fed.token("nl-eokm", ttl=900), timeout=600) as client:
            for _ in client.submit_requests(paced(), chunk=5):
                pass
        wait_for(a_db, "select count(*) from deliveries", n + paced_n, 300)
        with a_db.connect() as conn:
            rows = conn.execute(
                text(
                    "select r.received_at, d.receipted_at from reports r join deliveries d "
                    "on d.report_id = r.id where r.url like '%/p/%'"
                )
            ).all()
        latencies = [(from_micros(b) - from_micros(a)).total_seconds() * 1000 for a, b in rows]
        p50, p99 = common.median(latencies), common.percentile(latencies, 99)
        print(
            f"  intake → receipt latency at 1,000/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({len(latencies):,} reports)"
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        a_db.dispose()
        b_db.dispose()

    # Rows written per report across both nodes (report, item, hash, log entries, outbox,
    # delivery, case, case link, hash index, announcement): ~14 → the SQLite-implied ceiling.
    implied = {
        "sqlite_bulk_insert": sqlite_rows / 14,
        "ed25519_verify": verify * 500,
        "bare_grpc_stream_batched": bare_batch * 500,
    }
    if pg_rows is not None:
        implied["postgresql_bulk_insert"] = pg_rows / 14
    binding = min(implied, key=lambda k: implied[k])
    print("implied ceilings (reports/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in implied.items()))
    print(
        f"binding ceiling among those: {binding}; the measured rate is below all of them, so the "
        "per-report Python work of intake and receipt (two processes on two cores) binds first"
        if sustained < implied[binding] * 0.8
        else f"binding ceiling: {binding}"
    )
    common.emit(
        {
            "bench": "exchange",
            "db": args.db,
            "reports": n,
            "intake_ack_per_s": round(intake_rate),
            "sustained_reports_per_s": round(sustained),
            "latency_at_1000_per_s_ms": {"p50": round(p50, 1), "p99": round(p99, 1)},
            "ceilings": {
                "ed25519_verify_per_s": round(verify),
                "sqlite_insert_rows_per_s": round(sqlite_rows),
                **({"postgresql_insert_rows_per_s": round(pg_rows)} if pg_rows else {}),
                "bare_grpc_stream_msgs_per_s": round(bare_single),
                "bare_grpc_stream_500_report_msgs_per_s": round(bare_batch),
            },
            "goal_sustained_reports_per_s": 5000,
            "goal_p99_ms": 100,
        }
    )


if __name__ == "__main__":
    main()
