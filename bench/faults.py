"""Fault injection: real node processes on loopback, killed, frozen and cut off mid-burst.

Three members (nl-eokm, de-eco, the coordinator inhope) run as child processes of this script,
each with its own SQLite file. An analyst bursts DE-hosted reports into nl-eokm's intake; the
scenarios hit the exchange to de-eco while that happens:

* ``kill-receiver``: ``kill -9`` of de-eco at random instants during the burst, restarted each
  time;
* ``kill-sender``: ``kill -9`` of nl-eokm at random instants (the analyst's client reconnects
  and goes on; only answered reports count as accepted), restarted each time;
* ``peer-down``: de-eco down for a stretch while the burst goes on, then back;
* ``slow-peer``: de-eco frozen (SIGSTOP) past the receipt deadline, then thawed (SIGCONT).

After each scenario, once nl-eokm's outbox has drained: every report nl-eokm acknowledged must
be at de-eco exactly once (``lost`` and ``duplicated`` count the others), and every node's
routing log must verify (``exchange.checkpoints.verify_log``). Figures per scenario: reports
accepted and checked, lost, duplicated, drain time (last fault → everything receipted) and the
worst recovery time (restart/thaw → first new report stored at de-eco).

``python bench/faults.py [--quick]``: quick ≤ 60 s; the full run repeats each kill scenario
more often with larger bursts. The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
for extra in (ROOT / "proto", ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

READY = "ready"
NL, DE, COORDINATOR = "nl-eokm", "de-eco", "inhope"
TUNING = (
    "\n[exchange]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\nlinger_ms = 2\n"
    "manifest_poll_s = 0.5\nreceipt_timeout_s = 2\n"
)


# -- a node as a child process -------------------------------------------------------------------


def run_node(config: str) -> int:
    """Child side: start the node, print ``ready``, run until SIGTERM."""
    import logging

    from exchange.node import Node
    from exchange.settings import load_settings

    logging.basicConfig(level=logging.ERROR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = Node(load_settings(config))
    node.start()
    print(READY, flush=True)
    while not stop.wait(0.5):
        pass
    node.stop(grace=1.0)
    return 0


class NodeProc:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            offset = out.tell()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "proto")])
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--node", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("rb") as f:
                f.seek(offset)
                if READY in f.read().decode(errors="replace").splitlines():
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"node {self.config} did not start; see {self.log}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


# -- the federation ------------------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path) -> None:
        from exchange.provision import MemberPlan, provision_federation

        plans = (
            MemberPlan(NL, "EOKM", ("NL",)),
            MemberPlan(DE, "eco", ("DE",)),
            MemberPlan(COORDINATOR, "INHOPE", ()),
        )
        self.fed = provision_federation(
            root / "fed",
            plans,
            coordinator=COORDINATOR,
            now=datetime.now(UTC),
            orphan_rules={},
            country_networks={"185.107.56.0/22": "NL", "5.9.0.0/16": "DE"},
            asn_networks={},
            static_hosts={
                "hosting-nl.example": ["185.107.56.10"],
                "hosting-de.example": ["5.9.1.1"],
            },
            extra_settings=TUNING,
        )
        self.procs = {
            m: NodeProc(self.fed.config_path(m), root / f"{m}.log") for m in (NL, DE, COORDINATOR)
        }
        self.token = self.fed.token(NL)
        self.serial = 0
        self._engines: dict[str, Any] = {}

    def start(self) -> None:
        for proc in self.procs.values():
            proc.start()

    def close(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for engine in self._engines.values():
            engine.dispose()

    # the store
    def scalar(self, member: str, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        from exchange.store.engine import open_engine

        engine = self._engines.get(member)
        if engine is None:
            engine = self._engines[member] = open_engine(self.fed.settings[member].database_url)
        for attempt in range(50):
            try:
                with engine.connect() as conn:
                    return conn.execute(text(sql), params).scalar()
            except Exception:
                if attempt == 49:
                    raise
                time.sleep(0.05)
        return None

    def ids_at(self, member: str, ids: list[str]) -> tuple[int, int]:
        """(present, duplicated) of ``ids`` in ``member``'s reports and case links."""
        from sqlalchemy import text

        self.scalar(member, "SELECT 1")
        engine = self._engines[member]
        present = duplicated = 0
        with engine.connect() as conn:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join(f":i{j}" for j in range(len(part)))
                params = {f"i{j}": v for j, v in enumerate(part)}
                rows = conn.execute(
                    text(f"SELECT id, count(*) FROM reports WHERE id IN ({marks}) GROUP BY id"),
                    params,
                ).all()
                present += len(rows)
                duplicated += sum(n - 1 for _, n in rows)
                links = conn.execute(
                    text(
                        "SELECT report_id, count(*) FROM case_reports"
                        f" WHERE report_id IN ({marks}) GROUP BY report_id HAVING count(*) > 1"
                    ),
                    params,
                ).all()
                duplicated += sum(n - 1 for _, n in links)
        return present, duplicated

    def drained(self) -> bool:
        return (
            self.scalar(NL, "SELECT count(*) FROM outbox") == 0
            and self.scalar(NL, "SELECT count(*) FROM batches WHERE receipted_at IS NULL") == 0
        )

    def wait_drained(self, timeout: float) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.drained():
                    return time.monotonic() - started
            except Exception:
                pass
            time.sleep(0.05)
        return None

    def logs_verify(self) -> bool:
        from exchange.checkpoints import load_checkpoints, load_entries, verify_log

        ok = True
        for member in self.procs:
            self.scalar(member, "SELECT 1")
            with self._engines[member].connect() as conn:
                verdict = verify_log(
                    list(load_entries(conn)), load_checkpoints(conn, member), self.fed.manifest
                )
            ok = ok and verdict.ok
        return ok

    # the analyst
    def burst(self, n: int, accepted: list[str], stop: threading.Event) -> None:
        """Submit ``n`` DE-hosted reports to nl-eokm, reconnecting after failures."""
        from exchange.client import IntakeClient
        from exchange.domain import (
            Classification,
            ContentHash,
            HashAlgorithm,
            Submission,
            make_facts,
            make_item,
        )

        def submission(i: int) -> Submission:
            import hashlib

            digest = hashlib.sha256(f"fault-{i}".encode()).hexdigest()
            item = make_item([ContentHash(HashAlgorithm.SHA256, digest)], Classification.BASELINE)
            return Submission(f"https://hosting-de.example/f/{i}.jpg", make_facts(), (item,))

        start, self.serial = self.serial, self.serial + n
        pending = list(range(start, start + n))
        deadline = time.monotonic() + 120
        while pending and not stop.is_set() and time.monotonic() < deadline:
            chunk, pending = pending[:100], pending[100:]
            try:
                with IntakeClient(self.fed.settings[NL].listen, token=self.token, timeout=10) as c:
                    for r in c.submit_many([submission(i) for i in chunk], chunk=100, deadline=10):
                        if not r.error_code:
                            accepted.append(r.report_id)
            except Exception:
                # Unanswered: not acknowledged. Retry the chunk (intake is idempotent).
                pending = chunk + pending
                time.sleep(0.1)


