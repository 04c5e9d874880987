"""CPU seconds per 1,000 reports node B spends receiving a peer's batches, in one process.

Why: exchange_throughput.py measures B's whole process while A feeds it over gRPC on a shared
machine, where one run's figure moves by ±10%, and its databases start empty. This drives B's
receive path alone — ``Receiver.receive`` of real signed 500-report envelopes (verify → each
payload checked → one writer transaction: cases, items, states, first sightings, routing log →
the signed receipt) into a real migrated SQLite file — and counts ``time.process_time`` (every
thread of this process). The envelopes are made first by node A in this process (bulk intake,
then sealed for de-eco as its sender seals them), outside the clock. ``--held N`` starts B with N
open cases and N network hash-index rows, as a node that has run for a while: a look-up that
scans instead of searching shows there (it is invisible on an empty database). For a profile,
run it under ``py-spy record --gil -r 200 -f raw -- python receive_cpu.py --quick``.
"""

from __future__ import annotations

import gc
import random
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import bench_common as common
from exchange_throughput import federation
from intake_cpu import _Context, chunks

from common.clock import system_clock
from exchange.delivery.batches import Batches
from exchange.edge.intake_service import IntakeServicer
from exchange.node import build_node
from exchange.settings import Settings
from exchange.store import peers
from ihx.v1 import exchange_pb2 as xpb

A, B = "nl-eokm", "de-eco"


def envelopes(settings: Settings, n: int) -> list[xpb.Envelope]:
    """N reports taken in by node A and sealed for B: the report envelopes its sender sends."""
    node = build_node(settings)
    node.writer.start()
    try:
        answers = IntakeServicer(node.intake).SubmitReports(iter(chunks(n, "r")), _Context())  # type: ignore[arg-type]
        assert sum(1 for a in answers for r in a.results if not r.error_code) == n
        batches = Batches(
            self_member=A,
            peer=B,
            key=node.key,
            manifest=node.manifests.current,
            engine=node.engine,
            writer=node.writer,
            clock=system_clock,
            tuning=settings.exchange,
        )
        node.writer.execute(lambda tx: peers.ensure(tx.conn, B))  # as A's sender does first
        out: list[xpb.Envelope] = []
        announced = 0
        while (batch := batches.seal_next(announced)) is not None:
            if batch.last_announcement is not None:
                announced = batch.last_announcement
            else:
                out.append(batch.envelope)
        return out
    finally:
        node.writer.stop()


def hold(db: Path, rows: int) -> None:
    """``rows`` open cases and ``rows`` hash-index rows of another member, as held after a while."""
    rnd = random.Random(16)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO hash_index VALUES (?, ?, 'us-ncmec', ?, ?, 'baseline', 0, NULL)",
            (
                ("sha256", f"{rnd.getrandbits(256):064x}", f"c-{i:032x}", f"r-{i:032x}")
                for i in range(rows)
            ),
        )
        conn.executemany(
            "INSERT INTO cases (id, url_key, url, hosting_country, status, opened_at, updated_at,"
            " first_report_id) VALUES (?, ?, ?, 'DE', 'open', 0, 0, ?)",
            (
                (f"c-{i:032x}", rnd.randbytes(32), f"https://held.example/{i}", f"r-{i:032x}")
                for i in range(rows)
            ),
        )


def one_run(
    settings: Settings, pristine: Path, envs: list[xpb.Envelope], run: str, held: int
) -> float:
    db = pristine.with_name(f"{run}.db")
    shutil.copyfile(pristine, db)
    if held:
        hold(db, held)
    database = settings.database.model_copy(update={"url": f"sqlite:///{db}"})
    node = build_node(settings.model_copy(update={"database": database}))
    node.writer.start()
    gc.collect()
    gc.freeze()  # as ``ihx node run`` does once started
    try:
        cpu = time.process_time()
        for envelope in envs:
            node.receiver.receive(envelope)
        spent = time.process_time() - cpu
    finally:
        node.writer.stop()
        gc.unfreeze()
    return spent / sum(len(e.payloads) for e in envs) * 1000


def main() -> None:
    parser = common.parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--held", type=int, default=0, help="open cases and index rows B holds")
    args = parser.parse_args()
    n = 10_000 if args.quick else 40_000
    with common.scratch("ihx-receive-cpu-") as root:
        fed = federation(root, None)
        b = fed.settings[B]
        pristine = root / "pristine.db"
        shutil.copyfile(b.database_url.removeprefix("sqlite:///"), pristine)
        envs = envelopes(fed.settings[A], n)
        figures: list[float] = []
        for i in range(args.runs):
            figures.append(one_run(b, pristine, envs, f"r{i}", args.held))
            print(f"  run {i + 1}: {figures[-1]:.3f} CPU s per 1,000 reports", flush=True)
        result: dict[str, Any] = {
            "bench": "receive_cpu",
            "reports": n,
            "held": args.held,
            "cpu_s_per_1000_reports": round(common.median(figures), 3),
            "runs": [round(f, 3) for f in figures],
        }
        common.emit(result)


if __name__ == "__main__":
    main()
