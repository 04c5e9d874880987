"""The web view's pages over a node with 1 M cases: p95 server-side render time of each page.

A small federation (nl-eokm, de-eco, inhope) runs in this process long enough for one real
report to reach de-eco and be assessed there; the nodes stop, and de-eco's database is grown
from that real case to ``--cases`` cases (default 1,000,000) by bulk INSERT … SELECT (each
case with its report, link and item state, opened a minute apart going back in time) and a
routing log of one ``new-case`` entry per case, hash-chained like the node's. Then ``ihx web``
serves de-eco's database on loopback and each dashboard page is requested once ("first":
nothing the view keeps briefly is kept yet) and then ``--rounds`` times (p50, p95); the time is
from request to the last byte (loopback HTTP adds well under a millisecond). The overview's
status and the queues' counts are kept 15 s, a period's statistics 30 s (exchange/web/kept.py),
so the repeated figures show a page read within that time. The statistics' first fold of the
rollups over all the cases is timed on its own. Goal (issue 14): p95 < 200 ms per page —
printed, never asserted.

    .venv/bin/python bench/web.py [--cases N] [--rounds N] [--quick]
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common as common
from lifecycle import request
from sqlalchemy import Engine, text

from auth.tokens import Scope
from exchange.client.stubs import IntakeClient
from exchange.domain import Classification
from exchange.lifecycle.model import Assessment
from exchange.node import Node
from exchange.routing_log import LogChain
from exchange.settings.sections import WebSection
from exchange.store import schema
from exchange.store.engine import open_engine
from exchange.tools.provision import MemberPlan, free_port, provision_federation
from exchange.web.server import server_for

NL, DE, COORDINATOR = "nl-eokm", "de-eco", "inhope"
MINUTE_US = 60_000_000
SEQ = "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count) "


def one_real_case(root: Path) -> Any:
    fed = provision_federation(
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
    )
    nodes = {m: Node(fed.settings[m]) for m in (NL, DE, COORDINATOR)}
    for node in nodes.values():
        node.start()
    try:
        with IntakeClient(fed.settings[NL].listen, token=fed.token(NL), timeout=60) as client:
            (answer,) = list(client.submit_requests([request(0, "web")]))
        views = nodes[NL].case_views
        deadline = time.monotonic() + 30
        while not views.report_status(answer.report_id).case_id:
            if time.monotonic() > deadline:
                raise SystemExit("the report never reached de-eco")
            time.sleep(0.05)
        case_id = views.report_status(answer.report_id).case_id
        nodes[DE].case_work.assess(case_id, [], Assessment(Classification.BASELINE))
    finally:
        for node in nodes.values():
            node.stop()
    return fed


def clone(conn: Any, table: str, changes: dict[str, str], count: int) -> None:
    """``count`` copies of the table's one template row, with ``changes`` (SQL over n)."""
    columns = list(schema.Base.metadata.tables[table].c.keys())
    values = ", ".join(changes.get(c, f't."{c}"') for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    conn.execute(
        text(
            f"{SEQ}INSERT INTO {table} ({names}) SELECT {values} "
            f"FROM seq, (SELECT * FROM {table} LIMIT 1) t"
        ),
        {"count": count},
    )


def grow(db: Engine, count: int) -> None:
    case_id, report_id = "'c-' || printf('%032x', n)", "'r-' || printf('%032x', n)"
    shift = f"- n * {MINUTE_US}"
    with db.begin() as conn:
        clone(
            conn,
            "cases",
            {
                "id": case_id,
                "url_key": "randomblob(32)",
                "url": "t.url || '?n=' || n",
                "first_report_id": report_id,
                "opened_at": f"t.opened_at {shift}",
                "updated_at": f"t.updated_at {shift}",
            },
            count,
        )
        clone(
            conn,
            "reports",
            {
                "id": report_id,
                "seq": "t.seq + n",
                "url_key": "randomblob(32)",
                "case_id": case_id,
                "url": "t.url || '?n=' || n",
                "received_at": f"t.received_at {shift}",
                "stored_at": f"t.stored_at {shift}",
            },
            count,
        )
        clone(
            conn,
            "case_reports",
            {"case_id": case_id, "report_id": report_id, "at": f"t.at {shift}"},
            count,
        )
        clone(
            conn,
            "item_states",
            {
                "case_id": case_id,
                "report_id": report_id,
                "stage": "'unassessed'",
                "classification": "NULL",
                "assessed_at": "NULL",
                "clock_started": f"t.clock_started {shift}",
                "updated_at": f"t.updated_at {shift}",
            },
            count,
        )
    log = schema.routing_log
    with db.begin() as conn:
        last = conn.execute(
            text("SELECT idx, entry_hash, at FROM routing_log ORDER BY idx DESC LIMIT 1")
        ).one()
        chain = LogChain(last.idx + 1, last.entry_hash)
        at = datetime.now(UTC)
        rows = []
        for n in range(1, count + 1):
            rows.append(
                chain.append(
                    at,
                    "new-case",
                    report_id=f"r-{n:032x}",
                    member=NL,
                    country="DE",
                    detail={"case": f"c-{n:032x}"},
                ).as_row()
            )
            if len(rows) == 20_000:
                conn.execute(log.insert(), rows)
                rows = []
        if rows:
            conn.execute(log.insert(), rows)


class Browser:
    """A logged-in client: the session cookie the login set, and timed GETs."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        opener = urllib.request.build_opener(_NoRedirect)
        form = opener.open(base + "/login", timeout=60)
        login_cookie = form.headers["set-cookie"].split(";")[0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.read().decode())
        assert csrf is not None
        data = urllib.parse.urlencode({"csrf": csrf.group(1), "token": token, "next": "/"}).encode()
        req = urllib.request.Request(base + "/login", data=data, headers={"Cookie": login_cookie})
        try:
            opener.open(req, timeout=60)
        except urllib.error.HTTPError as answer:  # the 303 after login
            self.cookie = answer.headers["set-cookie"].split(";")[0]

    def get(self, path: str) -> float:
        start = time.perf_counter()
        req = urllib.request.Request(self.base + path, headers={"Cookie": self.cookie})
        with urllib.request.urlopen(req, timeout=600) as answer:
            answer.read()
            assert answer.status == 200, path
        return time.perf_counter() - start


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def pages(db: Engine) -> dict[str, str]:
    with db.connect() as conn:
        middle = conn.execute(text("SELECT max(idx) / 2 FROM routing_log")).scalar_one()
        oldest = conn.execute(text("SELECT id FROM cases ORDER BY opened_at LIMIT 1")).scalar_one()
    return {
        "overview": "/",
        "log (first page)": "/log",
        "log (filtered: kind+country)": "/log?kind=new-case&country=DE",
        "log (a page in the middle)": f"/log?after={middle}",
        "case queues": "/cases",
        "case page (audited)": f"/cases/{oldest}",
        "hoster scorecard": "/hosts",
        "statistics (12 months)": "/stats",
        "chart (countries)": "/stats/chart/countries.svg",
        "chart (volume)": "/stats/chart/volume.svg",
    }


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args()
    count, rounds = (20_000, 10) if args.quick else (args.cases, args.rounds)
    with tempfile.TemporaryDirectory(prefix="ihx-web-bench-") as tmp:
        fed = one_real_case(Path(tmp))
        db = open_engine(fed.settings[DE].database_url)
        started = time.perf_counter()
        grow(db, count)
        grown_s = time.perf_counter() - started
        print(f"grown to {count} cases in {grown_s:.0f} s", file=sys.stderr)
        port = free_port()
        settings = fed.settings[DE].model_copy(
            update={"web": WebSection(enabled=True, listen=f"127.0.0.1:{port}")}
        )
        server = server_for(settings)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        browser = Browser(
            f"http://127.0.0.1:{port}", fed.token(DE, Scope.ADMIN, subject="bench", ttl=900)
        )
        first_fold = browser.get("/stats")
        print(f"statistics' first fold and snapshot: {first_fold:.1f} s", file=sys.stderr)
        results: dict[str, Any] = {}
        for name, path in pages(db).items():
            cold = browser.get(path)  # the first request: nothing kept yet
            times = [browser.get(path) for _ in range(rounds)]
            results[name] = {
                "first_ms": round(cold * 1000, 1),
                "p50_ms": round(common.median(times) * 1000, 1),
                "p95_ms": round(common.percentile(times, 95) * 1000, 1),
            }
            print(
                f"{name:32} first {results[name]['first_ms']:8.1f} ms"
                f"   p50 {results[name]['p50_ms']:8.1f} ms"
                f"   p95 {results[name]['p95_ms']:8.1f} ms",
                file=sys.stderr,
            )
        server.should_exit = True
        thread.join(30)
        db.dispose()
    common.emit(
        {
            "bench": "web",
            "cases": count,
            "rounds": rounds,
            "grow_s": round(grown_s, 1),
            "statistics_first_fold_s": round(first_fold, 2),
            "pages": results,
            "goal_p95_ms": 200,
        }
    )


if __name__ == "__main__":
    main()
