"""Takedown at scale: 100,000 open illegal items watched and re-checked by the node's scheduler.

One node (nl-eokm, SQLite) built by the composition root with ``[takedown]`` on; its re-checks
routed to a ``ThreadingHTTPServer`` in its own process (``bench/takedown.py``'s). Its intake takes
N reports (hosted in NL, over 500 host names), its case work assesses every case baseline in
bulk; then rounds of the scheduler's passes (``Rechecker.run_once``, ``[takedown] batch`` due
watches claimed per pass) until nothing is due, the clock moved an hour between rounds. Each
check is re-traced, asked by HEAD, stored as evidence with a ``rechecked`` routing-log entry in
a group transaction — the whole path, not the prober alone (that is ``bench/takedown.py``).

Printed per round: checks/s through the scheduler, passes, RSS after the round — flat across
rounds, since a pass holds at most ``batch`` watches — and the database rows per check.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_common as common
from takedown import _serve, rss_mib

from exchange.domain import (
    Classification,
    ContentHash,
    HashAlgorithm,
    Submission,
    make_facts,
    make_item,
)
from exchange.lifecycle.model import Assessment
from exchange.lifecycle.work import Command
from exchange.node import build_node
from exchange.store import reports
from exchange.tools.provision import MemberPlan, provision_federation

NL, COORDINATOR = "nl-eokm", "inhope"
HOSTS = 500
START = datetime.now(UTC).replace(microsecond=0)


class Clock:
    """The node's clock, moved an hour between rounds (what a day of passes would see)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def submission(i: int) -> Submission:
    digest = f"{i:064x}"
    item = make_item([ContentHash(HashAlgorithm.SHA256, digest)], Classification.BASELINE)
    return Submission(f"http://host{i % HOSTS}.example/p/{i}.jpg", make_facts(), (item,))


def seed(node: Any, n: int) -> list[str]:
    """N cases held here, each with one item assessed baseline (intake and case work in bulk)."""
    futures = [node.intake.submit_prepared(node.intake.prepare(submission(i))) for i in range(n)]
    ids = [f.result().report_id for f in futures]
    with node.engine.connect() as conn:
        held = reports.existing(conn, ids)
    cases = [str(held[rid]) for rid in ids]
    for start in range(0, n, 1000):
        commands = [
            Command.assess(c, [], Assessment(Classification.BASELINE))
            for c in cases[start : start + 1000]
        ]
        refused = [r for r in node.case_work.run(commands) if isinstance(r, Exception)]
        if refused:
            raise SystemExit(f"assessment refused: {refused[0]}")
    return cases


def round_(node: Any) -> dict[str, Any]:
    """Passes until nothing is due: checks, wall time, passes, RSS after."""
    checks = passes = 0
    started = time.perf_counter()
    while True:
        done = node.rechecker.run_once()
        passes += 1
        checks += done.checked
        if done.checked == 0:
            break
    wall = time.perf_counter() - started
    return {
        "checks": checks,
        "passes": passes,
        "wall_s": round(wall, 2),
        "checks_per_s": round(checks / wall, 1) if wall else 0.0,
        "rss_mib": round(rss_mib(), 1),
    }


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=None, help="open items (100,000; 10,000 quick)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=5000, help="[takedown] batch: watches per pass")
    args = p.parse_args()
    # The coordinator is not started: its events wait in the outbox, and the sender says so.
    logging.getLogger("exchange.delivery").setLevel(logging.CRITICAL)
    n = args.items or (10_000 if args.quick else 100_000)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    port: int = parent.recv()

    with tempfile.TemporaryDirectory(prefix="ihx-bench-takedown-") as tmp:
        fed = provision_federation(
            Path(tmp) / "fed",
            [MemberPlan(NL, "EOKM", ("NL",)), MemberPlan(COORDINATOR, "INHOPE", ())],
            coordinator=COORDINATOR,
            now=START,
            orphan_rules={},
            country_networks={"185.107.56.0/22": "NL"},
            asn_networks={"185.107.56.0/22": (43350, "NForce Entertainment B.V.")},
            static_hosts={f"host{h}.example": [f"185.107.56.{h % 250 + 1}"] for h in range(HOSTS)},
            extra_settings=(
                "\n[takedown]\nenabled = true\n"
                'user_agent = "ihx-bench/1 (benchmark; +https://hotline.example/recheck)"\n'
                f"tick_s = 3600\nbatch = {args.batch}\n"
            ),
        )
        clock = Clock()
        node = build_node(fed.settings[NL], clock=clock, route=lambda _a, _p: ("127.0.0.1", port))
        node.start()
        try:
            rss_start = rss_mib()
            t = time.perf_counter()
            seed(node, n)
            seeded_s = time.perf_counter() - t
            rss_seeded = rss_mib()
            rounds = []
            for _ in range(args.rounds):
                rounds.append(round_(node))
                clock.offset += timedelta(hours=1, minutes=1)
            checks_rows = node.takedown_views.status()
        finally:
            node.stop(grace=1)
    parent.send("stop")
    server.join(timeout=10)

    print(f"takedown scheduled: {n:,} open items over {HOSTS} hosts, batch {args.batch:,}")
    print(
        f"  seeded (intake + bulk assessment) in {seeded_s:.1f} s; RSS {rss_start:.1f} → "
        f"{rss_seeded:.1f} MiB"
    )
    for i, r in enumerate(rounds, 1):
        print(
            f"  round {i}: {r['checks']:,} checks in {r['passes']} passes, "
            f"{r['checks_per_s']:,.0f} checks/s through the scheduler, RSS {r['rss_mib']:.1f} MiB"
        )
    common.emit(
        {
            "bench": "takedown_scheduled",
            "items": n,
            "batch": args.batch,
            "seed_s": round(seeded_s, 1),
            "rss_mib_start": round(rss_start, 1),
            "rss_mib_seeded": round(rss_seeded, 1),
            "rounds": rounds,
            "watches": checks_rows.watches,
        }
    )


if __name__ == "__main__":
    sys.exit(main())
