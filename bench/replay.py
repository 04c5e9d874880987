"""A year of the network: INHOPE's 2024 traffic through five member nodes and a coordinator.

Six real `ihx node run` processes on this machine — nl-eokm (NL), us-ncmec (US), bg-safenet
(BG), ro-salvati (RO), de-eco (DE) and the coordinator inhope — each with its own SQLite file
(`--db sqlite`, the default) or its own fresh PostgreSQL database (`--db postgresql`, on
IHX_BENCH_DATABASE_URL's server, dropped afterwards). The year is `replay_shape.year()`:
2,497,438 reports hosted as the IWF measured for 2024 (countries without a member go by the
manifest's orphan rules, the rest to the coordinator), 37 % new content, 1.5 % duplicate URLs
from another hotline, and de-eco's crawler submitting 100,000 in one block (all scaled by
`--fraction`; `--quick` is 1 %). Hosts resolve through a static table to addresses in a GeoIP
database built for the run — nothing leaves the machine.

Each member's analysts stream its share of the year through bulk intake (one stream per member,
all at once, as fast as the nodes take them: the year is compressed to what the federation can
carry); the clock stops when every report is stored at its holder and its origin holds the
signed receipt. "65 % assessed illegal" is the origin analysts' classification carried in each
report's items; with `--assess N` the holders' analysts then assess N cases through the Cases
service (the lifecycle's Assess, each a signed event to the origin and the coordinator).

Printed: wall time, reports/s overall and per node, p50/p99 intake → receipt (the origin's
intake time → its receipt; one clock), database size and bytes per report, peak RSS and CPU
seconds of each node process, and the machine's load.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common as common
import grpc
import numpy as np
import replay_shape as shape
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from auth.tokens import Scope
from exchange.client.stubs import CasesClient, IntakeClient
from exchange.domain import Classification
from exchange.lifecycle.model import Assessment
from exchange.store.engine import open_engine
from exchange.tools.provision import Federation, MemberPlan, provision_federation
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb

HOSTS_PER_COUNTRY = 4
HOSTERS = [(43350, "NForce Entertainment B.V."), (24940, "Hetzner Online GmbH"),
           (16276, "OVH SAS"), (13335, "Cloudflare, Inc.")]  # fmt: skip
CLASSIFICATION = {
    "baseline": pb.CLASSIFICATION_BASELINE,
    "national": pb.CLASSIFICATION_NATIONAL,
    "not_illegal": pb.CLASSIFICATION_NOT_ILLEGAL,
    "doubtful": pb.CLASSIFICATION_DOUBTFUL,
}
SITES = [pb.SITE_TYPE_IMAGE_HOST, pb.SITE_TYPE_FILE_HOST, pb.SITE_TYPE_WEBSITE,
         pb.SITE_TYPE_FORUM, pb.SITE_TYPE_IMAGE_HOST]  # fmt: skip
DELIVERED = "select count(*) from deliveries"
SEGMENT = 50_000  # reports per intake stream


# -- the world: hosts, addresses, GeoIP ------------------------------------------------------


def network(j: int) -> str:
    """Country j's network: a /16 of public addresses (never special-purpose ones)."""
    return f"{41 + j // 250}.{j % 250}.0.0/16"


def host(country: str, k: int) -> str:
    return f"h{k}.{country.lower()}-hoster.example"


def world(countries: list[str]) -> dict[str, Any]:
    """provision_federation's GeoIP networks and static resolver table for every country."""
    hosts: dict[str, list[str]] = {}
    for j, c in enumerate(countries):
        prefix = network(j).rsplit(".", 2)[0]
        for k in range(HOSTS_PER_COUNTRY):
            hosts[host(c, k)] = [f"{prefix}.{k}.10"]
    return {
        "country_networks": {network(j): c for j, c in enumerate(countries)},
        "asn_networks": {network(j): HOSTERS[j % len(HOSTERS)] for j in range(len(countries))},
        "static_hosts": hosts,
    }


