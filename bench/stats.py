"""A year of statistics on one node: the rollup fold, then ``snapshot()`` by month and by day.

A node database (SQLite file, or a fresh PostgreSQL database with ``--db postgresql``) is filled
with a year (2024) of records shaped on INHOPE's 2024 figures — 2.5 M by default, 1 % with
``--quick`` — by bulk inserts of the rows the node itself would have written (reports, items,
cases, item states, routing-log entries, takedown notices and watches), not through intake:
- 90 % reports received from peers and held here, 10 % from this node's analysts, forwarded
  (intake, sent, receipted a few seconds later — an entry of each per report, as a node wrote
  them before 0019: the folder still reads that form, and it prices each report's entries);
- 65 % of items illegal (baseline/national), 37 % new content (the rest known to the network);
- hosting NL 29 %, US 14 %, BG 9 %, HK 8 %, RO 7 % and a tail; HK and a few others have no
  member (orphan); most illegal items reported to law enforcement within hours and removed
  within days; 5 % of held cases noticed to their hoster.

Then it times: the first fold of the whole year (a one-off: a node's folder keeps up as it
goes), an incremental fold after 1,000 items change, and ``NodeFigures.snapshot`` for the year by
month and by day (goal: < 5 s), and prints the figures. Nothing is asserted.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_common as common
from sqlalchemy import Engine, column, table, text

from exchange.stats.figures import NodeFigures
from exchange.stats.model import (
    FOUR_WEEKS_MS,
    SAME_DAY_MS,
    SEVEN_DAYS_MS,
    THREE_DAYS_MS,
    Figure,
    Granularity,
    Period,
    Snapshot,
)
from exchange.store import schema
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade
from exchange.times import to_micros

ME = "nl-eokm"
YEAR = 2024
START = datetime(YEAR, 1, 1, tzinfo=UTC)
NOW = datetime(YEAR + 1, 1, 1, 6, tzinfo=UTC)
FULL = 2_500_000
CHUNK = 20_000

COUNTRIES = [
    ("NL", 29), ("US", 14), ("BG", 9), ("HK", 8), ("RO", 7), ("DE", 5), ("FR", 4), ("RU", 4),
    ("CA", 3), ("SK", 3), ("LV", 2), ("JP", 2), ("GB", 2), ("SE", 2), ("UA", 2), ("SG", 2),
    ("PL", 1), ("CZ", 1),
]  # fmt: skip
NO_MEMBER = {"HK", "SG", "UA"}  # placed here by an orphan rule: orphan items
PEERS = ["us-ncmec", "de-eco", "bg-safenet", "ro-safernet", "fr-pointdecontact", "ca-cybertip"]
SITES = [("image_host", 40), ("file_host", 25), ("website", 20), ("forum", 10), ("social", 5)]
AGES = [("prepubescent", 70), ("pubescent", 22), ("infant", 6), ("unknown", 2)]
GENDERS = [("female", 80), ("male", 12), ("both", 6), ("not_determined", 2)]
HOSTERS = [(43350, "NForce Entertainment B.V."), (24940, "Hetzner Online GmbH"),
           (16276, "OVH SAS"), (13335, "Cloudflare, Inc."), (None, "unknown hoster")]  # fmt: skip


def _weighted(pairs: list[tuple[Any, int]]) -> tuple[list[Any], list[int]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _place(rid: str) -> int:
    """A report's place in storage order (``reports.seq``): its number, as ``_record`` made it."""
    return int(rid.removeprefix("r-"), 16) + 1


def _url_key(rid: str) -> bytes:
    return hashlib.sha256(rid.encode()).digest()


def _micros(at: datetime) -> int:
    return to_micros(at)


def _bulk(t: Any) -> Any:
    """A column-only table: values go to the driver as given (times already in micros)."""
    return table(t.name, *[column(c.name) for c in t.columns])


