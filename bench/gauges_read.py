"""One read of the metrics' database gauges (exchange/ops/gauges.py) over a node with many cases.

The node is web.py's: one real report reaches de-eco and is assessed there, then de-eco's
SQLite database is grown from it to ``--cases`` cases (default 100,000; ``--quick`` 20,000), each
with an open item in a work queue, and a third of them offered to one of three partners (half of
those acknowledged, half pulled). Then ``DatabaseGauges.refresh`` — every queue count, the
partners' backlog, the outbox and the peers — is timed ``--rounds`` times (median, max). The
node's thread does this once every ``[metrics] refresh_s`` (15 s); a scrape never does.

    .venv/bin/python bench/gauges_read.py [--cases N] [--rounds N] [--quick]
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import bench_common as common
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, text
from web import DE, SEQ, grow, one_real_case

from exchange.lifecycle.views import CaseViews
from exchange.ops.gauges import DatabaseGauges, GaugeSources
from exchange.store.engine import open_engine


def offer_to_partners(db: Engine, count: int) -> None:
    """A third of the grown cases offered to partners p-0..p-2; half acknowledged, half pulled."""
    now = int(datetime.now(UTC).timestamp() * 1_000_000)
    with db.begin() as conn:
        conn.execute(
            text(
                f"{SEQ}INSERT INTO partner_cases "
                "(partner, case_id, assigned_at, visible_after, pulls, acked_at) "
                "SELECT 'p-' || (n % 3), 'c-' || printf('%032x', n), :now, NULL, n % 2, "
                "CASE WHEN n % 4 = 0 THEN :now END FROM seq WHERE n % 3 = 0"
            ),
            {"count": count, "now": now},
        )


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    count = 20_000 if args.quick else args.cases
    with common.scratch("ihx-gauges-") as root:
        fed = one_real_case(root)
        db = open_engine(fed.settings[DE].database_url)
        try:
            grow(db, count)
            offer_to_partners(db, count)
            clock = lambda: datetime.now(UTC)  # noqa: E731
            views = CaseViews(self_member=DE, engine=db, clock=clock)
            sources = GaugeSources(
                engine=db,
                clock=clock,
                queues=lambda: {str(q): n for q, n in views.queue_counts().items()},
            )
            failures = Counter("failures", "", registry=CollectorRegistry())
            gauges = DatabaseGauges(sources, failures, interval=3600)
            times = []
            for _ in range(args.rounds):
                began = time.perf_counter()
                gauges.refresh()
                times.append((time.perf_counter() - began) * 1000)
            families = {f.name: f for f in gauges.collect()}
            queued = {s.labels["queue"]: s.value for s in families["ihx_case_queue"].samples}
            backlog = sum(s.value for s in families["ihx_partner_backlog"].samples)
        finally:
            db.dispose()
        assert failures._value.get() == 0, "a gauge read failed"
        print(f"{count} cases; queues {queued}; partner backlog {backlog:.0f}")
        print(
            f"refresh: median {common.median(times):.0f} ms, max {max(times):.0f} ms "
            f"({args.rounds} rounds)"
        )
        common.emit(
            {
                "cases": count,
                "refresh_ms_median": round(common.median(times), 1),
                "refresh_ms_max": round(max(times), 1),
                "partner_backlog": backlog,
            }
        )


if __name__ == "__main__":
    main()
