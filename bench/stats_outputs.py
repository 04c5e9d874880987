"""Statistics' outputs: CSV export rate and memory, chart rendering time.

- cases: N cases (each with two item states and a linked report) in a fresh SQLite file (or
  PostgreSQL with ``--db postgresql``) exported with every column but the URL by
  ``cases_csv`` to a file: rows/s and the Python heap's peak during the export (tracemalloc) —
  flat in N, since rows are read in keyset pages;
- log: as many routing-log entries exported by ``log_csv``: rows/s and peak;
- charts: every chart of a year's snapshot (by day, 60 countries, 200 hosters) rendered as SVG
  and PNG: milliseconds per chart.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import bench_common as common

from exchange.domain import case_id_for
from exchange.routing_log import GENESIS, LogChain
from exchange.stats.charts import Chart, chart_png, chart_svg
from exchange.stats.export import CaseColumn, cases_csv, log_csv
from exchange.stats.model import Figure, Granularity, Histogram, Period, Snapshot
from exchange.store import cases as case_store
from exchange.store import routing_log as log_store
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Opened:
    """What ``cases.open_cases`` reads of a report."""

    id: str
    url: str
    url_key: bytes
    hosting_country: str


def fill(engine, n: int) -> None:
    batch = 20_000
    chain = LogChain(0, GENESIS)
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            url = f"https://host-{i % 997}.example/{i}.jpg"
            rid = "r-" + hashlib.sha256(url.encode()).hexdigest()[:32]
            rows.append(
                (
                    case_id_for(rid, T0 + timedelta(seconds=i)),
                    _Opened(rid, url, hashlib.sha256(url.encode()).digest(), "DE"),
                )
            )
        entries = [
            chain.append(
                T0 + timedelta(seconds=i),
                "intake",
                report_id=o.id,
                member="de-eco",
                country="DE",
                detail={"reason": "served-member"},
            )
            for i, (_, o) in enumerate(rows, start=start)
        ]
        with engine.begin() as conn:
            case_store.open_cases(conn, rows, T0)
            log_store.append(conn, [e.as_row() for e in entries])


def measure(label: str, chunks_of) -> dict[str, float]:
    """Rows/s of one export to a file; then the heap's peak in a second run (tracemalloc slows
    allocation, so it is not on while timing)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as out:
        began = time.perf_counter()
        rows = -1  # the header
        for chunk in chunks_of():
            out.write(chunk)
            rows += chunk.count("\r\n")
        took = time.perf_counter() - began
    tracemalloc.start()
    for _ in chunks_of():
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mib = peak / 2**20
    print(
        f"{label}: {rows:,} rows in {took:.1f} s = {rows / took:,.0f} rows/s, "
        f"heap peak {mib:.1f} MiB"
    )
    return {f"{label}_rows": rows, f"{label}_rows_per_s": rows / took, f"{label}_peak_mib": mib}


def year_snapshot() -> Snapshot:
    period = Period(date(2025, 1, 1), date(2025, 12, 31), Granularity.DAY)
    width = len(period.starts)
    counts = {(Figure.ITEMS, f"C{i:02d}"): tuple([i % 7] * width) for i in range(60)}
    counts.update(
        {(Figure.INTAKE, "NL"): tuple([40] * width), (Figure.SENT, "de-eco"): tuple([30] * width)}
    )
    counts.update(
        {
            (Figure.HOSTER_ITEMS, f"AS{64500 + i} Hoster {i}"): tuple([i % 5] * width)
            for i in range(200)
        }
    )
    day = 86_400_000
    hist = {
        (Figure.TO_REMOVAL, "in_network"): Histogram.of([day // 2, 2 * day, 5 * day] * 1000),
        (Figure.TO_REMOVAL, "orphan"): Histogram.of([3 * day, 20 * day, 60 * day] * 1000),
        (Figure.TO_LEA, "in_network"): Histogram.of([3_600_000, day] * 1000),
    }
    return Snapshot(("nl-eokm",), period, T0, counts, hist, {})


def charts() -> dict[str, float]:
    snap = year_snapshot()
    chart_svg(snap, Chart.COUNTRIES)  # warm up (font cache, imports)
    out: dict[str, float] = {}
    for fmt, render in (("svg", chart_svg), ("png", chart_png)):
        began = time.perf_counter()
        for chart in Chart:
            render(snap, chart)
        ms = (time.perf_counter() - began) * 1000 / len(Chart)
        print(f"charts ({fmt}): {ms:.0f} ms per chart (a year by day)")
        out[f"chart_{fmt}_ms"] = ms
    return out


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args()
    n = 100_000 if args.quick else args.cases
    result: dict[str, object] = {"bench": "stats_outputs", "cases": n, "db": args.db}
    pg = common.PostgresDatabases() if args.db == "postgresql" else None
    with tempfile.TemporaryDirectory() as tmp:
        url = pg.new() if pg else f"sqlite:///{Path(tmp) / 'node.db'}"
        engine = open_engine(url)
        try:
            upgrade(engine)
            began = time.perf_counter()
            fill(engine, n)
            print(f"filled {n:,} cases and log entries in {time.perf_counter() - began:.1f} s")
            cols = [c for c in CaseColumn if c is not CaseColumn.URL]
            result |= measure("cases", lambda: cases_csv(engine, cols))
            result |= measure("log", lambda: log_csv(engine))
        finally:
            engine.dispose()
            if pg:
                pg.close()
    result |= charts()
    common.emit(result)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