def request(year: shape.Year, i: int) -> ipb.SubmitReportRequest:
    url, country = int(year.url[i]), year.countries[year.country[i]]
    digest = hashlib.sha256(f"replay:{int(year.content[i])}".encode()).hexdigest()
    return ipb.SubmitReportRequest(
        url=f"https://{host(country, url % HOSTS_PER_COUNTRY)}/{url:08x}/photo.jpg",
        site_type=SITES[url % len(SITES)],
        items=[
            pb.Item(
                hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=digest)],
                classification=CLASSIFICATION[shape.CLASSIFICATIONS[year.classification[i]]],
                media_type=pb.MEDIA_TYPE_IMAGE,
                age_group=pb.AGE_GROUP_PREPUBESCENT,
            )
        ],
        client_ref=str(i),
    )


# -- the federation ----------------------------------------------------------------------------


@dataclass
class Node:
    member: str
    engine: Engine
    proc: Any = None
    submitted: int = 0
    intake_s: float = 0.0
    acked: int = 0
    repeated: int = 0
    refused: list[str] = field(default_factory=list)
    failed: str | None = None
    done_at: float | None = None


def provision(root: Path, year: shape.Year, pg: Any) -> Federation:
    plans = [MemberPlan(m, m, served) for m, served in shape.MEMBERS]
    plans.append(MemberPlan(shape.COORDINATOR, "INHOPE", ()))
    return provision_federation(
        root,
        plans,
        coordinator=shape.COORDINATOR,
        now=datetime.now(UTC),
        orphan_rules=shape.ORPHAN_RULES,
        database_url=pg.new if pg is not None else None,
        **world(year.countries),
    )


class Pacer:
    """The steady reports of one member at ``rate``/s from the start (None: unpaced); the
    burst's reports are never held back (a crawler submits as fast as intake takes them)."""

    def __init__(self, rate: float | None) -> None:
        self.rate, self.t0, self.steady = rate, time.monotonic(), 0

    def wait(self, burst: bool) -> None:
        if self.rate is None or burst:
            return
        delay = self.t0 + self.steady / self.rate - time.monotonic()
        self.steady += 1
        if delay > 0:
            time.sleep(delay)


def submit(
    fed: Federation, node: Node, year: shape.Year, indices: np.ndarray, rate: float | None
) -> None:
    """Stream ``indices`` of the year to ``node``'s bulk intake, in order: one stream per
    SEGMENT reports, each with a fresh token (a token lives at most 15 minutes)."""
    t0 = time.monotonic()
    address = fed.settings[node.member].listen
    pacer = Pacer(rate)
    # Paced, a report waits for at most ~10 ms of others before its chunk leaves.
    chunk = 500 if rate is None else max(1, min(500, round(rate / 100)))

    def reports(part: np.ndarray) -> Iterator[ipb.SubmitReportRequest]:
        for i in part:
            pacer.wait(bool(year.burst[i]))
            yield request(year, int(i))

    try:
        for start in range(0, len(indices), SEGMENT):
            token = fed.token(node.member, ttl=900)
            with IntakeClient(address, token=token, timeout=600) as client:
                part = indices[start : start + SEGMENT]
                for r in client.submit_requests(reports(part), chunk=chunk, deadline=900):
                    if r.error_code:
                        node.refused.append(f"{r.client_ref}: {r.error_code} {r.error}")
                    else:
                        node.acked += 1
                        node.repeated += r.duplicate
    except Exception as e:  # reported by the main thread
        node.failed = f"{type(e).__name__}: {e}"
    node.intake_s = time.monotonic() - t0


def wait_delivered(nodes: dict[str, Node], t0: float, timeout: float) -> None:
    """Until each origin holds a receipt for every report it submitted (done_at per node)."""
    deadline = time.monotonic() + timeout
    while any(n.done_at is None for n in nodes.values()):
        for n in nodes.values():
            if n.done_at is None and (
                n.submitted == 0 or common.count(n.engine, DELIVERED) >= n.submitted
            ):
                n.done_at = time.monotonic() - t0
        if time.monotonic() > deadline:
            late = {m: n.submitted for m, n in nodes.items() if n.done_at is None}
            raise SystemExit(f"timed out waiting for receipts: {late}")
        time.sleep(0.25)


def quiet(nodes: dict[str, Node], timeout: float) -> float | None:
    """Seconds until every outbox is empty and every hash announcement is receipted (None:
    not within ``timeout``)."""
    t0 = time.monotonic()
    others = len(nodes) - 1
    while time.monotonic() - t0 < timeout:
        if all(_quiet(n.engine, others) for n in nodes.values()):
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


