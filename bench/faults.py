"""Fault injection: real node processes on loopback, killed, cut off, lied to, starved of disk.

Four members run as child processes of this script, each with its own SQLite file: nl-eokm
(the sender: an analyst bursts DE-hosted reports into its intake), de-eco (the receiver),
us-ncmec (another destination, to see that one peer's trouble stays its own) and the coordinator
inhope. de-eco is reached through ``bench/chaos.py``'s proxy — the manifest names the proxy as its
endpoint — and, when this machine allows loop mounts (root), keeps its database on a small ext4
file system of its own (``bench/disk.py``).

Scenarios (``--quick``: each once, briefly; the full run: 50 kills each, longer outages):

* ``kill-receiver`` / ``kill-sender`` / ``kill-both``: ``kill -9`` of de-eco, of nl-eokm, or of
  each in turn, at random instants while the analyst keeps bursting 10,000-report batches;
  restarted each time (the analyst's client reconnects; only answered reports count as accepted);
* ``peer-down``: de-eco down for a long stretch (full: 5 min) while reports for it queue up and
  reports for us-ncmec keep flowing; nl-eokm runs the production backoff (1 s → 5 min) here.
  Figures: us-ncmec's intake→receipt latency before and during the outage, connection attempts
  to the dead peer (counted at the proxy) against the backoff's bound per hour, the drain after;
* ``slow-peer``: de-eco's answers delayed past nl-eokm's receipt deadline (requests arrive and are
  stored; receipts come too late), then on time again; ``frozen-peer``: de-eco SIGSTOPped;
* ``connection-resets``: every TCP connection to de-eco reset after a random 1 byte–64 KiB;
  ``stream-resets``: every gRPC stream to de-eco cancelled (RST_STREAM) after 0–3 receipts;
* ``invalid-receipts``: a hostile server in de-eco's place answers every envelope with a receipt
  that must be refused (11 kinds, see chaos.py), then the real de-eco returns;
* ``receiver-db-locked``: another process holds de-eco's database write lock past its busy
  timeout; ``receiver-disk-full``: de-eco's file system full; ``receiver-read-only``: the kernel
  remounts it read-only under the running node, the operator stops it, runs e2fsck, restarts it;
* ``clock-skew-sender±10m`` / ``clock-skew-receiver±10m``: one node's clock 10 minutes off;
* ``lifecycle-kills`` (run after the other kill scenarios): nl-eokm reports cases to de-eco, whose
  analysts (threads in de-eco's own process, ``lifecycle_driver.py``) then work them — four signed
  case events each, delivered to nl-eokm and to the coordinator — while de-eco (the events' sender)
  and nl-eokm (their receiver) are killed with ``kill -9`` in turn at random instants and
  restarted. Afterwards every event de-eco made must be stored and applied (routing log) exactly
  once at nl-eokm and at the coordinator, in sequence order per case, every event the analysts were
  answered for must be among them, and every item's state must be the same at all three.

After each scenario, once everything drained: every report the analyst had answered must be in
nl-eokm's store, every DE-bound report nl-eokm holds must be at de-eco exactly once (one stored
report, one case link), every receipt nl-eokm accepted must verify (de-eco's key, the right
batch, a plausible time), de-eco's database passes ``PRAGMA integrity_check``, and every node's
routing log verifies. ``lost`` and ``duplicated`` count the exceptions (reports and case
events); recovery is the time from the end of a fault (restart, thaw, repair, lock released) to
de-eco storing again (in ``lifecycle-kills``: nl-eokm storing another case event).

``python bench/faults.py [--quick] [--only NAME,…] [--seed N]``; quick ≤ 60 s. The full run
takes over two hours on two cores: its kill scenarios alone push 1.5 million reports, and every
check re-reads and re-verifies everything so far (stores and routing logs). The last line is
one JSON object.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_common as common
from chaos import ChaosProxy, HostilePeer, ResettingPeer
from disk import LoopDisk

ROOT = Path(__file__).resolve().parent.parent

READY = "ready"
NL, DE, US, COORDINATOR = "nl-eokm", "de-eco", "us-ncmec", "inhope"
MEMBERS = (NL, DE, US, COORDINATOR)
# Fast retries keep the kill scenarios about the system, not about waiting; the peer-down
# scenario switches nl-eokm to the production backoff (below) to measure that policy.
TUNING = (
    "\n[exchange]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\nlinger_ms = 2\n"
    "manifest_poll_s = 0.5\nreceipt_timeout_s = 2\n"
)
PRODUCTION_BACKOFF = {"IHX_EXCHANGE_BACKOFF_INITIAL_S": "1", "IHX_EXCHANGE_BACKOFF_MAX_S": "300"}


# -- a node as a child process -------------------------------------------------------------------


def run_node(config: str, skew_s: float, drive: str | None = None) -> int:
    """Child side: start the node (its clock ``skew_s`` off), print ``ready``, run until SIGTERM.

    ``drive``: a directory of case-work jobs its analysts take on, in this process (the holder
    of the lifecycle scenario: ``lifecycle_driver.py``).
    """
    import logging

    from exchange.node import Node
    from exchange.settings import load_settings

    logging.basicConfig(level=logging.ERROR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    skew = timedelta(seconds=skew_s)
    node = Node(load_settings(config), clock=lambda: datetime.now(UTC) + skew)
    node.start()
    print(READY, flush=True)
    if drive:
        from lifecycle_driver import start_driving

        start_driving(node, Path(drive), stop)
    while not stop.wait(0.5):
        pass
    node.stop(grace=1.0)
    return 0


class NodeProc:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self.env = dict(env or {})
        self.skew = 0.0
        self.drive: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        common.compiled_kernels()
        with self.log.open("ab") as out:
            offset = out.tell()
            env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "proto")])
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--node",
                    str(self.config),
                    "--skew",
                    str(self.skew),
                    *(["--drive", str(self.drive)] if self.drive else []),
                ],
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
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


# -- the federation ------------------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path, rng: random.Random) -> None:
        from auth.manifest import bump_epoch, replace_member
        from exchange.tools.provision import MemberPlan, provision_federation

        self.root, self.rng = root, rng
        plans = (
            MemberPlan(NL, "EOKM", ("NL",)),
            MemberPlan(DE, "eco", ("DE",)),
            MemberPlan(US, "NCMEC", ("US",)),
            MemberPlan(COORDINATOR, "INHOPE", ()),
        )
        # An established network: keys and manifest a day old, as when a clock goes wrong.
        started = datetime.now(UTC) - timedelta(days=1)
        self.fed = provision_federation(
            root / "fed",
            plans,
            coordinator=COORDINATOR,
            now=started,
            orphan_rules={},
            country_networks={"185.107.56.0/22": "NL", "5.9.0.0/16": "DE", "8.8.8.0/24": "US"},
            asn_networks={},
            static_hosts={
                "hosting-nl.example": ["185.107.56.10"],
                "hosting-de.example": ["5.9.1.1"],
                "hosting-us.example": ["8.8.8.8"],
            },
            extra_settings=TUNING,
        )
        self.de_port = int(self.fed.settings[DE].listen.rpartition(":")[2])
        self.proxy = ChaosProxy(self.de_port, seed=rng.randrange(1 << 30))
        de = self.fed.manifest.member(DE)
        self.fed.publish(
            bump_epoch(
                replace_member(
                    self.fed.manifest, _with_endpoint(de, f"127.0.0.1:{self.proxy.port}")
                ),
                issued_at=started,
            )
        )
        self.db_paths = {m: self._sqlite_path(m) for m in MEMBERS}
        self.disk: LoopDisk | None = None
        self.disk_unavailable = LoopDisk.available()
        de_env: dict[str, str] = {}
        if self.disk_unavailable is None:
            try:
                self.disk = LoopDisk(root / "de-disk.img", root / "de-data")
            except RuntimeError as error:
                self.disk_unavailable = str(error)
        if self.disk is not None:
            target = self.disk.mountpoint / "node.db"
            shutil.copy2(self.db_paths[DE], target)
            self.db_paths[DE] = target
            de_env["IHX_DATABASE_URL"] = f"sqlite:///{target}"
        self.procs = {
            m: NodeProc(self.fed.config_path(m), root / f"{m}.log", de_env if m == DE else None)
            for m in MEMBERS
        }
        # de-eco's analysts (the lifecycle scenario) take their jobs from here.
        self.jobs = root / "lifecycle-jobs"
        self.jobs.mkdir(exist_ok=True)
        self.procs[DE].drive = self.jobs
        self._tokens: dict[float, tuple[float, str]] = {}
        self.serial = 0
        self._engines: dict[str, Any] = {}

    def _sqlite_path(self, member: str) -> Path:
        url = self.fed.settings[member].database_url
        assert url.startswith("sqlite:///"), url
        path = Path(url.removeprefix("sqlite:///"))
        return path if path.is_absolute() else self.fed.config_path(member).parent / path

    def start(self, members: tuple[str, ...] = MEMBERS) -> None:
        """Start these nodes side by side (each start waits for ``ready``)."""
        threads = [threading.Thread(target=self.procs[m].start) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for m in members:
            if not self.procs[m].alive():
                raise RuntimeError(f"{m} did not start; see {self.procs[m].log}")

    def close(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        self.dispose()
        self.proxy.close()
        if self.disk is not None:
            self.disk.close()

    def dispose(self, member: str | None = None) -> None:
        for m in [member] if member else list(self._engines):
            engine = self._engines.pop(m, None)
            if engine is not None:
                engine.dispose()

    def token(self) -> str:
        """An intake token from nl-eokm's issuer, by nl-eokm's clock, renewed well before expiry."""
        from auth.tokens import Scope, TokenIssuer

        skew = self.procs[NL].skew
        made, token = self._tokens.get(skew, (0.0, ""))
        if time.monotonic() - made > 300:
            shift = timedelta(seconds=skew)
            issuer = TokenIssuer(
                self.fed.keys[NL],
                self.fed.settings[NL].token_issuer,
                NL,
                lambda: datetime.now(UTC) + shift,
            )
            token = issuer.issue("analyst", (Scope.REPORTS_SUBMIT,), ttl=timedelta(seconds=900))
            self._tokens[skew] = (time.monotonic(), token)
        return token

    # the store
    def engine(self, member: str) -> Any:
        from exchange.store.engine import open_engine

        engine = self._engines.get(member)
        if engine is None:
            engine = self._engines[member] = open_engine(f"sqlite:///{self.db_paths[member]}")
        return engine

    def query(self, member: str, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        for attempt in range(100):
            try:
                with self.engine(member).connect() as conn:
                    return list(conn.execute(text(sql), params))
            except Exception:
                if attempt == 99:
                    raise
                time.sleep(0.1)
        return []

    def scalar(self, member: str, sql: str, **params: Any) -> Any:
        return self.query(member, sql, **params)[0][0]

    def drained(self) -> bool:
        return (
            self.scalar(NL, "SELECT count(*) FROM outbox") == 0
            and self.scalar(NL, "SELECT count(*) FROM batches WHERE receipted_at IS NULL") == 0
        )

    def wait_drained(self, timeout: float) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(Exception):
                if self.drained():
                    return time.monotonic() - started
            time.sleep(0.05)
        return None

    def stored_at_de(self) -> int:
        return int(self.scalar(DE, "SELECT count(*) FROM reports WHERE origin_member = :m", m=NL))

    def recovery(self, timeout: float = 120.0) -> float:
        """Seconds until de-eco stores another report from nl-eokm (or nothing is left to send)."""
        start = time.monotonic()
        before = self.stored_at_de()
        while time.monotonic() - start < timeout:
            with contextlib.suppress(Exception):
                if self.stored_at_de() > before or self.drained():
                    break
            time.sleep(0.02)
        return time.monotonic() - start


# -- the analyst ---------------------------------------------------------------------------------


class Analyst(threading.Thread):
    """Submits reports hosted in ``country`` to nl-eokm in chunks, until stopped or ``total``.

    As fast as intake takes them (bursts of tens of thousands), or paced at ``rate`` reports/s.
    After a failure the unanswered chunk is sent again on a new connection (intake is
    idempotent); only answered reports are accepted ones.
    """

    def __init__(
        self, bench: Bench, *, country: str = "de", total: int | None = None,
        rate: float | None = None, chunk: int = 100,
    ) -> None:  # fmt: skip
        super().__init__(name=f"analyst-{country}", daemon=True)
        self.bench, self.country = bench, country
        self.total, self.rate, self.chunk = total, rate, chunk
        self.accepted: list[str] = []
        self.refused = 0
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(180)

    def _requests(self, n: int) -> list[Any]:
        import hashlib

        from exchange.domain import (
            Classification,
            ContentHash,
            HashAlgorithm,
            Submission,
            make_facts,
            make_item,
        )
        from exchange.wire.codec import submission_to_proto

        out = []
        for _ in range(n):
            i = self.bench.serial
            self.bench.serial += 1
            digest = hashlib.sha256(f"fault-{i}".encode()).hexdigest()
            item = make_item([ContentHash(HashAlgorithm.SHA256, digest)], Classification.BASELINE)
            url = f"https://hosting-{self.country}.example/f/{i}.jpg"
            out.append(submission_to_proto(Submission(url, make_facts(), (item,))))
        return out

    def run(self) -> None:
        from exchange.client.stubs import IntakeClient

        sent = 0
        client: IntakeClient | None = None
        pending: list[Any] = []
        started = time.monotonic()
        while not self.stop_event.is_set() and (self.total is None or sent < self.total):
            if not pending:
                n = self.chunk if self.total is None else min(self.chunk, self.total - sent)
                pending = self._requests(n)
            if self.rate:
                due = started + sent / self.rate
                if (pause := due - time.monotonic()) > 0:
                    self.stop_event.wait(pause)
            try:
                if client is None:
                    address = self.bench.fed.settings[NL].listen
                    client = IntakeClient(address, token=self.bench.token(), timeout=15)
                for r in client.submit_requests(pending, chunk=self.chunk, deadline=15):
                    if r.error_code:
                        self.refused += 1
                    else:
                        self.accepted.append(r.report_id)
                sent += len(pending)
                pending = []
            except Exception:
                # Unanswered: not acknowledged. Same chunk again on a new connection.
                if client is not None:
                    client.close()
                    client = None
                self.stop_event.wait(0.1)
        if client is not None:
            client.close()


@contextlib.contextmanager
def analyst(bench: Bench, **kw: Any) -> Iterator[Analyst]:
    a = Analyst(bench, **kw)
    a.start()
    try:
        yield a
    finally:
        a.stop()


# -- checking ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    ids: list[str] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    drain_timeout: float = 180.0


def check(bench: Bench, outcome: Outcome, accepted_so_far: set[str]) -> dict[str, Any]:
    """Drain, then hold every store to the promises (see the module docstring)."""
    from exchange.checkpoints import verify_log
    from exchange.store.routing_log import load_checkpoints, load_entries

    drain = bench.wait_drained(outcome.drain_timeout)
    at_nl = {r[0] for r in bench.query(NL, "SELECT id FROM reports WHERE role = 'origin'")}
    bound_de = {
        r[0]
        for r in bench.query(
            NL, "SELECT id FROM reports WHERE role = 'origin' AND decision_member = :d", d=DE
        )
    }
    at_de = {r[0] for r in bench.query(DE, "SELECT id FROM reports WHERE origin_member = :m", m=NL)}
    lost_at_origin = accepted_so_far - at_nl
    lost_in_transit = bound_de - at_de
    links = bench.query(
        DE,
        "SELECT count(*) FROM (SELECT report_id FROM case_reports GROUP BY report_id"
        " HAVING count(*) > 1)",
    )[0][0]
    open_twice = bench.query(
        DE,
        "SELECT count(*) FROM (SELECT url_key FROM cases WHERE status = 'open'"
        " GROUP BY url_key HAVING count(*) > 1)",
    )[0][0]
    delivered_twice = bench.query(
        NL,
        "SELECT count(*) FROM (SELECT report_seq FROM deliveries WHERE destination = :d"
        " GROUP BY report_seq HAVING count(*) > 1)",
        d=DE,
    )[0][0]
    unknown_at_de = len(at_de - bound_de)  # stored at de-eco, never sent by nl-eokm: impossible
    logs_ok = True
    for member in MEMBERS:
        with bench.engine(member).connect() as conn:
            verdict = verify_log(
                list(load_entries(conn)), load_checkpoints(conn, member), bench.fed.manifest
            )
        logs_ok = logs_ok and verdict.ok
    integrity = bench.scalar(DE, "PRAGMA integrity_check")
    return {
        "scenario": outcome.name,
        "accepted": len(outcome.ids),
        "checked": len(accepted_so_far),
        # Case events (the lifecycle scenario) count with the reports.
        "lost": len(lost_at_origin) + len(lost_in_transit) + outcome.extra.get("events_lost", 0),
        "duplicated": int(links)
        + int(open_twice)
        + int(delivered_twice)
        + unknown_at_de
        + outcome.extra.get("events_duplicated", 0),
        "bad_receipts_accepted": invalid_receipts_kept(bench),
        "drain_s": None if drain is None else round(drain, 2),
        "faults": len(outcome.recoveries),
        "worst_recovery_s": round(max(outcome.recoveries), 2) if outcome.recoveries else 0.0,
        "logs_verify": logs_ok,
        "receiver_integrity": integrity,
        **outcome.extra,
    }


_VERIFIED_BATCHES: set[int] = set()


def invalid_receipts_kept(bench: Bench) -> int:
    """Receipts nl-eokm stored for de-eco's batches that do not verify (each checked once)."""
    from exchange.wire.codec import from_timestamp
    from exchange.wire.envelope import open_receipt
    from ihx.v1 import exchange_pb2 as xpb

    bad = 0
    rows = bench.query(
        NL,
        "SELECT sequence, header, root, payload_count, receipt_body, receipt_signature"
        " FROM batches WHERE destination = :d AND receipted_at IS NOT NULL",
        d=DE,
    )
    for row in rows:
        if row.sequence in _VERIFIED_BATCHES:
            continue
        header = xpb.EnvelopeHeader()
        header.ParseFromString(row.header)
        try:
            open_receipt(
                xpb.SignedReceipt(body=row.receipt_body, signature=row.receipt_signature),
                manifest=bench.fed.manifest,
                issuer=DE,
                sender=NL,
                sequence=row.sequence,
                root=row.root,
                count=row.payload_count,
                sent_at=from_timestamp(header.signed_at),
                now=datetime.now(UTC) + timedelta(hours=1),
            )
            _VERIFIED_BATCHES.add(row.sequence)
        except Exception:
            bad += 1
    return bad