# -- scenarios -----------------------------------------------------------------------------------


def scenario(bench: Bench, name: str, n: int, fault: Any) -> dict[str, Any]:
    accepted: list[str] = []
    stop = threading.Event()
    analyst = threading.Thread(target=bench.burst, args=(n, accepted, stop))
    analyst.start()
    recoveries: list[float] = fault(bench, analyst)
    analyst.join(150)
    stop.set()
    drain = bench.wait_drained(120)
    ids = sorted(set(accepted))
    present, duplicated = bench.ids_at(DE, ids)
    return {
        "scenario": name,
        "accepted": len(ids),
        "checked": len(ids),
        "lost": len(ids) - present,
        "duplicated": duplicated,
        "drain_s": None if drain is None else round(drain, 2),
        "worst_recovery_s": round(max(recoveries), 2) if recoveries else 0.0,
        "logs_verify": bench.logs_verify(),
    }


def _recovery(bench: Bench, timeout: float = 60.0) -> float:
    """Seconds until de-eco stores another report (or the outbox is drained)."""
    start = time.monotonic()
    before = bench.scalar(DE, "SELECT count(*) FROM reports")
    while time.monotonic() - start < timeout:
        try:
            if bench.scalar(DE, "SELECT count(*) FROM reports") > before or bench.drained():
                break
        except Exception:
            pass
        time.sleep(0.02)
    return time.monotonic() - start


def kills(member: str, times: int, rng: random.Random) -> Any:
    def fault(bench: Bench, analyst: threading.Thread) -> list[float]:
        out = []
        for _ in range(times):
            time.sleep(rng.uniform(0.2, 1.2))
            proc = bench.procs[member]
            proc.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            proc.start()
            out.append(_recovery(bench))
        return out

    return fault


def peer_down(seconds: float) -> Any:
    def fault(bench: Bench, analyst: threading.Thread) -> list[float]:
        time.sleep(0.3)
        bench.procs[DE].kill()
        time.sleep(seconds)
        bench.procs[DE].start()
        return [_recovery(bench)]

    return fault


def slow_peer(seconds: float) -> Any:
    def fault(bench: Bench, analyst: threading.Thread) -> list[float]:
        time.sleep(0.3)
        bench.procs[DE].signal(signal.SIGSTOP)
        time.sleep(seconds)
        bench.procs[DE].signal(signal.SIGCONT)
        return [_recovery(bench)]

    return fault


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description="Fault injection against real node processes.")
    p.add_argument("--quick", action="store_true", help="finish within 60 s")
    p.add_argument("--node", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=6)
    args = p.parse_args()
    if args.node:
        return run_node(args.node)
    rng = random.Random(args.seed)  # reproducible fault instants
    burst, kills_n = (1500, 3) if args.quick else (10_000, 50)
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="ihx-faults-") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.start()
            plan = [
                ("kill-receiver", burst, kills(DE, kills_n, rng)),
                ("kill-sender", burst, kills(NL, kills_n, rng)),
                ("peer-down", burst // 2, peer_down(3.0 if args.quick else 60.0)),
                ("slow-peer", burst // 2, slow_peer(3.0 if args.quick else 30.0)),
            ]
            for name, n, fault in plan:
                result = scenario(bench, name, n, fault)
                print(json.dumps(result, sort_keys=True), flush=True)
                results.append(result)
        finally:
            bench.close()
    summary = {
        "bench": "faults",
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": len(results),
        "reports_checked": sum(r["checked"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "logs_verify": all(r["logs_verify"] for r in results),
        "worst_recovery_s": max((r["worst_recovery_s"] for r in results), default=0.0),
        "worst_drain_s": max(
            (r["drain_s"] for r in results if r["drain_s"] is not None), default=None
        ),
        "undrained": sum(1 for r in results if r["drain_s"] is None),
        "per_scenario": {r["scenario"]: r for r in results},
    }
    print(json.dumps(summary, sort_keys=True))
    ok = summary["lost"] == 0 and summary["duplicated"] == 0 and summary["logs_verify"]
    return 0 if ok and not summary["undrained"] else 1


if __name__ == "__main__":
    sys.exit(main())