def _quiet(db: Engine, others: int) -> bool:
    with db.connect() as conn:
        if conn.execute(text("select count(*) from outbox")).scalar_one():
            return False
        last = conn.execute(text("select coalesce(max(seq), 0) from announcements")).scalar_one()
        if not last:
            return True
        behind = conn.execute(
            text("select count(*) from peers where announce_cursor >= :last"), {"last": last}
        ).scalar_one()
        return int(behind) >= others


# -- the holders' assessment (a sample) -------------------------------------------------------

ANALYSTS = 8  # concurrent Assess calls per holder


def assess_sample(fed: Federation, nodes: dict[str, Node], total: int) -> dict[str, Any]:
    """The holders' analysts assess ``total`` cases (shared by the holders as their cases are)
    through the Cases service, each confirming the origin's classification of its first item:
    one signed event per case to each reporting member and the coordinator. Returns the
    Assess calls/s, the share assessed illegal and the time until every event is receipted."""
    cases = {m: common.count(n.engine, "select count(*) from cases") for m, n in nodes.items()}
    all_cases = max(1, sum(cases.values()))
    work = {
        m: _first_items(nodes[m].engine, round(total * k / all_cases)) for m, k in cases.items()
    }
    done: list[int] = []
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=_analyst, args=(fed, m, part[a::ANALYSTS], done), daemon=True)
        for m, part in work.items()
        for a in range(ANALYSTS)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    made_s = time.monotonic() - t0
    settle = quiet(nodes, timeout=300)
    assessed = [c for part in work.values() for _, c in part]
    illegal = sum(
        _holder_view(c) in (Classification.BASELINE, Classification.NATIONAL) for c in assessed
    )
    return {
        "cases": len(assessed),
        "made": len(done),
        "per_s": len(done) / made_s if made_s else 0.0,
        "illegal_share": illegal / max(1, len(assessed)),
        "delivered_s": None if settle is None else made_s + settle,
    }


def _first_items(db: Engine, limit: int) -> list[tuple[str, str]]:
    """(case id, the classification its first report gave its first item), ``limit`` cases."""
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "select c.id, i.classification from cases c "
                "join reports r on r.id = c.first_report_id "
                "join items i on i.report_seq = r.seq and i.idx = 0 order by c.id limit :n"
            ),
            {"n": limit},
        ).all()
    return [(str(a), str(b)) for a, b in rows]


def _analyst(fed: Federation, member: str, part: list[tuple[str, str]], done: list[int]) -> None:
    token = fed.token(member, Scope.CASES_WORK, ttl=900)
    with CasesClient(fed.settings[member].listen, token=token, timeout=120) as client:
        for case_id, classification in part:
            try:
                client.assess(case_id, [], Assessment(_holder_view(classification)))
                done.append(1)
            except grpc.RpcError as e:  # counted: made < cases
                print(f"  {member}: Assess {case_id}: {e.code().name} {e.details()}")


def _holder_view(origin: str) -> Classification:
    """The holder's assessment of an item the origin classified: the same, except that an
    assessment decides — an item the origin found doubtful is assessed not illegal."""
    c = Classification(origin)
    return Classification.NOT_ILLEGAL if c is Classification.DOUBTFUL else c


# -- figures -------------------------------------------------------------------------------------


def latencies_ms(db: Engine) -> tuple[np.ndarray, np.ndarray]:
    """Per report submitted here: its intake time → its receipt (ms), and its URL's id."""
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "select r.received_at, d.receipted_at, r.url from reports r join deliveries d "
                "on d.report_seq = r.seq where r.role = 'origin'"
            )
        ).all()
    ms = np.array([(b - a) / 1000.0 for a, b, _ in rows], dtype=np.float64)
    urls = np.array([int(u.split("/")[3], 16) for _, _, u in rows], dtype=np.int64)
    return ms, urls


def held(db: Engine) -> dict[str, int]:
    with db.connect() as conn:
        q = "select count(*) from reports where role = 'received'"
        received = int(conn.execute(text(q)).scalar_one())
        origin = int(
            conn.execute(text("select count(*) from reports where role = 'origin'")).scalar_one()
        )
        cases = int(conn.execute(text("select count(*) from cases")).scalar_one())
        known = int(
            conn.execute(
                text(
                    "select count(*) from items i join reports r on r.seq = i.report_seq "
                    "where r.role = 'received' and i.known_member is not null"
                )
            ).scalar_one()
        )
    return {"received": received, "origin": origin, "cases": cases, "known_items": known}