# -- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """How hard each scenario pushes: ``--quick`` (≤ 60 s in all) or the full run."""

    quick: bool
    kills: int  # per kill scenario, one burst each
    burst: int  # reports per burst
    rate: float | None  # the analyst's reports/s during faults (None: as fast as intake takes)
    fault_s: float  # how long a peer stays slow, frozen, locked, full, read-only, ...
    outage_s: float  # peer-down
    batch: int  # reports per fixed-size submission (invalid receipts, clock skew)
    skews: tuple[tuple[str, float], ...]
    lc_cases: int = 400  # lifecycle: cases de-eco's analysts work (four events each) ...
    lc_rate: float = 300.0  # ... at this many events/s in all


QUICK = Profile(True, 1, 1_500, 1_000, 1.5, 3.0, 300, ((NL, 600), (NL, -600)))
FULL = Profile(
    False,
    50,
    10_000,
    None,
    30.0,
    300.0,
    5_000,
    ((NL, 600), (NL, -600), (DE, 600), (DE, -600)),
    lc_cases=20_000,
)

Scenario = Callable[[Bench, Profile], Outcome]


def kills(members: tuple[str, ...], name: str) -> Scenario:
    """Rounds of one burst each; ``kill -9`` at a random instant of the burst, then a restart."""

    def run(bench: Bench, p: Profile) -> Outcome:
        out = Outcome(name)
        pace = 3_000.0  # reports/s intake takes here, roughly: where "mid-burst" falls
        for k in range(max(p.kills, len(members))):
            victim = bench.procs[members[k % len(members)]]
            with analyst(bench, total=p.burst) as a:
                time.sleep(bench.rng.uniform(0.05, 0.9) * p.burst / pace)
                victim.kill()
                time.sleep(bench.rng.uniform(0.0, 0.3))
                victim.start()
                out.recoveries.append(bench.recovery())
                a.join(300)
            out.ids.extend(a.accepted)
        return out

    return run