class Filler:
    """Rows for ``n`` records, generated and inserted ``CHUNK`` at a time."""

    def __init__(self, n: int, seed: int = 2024) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.idx = 0
        self.tables = {
            name: _bulk(getattr(schema, name))
            for name in ("reports", "items", "cases", "item_states", "routing_log",
                         "takedown_notices", "takedown_notice_cases", "takedown_watches")
        }  # fmt: skip

    def fill(self, engine: Engine) -> None:
        for start in range(0, self.n, CHUNK):
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in self.tables}
            for i in range(start, min(self.n, start + CHUNK)):
                self._record(i, rows)
            with engine.begin() as conn:
                for name, batch in rows.items():
                    if batch:
                        conn.execute(self.tables[name].insert(), batch)

    def _log(self, rows: dict[str, list[dict[str, Any]]], at: datetime, **fields: Any) -> None:
        h = self.idx.to_bytes(32, "big")
        rows["routing_log"].append(
            {"idx": self.idx, "at": _micros(at), "previous_hash": h, "entry_hash": h,
             "report_id": None, "member": None, "country": None, "detail": "{}", **fields}
        )  # fmt: skip
        self.idx += 1

    def _record(self, i: int, rows: dict[str, list[dict[str, Any]]]) -> None:
        rng = self.rng
        at = START + timedelta(seconds=rng.randrange(366 * 86_400))
        rid, cid = f"r-{i:032x}", f"c-{i:032x}"
        country = rng.choices(*_weighted(COUNTRIES))[0]
        site = rng.choices(*_weighted(SITES))[0]
        if rng.random() < 0.10:
            self._forwarded(rows, rid, at, country, site)
        else:
            self._held(rows, rid, cid, at, country, site)

    def _report(self, rid: str, role: str, at: datetime, country: str, site: str) -> dict[str, Any]:
        return {
            "id": rid, "seq": _place(rid), "role": role,
            "origin_member": ME if role == "origin" else "us-ncmec",
            "url": f"https://example.invalid/{rid}", "url_key": _url_key(rid),
            "received_at": _micros(at), "stored_at": _micros(at), "site_type": site,
            "commercial": self.rng.random() < 0.1, "payment_methods": "", "notes": "",
            "hosting_country": country, "decision_member": ME, "decision_reason": "served-member",
            "case_id": None, "wire": b"", "sender": None,
        }  # fmt: skip

    def _forwarded(
        self, rows: dict[str, list[dict[str, Any]]], rid: str, at: datetime, cc: str, site: str
    ) -> None:
        peer = self.rng.choice(PEERS)
        rows["reports"].append(self._report(rid, "origin", at, cc, site))
        self._log(rows, at, kind="intake", report_id=rid, member=peer, country=cc)
        self._log(rows, at + timedelta(seconds=1), kind="sent", report_id=rid, member=peer)
        latency = timedelta(seconds=self.rng.lognormvariate(0.5, 1.0))
        self._log(rows, at + latency, kind="receipted", report_id=rid, member=peer)

    def _held(
        self,
        rows: dict[str, list[dict[str, Any]]],
        rid: str,
        cid: str,
        at: datetime,
        cc: str,
        site: str,
    ) -> None:
        rng = self.rng
        sender = rng.choice(PEERS)
        report = self._report(rid, "received", at, cc, site)
        report["case_id"], report["sender"] = cid, sender
        rows["reports"].append(report)
        rows["items"].append(
            {"report_seq": _place(rid), "idx": 0, "classification": "baseline",
             "media_type": "image", "age_group": "unknown",
             "known_member": None if rng.random() < 0.37 else "de-eco"}
        )  # fmt: skip
        state, closed = self._state(cid, rid, at, cc)
        rows["item_states"].append(state)
        rows["cases"].append(
            {"id": cid, "url_key": _url_key(rid), "url": report["url"], "hosting_country": cc,
             "status": "closed" if closed else "open", "opened_at": _micros(at),
             "updated_at": state["updated_at"], "first_report_id": rid,
             "closed_at": state["closed_at"]}
        )  # fmt: skip
        detail = f'{{"case":"{cid}","new_items":1,"via":"{sender}"}}'
        self._log(rows, at, kind="new-case", report_id=rid, member=sender, country=cc,
                  detail=detail)  # fmt: skip
        if state["classification"] in ("baseline", "national") and rng.random() < 0.05:
            self._notice(rows, cid, at, state)

    def _state(self, cid: str, rid: str, at: datetime, cc: str) -> tuple[dict[str, Any], bool]:
        rng = self.rng
        r = rng.random()
        cls = "baseline" if r < 0.55 else "national" if r < 0.65 else "not_illegal"
        illegal = cls != "not_illegal"
        hours = lambda mean: timedelta(hours=rng.expovariate(1 / mean))  # noqa: E731
        assessed = at + hours(6)
        lea = assessed + hours(3) if illegal and rng.random() < 0.95 else None
        fate = rng.random()
        stage, closed_at, moved = "not_illegal", assessed, None
        if illegal:
            if fate < 0.90:
                took = timedelta(days=rng.lognormvariate(0.7, 1.0))
                stage, closed_at = "removed", assessed + took
            elif fate < 0.92:
                stage, moved = "moved", rng.choice(["DE", "US", "RO"])
                closed_at = assessed + hours(48)
            else:
                stage, closed_at = "actioned", None
        if closed_at is not None and closed_at > NOW:
            stage, closed_at = "actioned" if illegal else "assessed", None
        updated = closed_at or lea or assessed
        return {
            "case_id": cid, "report_id": rid, "idx": 0, "holder": ME, "origin_member": "us-ncmec",
            "origin_classification": "baseline", "orphaned": cc in NO_MEMBER, "stage": stage,
            "classification": cls, "age_group": rng.choices(*_weighted(AGES))[0] if illegal
            else "unknown", "gender": rng.choices(*_weighted(GENDERS))[0] if illegal
            else "not_determined", "virtual": False, "user_generated": False,
            "child_modelling": False, "analyst_ref": None, "disputed": rng.random() < 0.02,
            "actions": 2, "last_action": None, "clock_started": _micros(at),
            "assessed_at": _micros(assessed), "lea_at": _micros(lea) if lea else None,
            "lea_partner": None, "host_notice_at": None, "host_recipient": None,
            "closed_at": _micros(closed_at) if closed_at else None,
            "close_reason": None, "moved_to_country": moved, "moved_to_member": None,
            "updated_at": _micros(min(updated, NOW)),
        }, closed_at is not None  # fmt: skip

    def _notice(
        self, rows: dict[str, list[dict[str, Any]]], cid: str, at: datetime, state: dict[str, Any]
    ) -> None:
        asn, org = self.rng.choice(HOSTERS)
        sent = at + timedelta(hours=8)
        nid = f"n-{cid[2:]}"
        rows["takedown_notices"].append(
            {"id": nid, "contact_key": org[:32], "recipient": "abuse@hoster.example",
             "escalated": False, "message_id": f"<{nid}@bench>", "status": "sent", "attempts": 1,
             "next_attempt_at": _micros(sent), "created_at": _micros(sent),
             "sent_at": _micros(sent), "error": None}
        )  # fmt: skip
        rows["takedown_notice_cases"].append(
            {"notice_id": nid, "case_id": cid, "asn": asn, "organisation": org, "items": 1}
        )
        online = state["closed_at"] is None
        rows["takedown_watches"].append(
            {"case_id": cid, "host": "example.invalid", "state": "watching" if online else "done",
             "started_at": _micros(at), "next_check_at": _micros(NOW), "checks": 3,
             "last_check_at": _micros(NOW), "last_outcome": "online" if online else "gone",
             "last_status": 200, "not_online": 0, "online_since": _micros(at), "country": None,
             "asn": asn, "organisation": org, "notices": 1, "first_notice_at": _micros(sent),
             "last_notice_at": _micros(sent), "no_contact": False, "hold_until": None,
             "updated_at": _micros(NOW)}
        )  # fmt: skip


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _change_some(engine: Engine, n: int) -> None:
    """``n`` open items change (removed now): what a day's work looks like to the folder."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE item_states SET stage = 'removed', closed_at = :now, updated_at = :now "
                "WHERE report_id IN (SELECT report_id FROM item_states WHERE stage = 'actioned' "
                "LIMIT :n)"
            ),
            {"now": _micros(NOW) + 1, "n": n},
        )


def _share(h: Any, limit: int) -> str:
    s = h.share_within(limit)
    return "-" if s is None else f"{100 * s:.1f}%"


def _beyond(h: Any, limit: int) -> str:
    s = h.share_beyond(limit)
    return "-" if s is None else f"{100 * s:.1f}%"


def _hours(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 3_600_000:.1f} h"


def print_figures(snap: Snapshot) -> None:
    items = snap.total(Figure.ITEMS)
    print(f"  items held {items:,}; intake {snap.total(Figure.INTAKE):,}; "
          f"received {snap.total(Figure.RECEIVED):,}; "
          f"sent {snap.total(Figure.SENT):,}")  # fmt: skip
    top = list(snap.by_key(Figure.ITEMS).items())[:6]
    print("  hosting: " + ", ".join(f"{k} {100 * v / max(items, 1):.0f}%" for k, v in top))
    assessed = snap.by_key(Figure.ASSESSED)
    illegal = assessed.get("baseline", 0) + assessed.get("national", 0)
    print(f"  illegal {100 * illegal / max(items, 1):.1f}%; new content "
          f"{100 * snap.total(Figure.CONTENT, 'new') / max(items, 1):.1f}%; orphan "
          f"{100 * snap.total(Figure.ITEMS_ORPHAN, 'orphan') / max(items, 1):.1f}%; moved "
          f"{snap.total(Figure.MOVED):,}")  # fmt: skip
    for fig in (Figure.TO_LEA, Figure.TO_REMOVAL):
        for key in ("in_network", "orphan"):
            h = snap.histogram(fig, key)
            print(f"  {fig} {key}: n={h.total:,} median {_hours(h.quantile_ms(0.5))} "
                  f"p90 {_hours(h.quantile_ms(0.9))} same day {_share(h, SAME_DAY_MS)} "
                  f"<=3d {_share(h, THREE_DAYS_MS)} <=7d {_share(h, SEVEN_DAYS_MS)} "
                  f">28d {_beyond(h, FOUR_WEEKS_MS)}")  # fmt: skip
    d = snap.histogram(Figure.DELIVERY)
    print(f"  delivery: n={d.total:,} p50 <= {d.quantile_ms(0.5)} ms, "
          f"p90 <= {d.quantile_ms(0.9)} ms")  # fmt: skip
    print(f"  hosters: {len(snap.by_key(Figure.HOSTER_ITEMS))}, notices "
          f"{snap.total(Figure.HOSTER_NOTICES):,}, removed {snap.total(Figure.HOSTER_REMOVED):,}, "
          f"online {sum(snap.by_key(Figure.HOSTER_ONLINE).values()):,}")  # fmt: skip
    print(f"  open work: {snap.by_key(Figure.OPEN)}")


def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'node.db'}"
        return
    dbs = common.PostgresDatabases()
    try:
        yield dbs.new("stats")
    finally:
        dbs.close()


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=None, help=f"default {FULL:,} (--quick: 1%%)")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args()
    n = args.records or (FULL // 100 if args.quick else FULL)
    folder = Path(tempfile.mkdtemp(prefix="ihx-bench-stats-"))
    try:
        for url in _database(args.db, folder):
            run(url, n, args.db)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(url: str, n: int, db: str) -> None:
    engine = open_engine(url)
    upgrade(engine)
    print(f"{n:,} records of {YEAR} into {db}")
    _, fill_s = _timed(lambda: Filler(n).fill(engine))
    print(f"fill: {fill_s:.1f} s ({n / fill_s:,.0f} records/s, bulk rows)")
    figures = NodeFigures(engine=engine, member=ME, clock=lambda: NOW)
    rows, fold_s = _timed(figures.fold)
    print(f"first fold of the year: {fold_s:.1f} s ({rows:,} item states, "
          f"{rows / max(fold_s, 1e-9):,.0f}/s)")  # fmt: skip
    _change_some(engine, 1000)
    rows2, fold2_s = _timed(figures.fold)
    print(f"incremental fold after 1,000 changes: {1000 * fold2_s:.0f} ms ({rows2:,} rows read)")
    year = (date(YEAR, 1, 1), date(YEAR, 12, 31))
    by_month, month_s = _timed(lambda: figures.snapshot(Period(*year, Granularity.MONTH)))
    by_day, day_s = _timed(lambda: figures.snapshot(Period(*year, Granularity.DAY)))
    print(f"snapshot, year by month: {month_s:.2f} s; by day: {day_s:.2f} s (goal < 5 s)")
    print_figures(by_month)
    common.emit(
        {"bench": "stats", "db": db, "records": n, "fill_s": round(fill_s, 2),
         "first_fold_s": round(fold_s, 2), "incremental_fold_ms": round(1000 * fold2_s, 1),
         "snapshot_month_s": round(month_s, 3), "snapshot_day_s": round(day_s, 3),
         "series_by_day": len(by_day.counts) + len(by_day.histograms),
         "items": by_month.total(Figure.ITEMS)}
    )  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main()