def database_bytes(url: str, db: Engine) -> int:
    """The database's size: the SQLite file with its WAL, or PostgreSQL's pg_database_size."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return common.count(db, "select pg_database_size(current_database())")


# -- the run -------------------------------------------------------------------------------------


def run(args: Any, pg: Any, root: Path) -> dict[str, Any]:
    t = time.monotonic()
    year = shape.year(args.fraction, seed=args.seed)
    print(
        f"the year at {args.fraction:g}: {len(year):,} reports "
        f"(shaped in {time.monotonic() - t:.1f} s)"
    )
    print_shape(year)
    fed = provision(root / "fed", year, pg)
    members = shape.member_ids()
    nodes = {m: Node(m, open_engine(fed.settings[m].database_url)) for m in members}
    try:
        for m, n in nodes.items():
            n.proc = common.start_node(fed.config_path(m), root / f"{m}.log")
        for m in members:
            common.wait_ready(fed.settings[m].listen, timeout=60)
        figures = replay(fed, nodes, year, args)
        if args.assess:
            print(f"the holders' analysts assess {args.assess:,} cases (Cases.Assess) …")
            figures["assess"] = assess_sample(fed, nodes, args.assess)
        usage = {
            m: (common.cpu_seconds(n.proc.pid), common.peak_rss_mib(n.proc.pid))
            for m, n in nodes.items()
        }
        figures["latency"] = {m: latencies_ms(n.engine) for m, n in nodes.items()}
        figures["held"] = {m: held(n.engine) for m, n in nodes.items()}
    finally:
        common.stop(n.proc for n in nodes.values() if n.proc is not None)
    figures["usage"] = usage
    figures["db_bytes"] = {
        m: database_bytes(fed.settings[m].database_url, n.engine) for m, n in nodes.items()
    }
    for n in nodes.values():
        n.engine.dispose()
    return report(year, nodes, figures, args)


def replay(fed: Federation, nodes: dict[str, Node], year: shape.Year, args: Any) -> dict[str, Any]:
    members = shape.member_ids()
    streams = {m: np.flatnonzero(year.origin == k) for k, m in enumerate(members)}
    for m, indices in streams.items():
        nodes[m].submitted = len(indices)
    cpu0 = {m: common.cpu_seconds(n.proc.pid) for m, n in nodes.items()}
    client0 = common.cpu_seconds(os.getpid())
    print(f"replaying: {len(year):,} reports through {len(members)} nodes … ({common.load()})")
    t0 = time.monotonic()
    threads = [
        threading.Thread(
            target=submit, args=(fed, nodes[m], year, idx, _rate(args.rate, year, idx)), daemon=True
        )
        for m, idx in streams.items()
        if len(idx)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    intake_s = time.monotonic() - t0
    failed = {m: n.failed for m, n in nodes.items() if n.failed}
    if failed:
        raise SystemExit(f"intake failed: {failed}")
    print(f"  intake done in {intake_s:.1f} s ({common.load()})")
    wait_delivered(nodes, t0, timeout=max(600.0, 20 * intake_s))
    wall = time.monotonic() - t0
    print(f"  every report stored at its holder and receipted at its origin: {wall:.1f} s")
    settle = quiet(nodes, timeout=300)
    cpu = {m: common.cpu_seconds(n.proc.pid) - cpu0[m] for m, n in nodes.items()}
    return {
        "wall_s": wall,
        "intake_s": intake_s,
        "settle_s": settle,
        "cpu_s": cpu,
        "client_cpu_s": common.cpu_seconds(os.getpid()) - client0,
        "load": common.load(),
    }


def _rate(total: float | None, year: shape.Year, indices: np.ndarray) -> float | None:
    """A member's share of ``total`` reports/s: its share of the year's steady reports."""
    if total is None:
        return None
    steady = int((~year.burst).sum())
    return total * int((~year.burst[indices]).sum()) / max(steady, 1)


def print_shape(year: shape.Year) -> None:
    n = len(year)
    top = np.bincount(year.country, minlength=len(year.countries)) / n
    head = ", ".join(f"{year.countries[k]} {top[k]:.1%}" for k in np.argsort(-top)[:10])
    holders = np.bincount(year.holder, minlength=len(year.members)) / n
    origins = np.bincount(year.origin, minlength=len(year.members)) / n
    print(f"  hosted: {head}, {len(year.countries)} countries in all")
    print(
        f"  illegal (classified at the origin) {np.mean(year.classification <= 1):.1%}; "
        f"new content {year.new_content.mean():.1%}; duplicate URLs from another hotline "
        f"{year.duplicate.mean():.2%}; {shape.CRAWLER}'s burst {int(year.burst.sum()):,} reports"
    )
    print(
        "  holder share: " + ", ".join(f"{m} {holders[k]:.1%}" for k, m in enumerate(year.members))
    )
    print(
        "  origin share: " + ", ".join(f"{m} {origins[k]:.1%}" for k, m in enumerate(year.members))
    )


def report(
    year: shape.Year, nodes: dict[str, Node], f: dict[str, Any], args: Any
) -> dict[str, Any]:
    wall, n = f["wall_s"], len(year)
    lat = np.concatenate([ms for ms, _ in f["latency"].values()])
    urls = np.concatenate([u for _, u in f["latency"].values()])
    burst = year.burst[urls]
    print(
        f"wall time {wall:.1f} s: {n / wall:,.0f} reports/s overall "
        f"(intake alone {f['intake_s']:.1f} s)"
    )
    settle = f["settle_s"]
    print_year(n, wall, sum(f["cpu_s"].values()))
    print(
        "  then every outbox empty and every hash announcement receipted after "
        + (f"{settle:.1f} s more" if settle is not None else "more than 300 s (not reached)")
    )
    p = {k: _pcts(v) for k, v in (("all", lat), ("burst", lat[burst]), ("steady", lat[~burst]))}
    (a50, a99), (b50, b99) = p["all"], p["burst"]
    print(
        f"intake → receipt: p50 {a50:,.0f} ms, p99 {a99:,.0f} ms ({len(lat):,} reports; "
        f"the burst's {int(burst.sum()):,}: p50 {b50:,.0f} / p99 {b99:,.0f} ms; "
        + (
            "unpaced submission, so this is mostly queueing behind the year)"
            if args.rate is None
            else f"steady reports paced at {args.rate:g}/s in all)"
        )
    )
    rows = node_rows(nodes, f, wall)
    print_table(rows)
    print_known(year, rows)
    print(
        f"the analysts' clients (this process, building and streaming the reports): "
        f"{f['client_cpu_s']:.1f} CPU s"
    )
    if "assess" in f:
        print_assess(f["assess"])
    if args.db == "postgresql":
        print("  (the PostgreSQL server's own CPU and memory are not in the nodes' figures)")
    print(f"machine: {f['load']}")
    return {
        "bench": "replay",
        "db": args.db,
        "fraction": args.fraction,
        "reports": n,
        "wall_s": round(wall, 1),
        "reports_per_s": round(n / wall),
        "year_min_at_this_rate": round(shape.YEAR_REPORTS / (n / wall) / 60, 1),
        "node_cpu_ms_per_report": round(1000 * sum(f["cpu_s"].values()) / n, 2),
        "intake_s": round(f["intake_s"], 1),
        "settle_s": None if settle is None else round(settle, 1),
        "latency_ms": {k: {"p50": round(v[0], 1), "p99": round(v[1], 1)} for k, v in p.items()},
        "nodes": rows,
        "client_cpu_s": round(f["client_cpu_s"], 1),
        "assess": f.get("assess"),
        "load": f["load"],
    }


def print_known(year: shape.Year, rows: dict[str, dict[str, Any]]) -> None:
    known = sum(r["known_items"] for r in rows.values()) / len(year)
    print(
        f"  items marked known content at their holder: {known:.1%} of the year ("
        f"{1 - year.new_content.mean():.1%} repeat content seen before; a repeat that reaches its "
        "holder before the first sighting's announcement does is not marked)"
    )


def print_year(n: int, wall: float, cpu: float) -> None:
    """The whole year from this part of it: at the measured rate, and at the CPU time the nodes
    spent per report if they had the machine's cores to themselves (both linear in reports)."""
    per_report = cpu / n
    cores = os.cpu_count() or 1
    print(
        f"  the nodes' CPU: {1000 * per_report:.2f} ms per report in all; the whole year "
        f"({shape.YEAR_REPORTS:,}) at this run's rate: {shape.YEAR_REPORTS / (n / wall) / 60:.0f} "
        f"min; on {cores} cores free of other work, at least "
        f"{shape.YEAR_REPORTS * per_report / cores / 60:.0f} min (goal: under 15)"
    )