def peer_down(bench: Bench, p: Profile) -> Outcome:
    """de-eco down for a long stretch under the production backoff; us-ncmec keeps flowing.

    Runs first, while nl-eokm still has the production backoff it was started with.
    """
    out = Outcome("peer-down", drain_timeout=400)
    with analyst(bench, country="us", rate=100, chunk=10):
        time.sleep(1.5 if p.quick else 20.0)
        before = us_latencies(bench)
        # Reports for de-eco keep arriving all through the outage: nl-eokm always has a backlog.
        with analyst(bench, rate=50, chunk=10) as to_de:
            time.sleep(0.3)
            bench.procs[DE].kill()
            bench.proxy.refuse()  # connections to the dead peer, counted
            attempts_at = bench.proxy.accepted
            down_at = time.monotonic()
            time.sleep(p.outage_s)
            attempts = bench.proxy.accepted - attempts_at
            # Every member that had something for de-eco (nl-eokm its reports, the others their
            # hash announcements) kept trying, each on its own backoff; the proxy saw them all.
            by_member = {
                m: int(bench.scalar(m, "SELECT failures FROM peers WHERE member = :p", p=DE) or 0)
                for m in (NL, US, COORDINATOR)
            }
            attempt_times = [round(t - down_at, 2) for t in bench.proxy.accept_times[attempts_at:]]
            during = us_latencies(bench, since=before["count"])
            bench.proxy.passthrough()
            bench.procs[DE].start()
            back = time.monotonic()
            out.recoveries.append(bench.recovery(timeout=400))
            down_for = back - down_at
        out.ids = to_de.accepted
    drain = bench.wait_drained(400)
    out.extra = {
        "outage_s": round(down_for, 1),
        "attempts_by_member": by_member,
        "connections_seen_by_the_dead_peer": attempts,
        "attempt_times_s": attempt_times,
        "attempts_bound_first_hour": backoff_bound_first_hour(1.0, 300.0),
        "attempts_bound_per_hour_after": int(3600 // (300.0 / 2)),
        "us_latency_before_ms": before["p50_p99"],
        "us_latency_during_outage_ms": during["p50_p99"],
        "us_reports_during_outage": during["count"],
        "drain_after_back_s": None if drain is None else round(time.monotonic() - back, 2),
    }
    # The other scenarios run with fast retries: they are about the system, not the waiting.
    others = (NL, US, COORDINATOR)
    for member in others:
        bench.procs[member].terminate()
        for key in PRODUCTION_BACKOFF:
            bench.procs[member].env.pop(key, None)
    bench.start(others)
    return out


def backoff_bound_first_hour(initial: float, maximum: float) -> int:
    """Most attempts the backoff allows in an hour from the first failure (shortest delays)."""
    elapsed, n, failures = 0.0, 1, 0
    while True:
        ceiling = min(maximum, initial * 2.0**failures)
        elapsed += ceiling / 2  # equal jitter: at least half the ceiling
        if elapsed > 3600:
            return n
        n += 1
        failures += 1


def us_latencies(bench: Bench, since: int = 0) -> dict[str, Any]:
    """Intake at nl-eokm → us-ncmec's receipt, per report, in arrival order after ``since``."""
    rows = bench.query(
        NL,
        "SELECT d.receipted_at - r.received_at FROM deliveries d JOIN reports r"
        " ON r.seq = d.report_seq WHERE d.destination = :d ORDER BY d.receipted_at",
        d=US,
    )
    values = sorted(row[0] / 1000 for row in rows[since:])
    if not values:
        return {"count": len(rows), "p50_p99": None}
    p50 = values[len(values) // 2]
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return {"count": len(rows), "p50_p99": [round(p50, 1), round(p99, 1)]}


def during_fault(name: str, begin: Callable[[Bench], Any], end: Callable[[Bench], Any]) -> Scenario:
    """The analyst keeps submitting while ``begin`` … ``end`` holds de-eco in trouble."""

    def run(bench: Bench, p: Profile) -> Outcome:
        out = Outcome(name)
        log_at = bench.procs[DE].log.stat().st_size
        with analyst(bench, rate=p.rate) as a:
            time.sleep(0.3)
            state = begin(bench)
            time.sleep(0.5)  # what was committing as the fault began is not "during"
            stored = bench.stored_at_de()
            time.sleep(max(0.0, p.fault_s - 0.5))
            stored_during = bench.stored_at_de() - stored
            extra = end(bench) or {}
            out.recoveries.append(bench.recovery())
        out.ids = a.accepted
        out.extra = {
            "stored_at_receiver_during_fault": stored_during,
            "receiver_write_failures": count_lines(
                bench.procs[DE].log, log_at, "nothing acknowledged"
            ),
            **(state if isinstance(state, dict) else {}),
            **extra,
        }
        return out

    return run


def count_lines(path: Path, offset: int, needle: str) -> int:
    with path.open("rb") as f:
        f.seek(offset)
        return sum(1 for line in f if needle.encode() in line)


def slow_begin(bench: Bench) -> None:
    bench.proxy.delay(2.5)  # past the 2 s receipt deadline


def proxy_end(bench: Bench) -> None:
    bench.proxy.passthrough()


def frozen_begin(bench: Bench) -> None:
    bench.procs[DE].signal(signal.SIGSTOP)


def frozen_end(bench: Bench) -> None:
    bench.procs[DE].signal(signal.SIGCONT)


def resets_begin(bench: Bench) -> dict[str, Any]:
    bench.proxy.reset(1, 64 * 1024)
    return {}


class StreamResets:
    """de-eco behind a relay that cancels streams (RST_STREAM) after 0–3 receipts."""

    relay: ResettingPeer | None = None

    @classmethod
    def begin(cls, bench: Bench) -> None:
        cls.relay = ResettingPeer(bench.de_port, seed=bench.rng.randrange(1 << 30))
        bench.proxy.target(cls.relay.port)

    @classmethod
    def end(cls, bench: Bench) -> dict[str, Any]:
        assert cls.relay is not None
        bench.proxy.target(bench.de_port)
        cls.relay.stop()
        return {"streams_reset": cls.relay.resets}


class Lock:
    """Another process holding de-eco's write lock (``BEGIN IMMEDIATE``) until released."""

    conn: sqlite3.Connection | None = None

    @classmethod
    def begin(cls, bench: Bench) -> None:
        cls.conn = sqlite3.connect(bench.db_paths[DE], isolation_level=None, timeout=30)
        cls.conn.execute("BEGIN IMMEDIATE")

    @classmethod
    def end(cls, bench: Bench) -> None:
        assert cls.conn is not None
        cls.conn.execute("ROLLBACK")
        cls.conn.close()


def full_begin(bench: Bench) -> dict[str, Any]:
    assert bench.disk is not None
    return {"filled_mib": bench.disk.fill() // (1024 * 1024)}


def full_end(bench: Bench) -> None:
    assert bench.disk is not None
    bench.disk.unfill()


def read_only_begin(bench: Bench) -> dict[str, Any]:
    assert bench.disk is not None
    bench.disk.fail_read_only()
    return {"remounted_read_only": bench.disk.read_only()}


def read_only_end(bench: Bench) -> dict[str, Any]:
    # The operator: stop the node (it cannot write anyway), check the disk, start it again.
    assert bench.disk is not None
    bench.procs[DE].terminate()
    bench.dispose(DE)
    summary = bench.disk.repair()
    bench.procs[DE].start()
    return {"e2fsck": summary}


def invalid_receipts(bench: Bench, p: Profile) -> Outcome:
    out = Outcome("invalid-receipts")
    hostile = HostilePeer(
        issuer=DE, key=bench.fed.keys[DE], other_member=US, other_key=bench.fed.keys[US]
    )
    try:
        with analyst(bench, total=p.batch * 2) as a:
            time.sleep(0.3)
            bench.proxy.target(hostile.port)
            deadline = time.monotonic() + (20 if p.quick else 120)
            # Until every kind of bad receipt was served (twice in the full run).
            rounds = 1 if p.quick else 2
            while min(hostile.served.values()) < rounds and time.monotonic() < deadline:
                time.sleep(0.1)
            marked = bench.scalar(
                NL, "SELECT count(*) FROM deliveries WHERE destination = :d", d=DE
            )
            stored = bench.stored_at_de()
            bench.proxy.target(bench.de_port)
            out.recoveries.append(bench.recovery())
        out.ids = a.accepted
        out.extra = {
            "bad_receipts_served": sum(hostile.served.values()),
            "bad_receipt_kinds": len(hostile.served),
            "marked_delivered_beyond_stored": max(0, int(marked) - stored),
        }
    finally:
        bench.proxy.target(bench.de_port)
        hostile.stop()
    return out


def clock_skew(member: str, seconds: float, restore: bool) -> Scenario:
    """``member``'s clock ``seconds`` off while a batch goes through; ``restore`` sets it right."""

    def run(bench: Bench, p: Profile) -> Outcome:
        out = Outcome(_skew_name(member, seconds))
        proc = bench.procs[member]
        proc.terminate()
        proc.skew = seconds
        proc.start()
        with analyst(bench, total=p.batch) as a:
            a.join(120)
        out.recoveries.append(bench.recovery())
        out.ids = a.accepted
        # Drained while the clock is still off: that is the point.
        drain = bench.wait_drained(120)
        out.extra = {
            "skew_s": seconds,
            "refused_at_intake": a.refused,
            "drained_while_skewed": drain is not None,
        }
        if restore:
            proc.terminate()
            proc.skew = 0.0
            proc.start()
        return out

    return run


# -- the lifecycle ---------------------------------------------------------------------------------

LC_STEPS = 4  # assessed, reported to law enforcement, notice to the host, removed
STATE_COLUMNS = (
    "holder, origin_member, origin_classification, stage, classification, age_group, gender,"
    " virtual, user_generated, child_modelling, analyst_ref, disputed, actions, last_action,"
    " clock_started, assessed_at, lea_at, lea_partner, host_notice_at, host_recipient,"
    " closed_at, close_reason, moved_to_country, moved_to_member"
)


def lifecycle_kills(bench: Bench, p: Profile) -> Outcome:
    """de-eco's analysts work cases nl-eokm reported; de-eco and nl-eokm are killed in turn.

    First ``lc_cases`` reports go from nl-eokm to de-eco (one case each). Then a job for
    de-eco's analysts — threads in de-eco's own process (``lifecycle_driver.py``): four events
    per case at ``lc_rate`` events/s in all, each event listed in the job's ack file once its
    call returned — while de-eco (which makes and sends the events) and nl-eokm (which
    receives them) are SIGKILLed at random instants, in turn, and restarted; de-eco's analysts
    carry on after each restart from the cases' stored states.
    """
    out = Outcome("lifecycle-kills")
    with analyst(bench, total=p.lc_cases) as a:
        a.join(300)
    out.ids = a.accepted
    bench.wait_drained(180)
    cases = remote_cases(bench, a.accepted)
    n = len(list(bench.jobs.glob("*.json")))
    ack = bench.root / f"lifecycle-{n}.ack"
    spec = {"cases": cases, "threads": 16, "rate": p.lc_rate, "ack": str(ack)}
    (bench.jobs / f"{n}.tmp").write_text(json.dumps(spec))
    (bench.jobs / f"{n}.tmp").rename(bench.jobs / f"{n}.json")
    done = bench.jobs / f"{n}.done"
    kills = {DE: 0, NL: 0}
    acknowledged_at_kills: list[int] = []  # the job's progress when each kill struck
    for k in range(2 * max(1, p.kills)):
        time.sleep(bench.rng.uniform(0.1, 1.0))
        if done.exists():
            break  # the job ended first: the figures say how many kills it took
        victim = (DE, NL)[k % 2]
        bench.procs[victim].kill()
        kills[victim] += 1
        acknowledged_at_kills.append(count_lines(ack, 0, "\t") if ack.exists() else 0)
        time.sleep(bench.rng.uniform(0.0, 0.3))
        bench.procs[victim].start()
        out.recoveries.append(lifecycle_recovery(bench, done))
    finished = wait_for_path(done, 600)
    drain = wait_until_true(lambda: holder_drained(bench), 180)
    out.extra = {
        "cases": len(cases),
        "kills_of_holder": kills[DE],
        "kills_of_origin": kills[NL],
        "acknowledged_at_kills": acknowledged_at_kills,
        "job_finished": finished,
        "events_drain_s": drain,
        **lifecycle_figures(bench, cases, ack),
    }
    return out


def remote_cases(bench: Bench, report_ids: list[str]) -> list[str]:
    """de-eco's case ids of these reports, as its receipts told nl-eokm."""
    wanted = set(report_ids)
    rows = bench.query(
        NL,
        "SELECT r.id AS report_id, d.remote_case_id FROM deliveries d"
        " JOIN reports r ON r.seq = d.report_seq WHERE d.destination = :d",
        d=DE,
    )
    return sorted({r.remote_case_id for r in rows if r.report_id in wanted and r.remote_case_id})


def lifecycle_recovery(bench: Bench, done: Path, timeout: float = 120.0) -> float:
    """Seconds until nl-eokm holds another of de-eco's events (or the job is done and sent)."""
    start = time.monotonic()
    sql = "SELECT count(*) FROM case_events WHERE member = :m"
    before = bench.scalar(NL, sql, m=DE)
    while time.monotonic() - start < timeout:
        with contextlib.suppress(Exception):
            if bench.scalar(NL, sql, m=DE) > before or (done.exists() and holder_drained(bench)):
                break
        time.sleep(0.02)
    return time.monotonic() - start


def holder_drained(bench: Bench) -> bool:
    return (
        bench.scalar(DE, "SELECT count(*) FROM outbox") == 0
        and bench.scalar(DE, "SELECT count(*) FROM batches WHERE receipted_at IS NULL") == 0
    )


def wait_for_path(path: Path, timeout: float) -> bool:
    return wait_until_true(path.exists, timeout) is not None


def wait_until_true(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``check()`` held, or None if it did not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if check():
                return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return None


def lifecycle_figures(bench: Bench, cases: list[str], ack: Path) -> dict[str, Any]:
    """Every event de-eco made on these cases: at nl-eokm and at the coordinator exactly once
    (stored once, applied once per the routing log), in sequence order per case, with the
    items' states the same everywhere; every event the analysts were answered for, made."""
    wanted = set(cases)
    made = {
        r.id: (r.case_id, r.sequence)
        for r in bench.query(
            DE, "SELECT id, case_id, sequence FROM case_events WHERE member = :m", m=DE
        )
        if r.case_id in wanted
    }
    acked = {line.split("\t")[0] for line in ack.read_text().splitlines() if line}
    per_case = collections.Counter(case for case, _ in made.values())
    figures: dict[str, Any] = {
        "events_made": len(made),
        "events_acknowledged": len(acked),
        "acknowledged_not_made": len(acked - made.keys()),
        "cases_unfinished": sum(1 for c in cases if per_case[c] != LC_STEPS),
        "events_refused": refused_events(bench),
    }
    lost = duplicated = disorder = 0
    for member in (NL, COORDINATOR):
        seen = received_events(bench, member, wanted)
        lost += len(made.keys() - seen["stored"].keys()) + len(made.keys() - seen["applied"].keys())
        duplicated += sum(n - 1 for n in seen["stored"].values()) + sum(
            n - 1 for n in seen["applied"].values()
        )
        duplicated += len(seen["stored"].keys() - made.keys())  # never made at de-eco
        disorder += seen["out_of_order"]
    figures["events_lost"] = lost + figures["acknowledged_not_made"]
    figures["events_duplicated"] = duplicated
    figures["events_out_of_order"] = disorder
    figures["item_states_differ"] = states_differ(bench, cases)
    return figures


def received_events(bench: Bench, member: str, cases: set[str]) -> dict[str, Any]:
    """At ``member``: how often each of de-eco's events is stored and applied (routing log),
    and the cases whose events are not in sequence order 1, 2, … in order of arrival."""
    rows = bench.query(
        member,
        "SELECT id, case_id, sequence FROM case_events WHERE member = :m ORDER BY cursor",
        m=DE,
    )
    stored = collections.Counter(r.id for r in rows if r.case_id in cases)
    sequences: dict[str, list[int]] = {}
    for r in rows:
        if r.case_id in cases:
            sequences.setdefault(r.case_id, []).append(r.sequence)
    out_of_order = sum(1 for s in sequences.values() if s != list(range(1, len(s) + 1)))
    applied: collections.Counter[str] = collections.Counter()
    for r in bench.query(member, "SELECT detail FROM routing_log WHERE kind = 'event-applied'"):
        detail = json.loads(r.detail)
        if detail.get("case") in cases:
            applied[detail["event"]] += 1
    return {"stored": stored, "applied": applied, "out_of_order": out_of_order}


def refused_events(bench: Bench) -> int:
    """Events of de-eco's that a receiver refused in its receipt (logged at de-eco)."""
    rows = bench.query(DE, "SELECT detail FROM routing_log WHERE kind = 'rejected'")
    return sum(1 for r in rows if "event" in json.loads(r.detail))


def states_differ(bench: Bench, cases: list[str]) -> int:
    """Items whose state at nl-eokm or at the coordinator is not de-eco's (or is missing)."""
    wanted = set(cases)

    def states(member: str) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        rows = bench.query(
            member, f"SELECT case_id, report_id, idx, {STATE_COLUMNS} FROM item_states"
        )
        return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows if r[0] in wanted}

    at_holder = states(DE)
    differ = 0
    for member in (NL, COORDINATOR):
        there = states(member)
        differ += sum(1 for key, state in at_holder.items() if there.get(key) != state)
        differ += len(there.keys() - at_holder.keys())
    return differ


def plan(bench: Bench, p: Profile) -> list[tuple[str, Scenario | None, str | None]]:
    """(name, scenario, or why it cannot run here), in running order."""
    disk = None if bench.disk is not None else bench.disk_unavailable
    skews = [
        (member, s, i + 1 == len(p.skews) or p.skews[i + 1][0] != member)
        for i, (member, s) in enumerate(p.skews)
    ]
    return [
        ("peer-down", peer_down, None),
        ("kill-receiver", kills((DE,), "kill-receiver"), None),
        ("kill-sender", kills((NL,), "kill-sender"), None),
        ("kill-both", kills((NL, DE), "kill-both"), None),
        ("lifecycle-kills", lifecycle_kills, None),
        ("slow-peer", during_fault("slow-peer", slow_begin, proxy_end), None),
        ("frozen-peer", during_fault("frozen-peer", frozen_begin, frozen_end), None),
        ("connection-resets", during_fault("connection-resets", resets_begin, proxy_end), None),
        (
            "stream-resets",
            during_fault("stream-resets", StreamResets.begin, StreamResets.end),
            None,
        ),
        ("invalid-receipts", invalid_receipts, None),
        ("receiver-db-locked", during_fault("receiver-db-locked", Lock.begin, Lock.end), None),
        (
            "receiver-disk-full",
            during_fault("receiver-disk-full", full_begin, full_end) if disk is None else None,
            disk,
        ),
        (
            "receiver-read-only",
            during_fault("receiver-read-only", read_only_begin, read_only_end)
            if disk is None
            else None,
            disk,
        ),
        *((_skew_name(m, s), clock_skew(m, s, r), None) for m, s, r in skews),
    ]


def _skew_name(member: str, seconds: float) -> str:
    role = "sender" if member == NL else "receiver"
    return f"clock-skew-{role}{'+' if seconds > 0 else '-'}{abs(seconds) / 60:g}m"


def _with_endpoint(member: Any, endpoint: str) -> Any:
    import dataclasses

    return dataclasses.replace(member, endpoint=endpoint)


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description="Fault injection against real node processes.")
    p.add_argument("--quick", action="store_true", help="each scenario once, briefly (≤ 60 s)")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--keep", help="keep the nodes' directories here")
    p.add_argument("--node", help=argparse.SUPPRESS)
    p.add_argument("--skew", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--drive", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.node:
        return run_node(args.node, args.skew, args.drive)
    # SIGTERM (e.g. from ``timeout``) unwinds like Ctrl-C: nodes stopped, the loop disk unmounted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)  # reproducible fault instants
    profile = QUICK if args.quick else FULL
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    not_run: dict[str, str] = {}
    accepted: set[str] = set()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ihx-faults-"))
    tmp.mkdir(parents=True, exist_ok=True)
    bench = Bench(tmp, rng)
    try:
        wanted = set(args.only.split(",")) if args.only else None
        if wanted is None or "peer-down" in wanted:
            for member in (NL, US, COORDINATOR):  # peer-down runs first
                bench.procs[member].env.update(PRODUCTION_BACKOFF)
        bench.start()
        for name, scenario, why in plan(bench, profile):
            if wanted is not None and name not in wanted:
                continue
            if scenario is None:
                not_run[name] = why or "unavailable"
                print(json.dumps({"scenario": name, "not_run": not_run[name]}), flush=True)
                continue
            t0 = time.monotonic()
            outcome = scenario(bench, profile)
            accepted.update(outcome.ids)
            result = check(bench, outcome, accepted)
            result["seconds"] = round(time.monotonic() - t0, 1)
            print(json.dumps(result, sort_keys=True), flush=True)
            results.append(result)
    finally:
        bench.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "bench": "faults",
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": len(results),
        "not_run": not_run,
        "faults_injected": sum(r["faults"] for r in results),
        "reports_accepted": len(accepted),
        # Every scenario re-checks everything accepted so far; this counts the checks.
        "report_checks": sum(r["checked"] for r in results),
        # Each check covers every report so far: the worst one is the run's figure.
        "lost": max((r["lost"] for r in results), default=0),
        "duplicated": max((r["duplicated"] for r in results), default=0),
        "bad_receipts_accepted": sum(r["bad_receipts_accepted"] for r in results),
        "events_out_of_order": sum(r.get("events_out_of_order", 0) for r in results),
        "event_states_differ": sum(r.get("item_states_differ", 0) for r in results),
        "events_unfinished": sum(
            r.get("cases_unfinished", 0) + r.get("events_refused", 0) for r in results
        ),
        "logs_verify": all(r["logs_verify"] for r in results),
        "receiver_integrity_ok": all(r["receiver_integrity"] == "ok" for r in results),
        "worst_recovery_s": max((r["worst_recovery_s"] for r in results), default=0.0),
        "worst_drain_s": max(
            (r["drain_s"] for r in results if r["drain_s"] is not None), default=None
        ),
        "undrained": [r["scenario"] for r in results if r["drain_s"] is None],
        "per_scenario": {r["scenario"]: r for r in results},
    }
    print(json.dumps(summary, sort_keys=True))
    ok = (
        summary["lost"] == 0
        and summary["duplicated"] == 0
        and summary["bad_receipts_accepted"] == 0
        and summary["events_out_of_order"] == 0
        and summary["event_states_differ"] == 0
        and summary["events_unfinished"] == 0
        and summary["logs_verify"]
        and summary["receiver_integrity_ok"]
        and not summary["undrained"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