def print_assess(a: dict[str, Any]) -> None:
    delivered = a["delivered_s"]
    print(
        f"assessed at the holders: {a['made']:,} of {a['cases']:,} cases, {a['per_s']:,.0f} "
        f"Assess calls/s ({ANALYSTS} analysts per holder), {a['illegal_share']:.1%} assessed "
        "illegal (each confirms the origin's classification; doubtful → not illegal); every "
        "event receipted by its origins and the coordinator "
        + (f"{delivered:.1f} s after the first call" if delivered is not None else "not in 300 s")
    )
    print(
        "  (the year's other reports are not assessed at their holder: their '65 % illegal' "
        "is the origin analysts' classification carried in the report's items)"
    )


def _pcts(values: np.ndarray) -> tuple[float, float]:
    if not len(values):
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def node_rows(nodes: dict[str, Node], f: dict[str, Any], wall: float) -> dict[str, dict[str, Any]]:
    rows = {}
    for m, node in nodes.items():
        h, size = f["held"][m], f["db_bytes"][m]
        cpu, (_, rss) = f["cpu_s"][m], f["usage"][m]
        stored = h["origin"] + h["received"]
        rows[m] = {
            "submitted": node.submitted,
            "intake_per_s": round(node.acked / node.intake_s) if node.intake_s else 0,
            "received": h["received"],
            "received_per_s": round(h["received"] / wall),
            "cases": h["cases"],
            "known_items": h["known_items"],
            "refused": len(node.refused),
            "cpu_s": round(cpu, 1),
            "cpu_ms_per_report": round(1000 * cpu / stored, 2) if stored else None,
            "peak_rss_mib": round(rss),
            "db_mib": round(size / 2**20, 1),
            "db_bytes_per_report": round(size / stored) if stored else None,
        }
        if node.refused:
            print(f"  {m} refused {len(node.refused)}, e.g. {node.refused[0]}")
    return rows


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    head = ("node", "submitted", "intake/s", "received", "recv/s", "cases", "CPU s", "CPU ms/rep",
            "peak RSS MiB", "DB MiB", "B/report")  # fmt: skip
    keys = ("submitted", "intake_per_s", "received", "received_per_s", "cases", "cpu_s",
            "cpu_ms_per_report", "peak_rss_mib", "db_mib", "db_bytes_per_report")  # fmt: skip
    print("  " + " ".join(f"{h:>12}" for h in head))
    for m, r in rows.items():
        cells = [m] + [f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in keys]
        print("  " + " ".join(f"{c:>12}" for c in cells))
    print("  (received: reports stored as their holder; CPU ms and bytes per report: per report "
          "stored at the node, submitted there or received)")  # fmt: skip


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--fraction", type=float, default=1.0, help="part of the year (default 1)")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument(
        "--assess",
        type=int,
        help="cases the holders assess afterwards through the Cases service (default 1,000; "
        "--quick 300)",
    )
    p.add_argument(
        "--rate",
        type=float,
        help="pace the steady reports at this many per second in all (default: unpaced; "
        "the burst is never paced)",
    )
    p.add_argument("--keep", action="store_true", help="keep the node directories and logs")
    args = p.parse_args()
    if args.quick:
        args.fraction = 0.01
    if args.assess is None:
        args.assess = 300 if args.quick else 1000
    started = time.monotonic()
    pg = common.PostgresDatabases() if args.db == "postgresql" else None
    try:
        with common.scratch("ihx-bench-replay-", keep=args.keep) as root:
            result = run(args, pg, root)
    finally:
        if pg is not None:
            pg.close()
    if args.keep:
        print(f"node directories and logs kept in {root}")
    total = time.monotonic() - started
    print(f"the whole bench, set-up and clean-up included: {total:.0f} s")
    common.emit({**result, "bench_s": round(total)})


if __name__ == "__main__":
    main()
