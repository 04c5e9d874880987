"""The web view draws a chart once per kept snapshot (exchange/web/figures.py), real figures."""

from __future__ import annotations

from datetime import date

from exchange.stats.charts import Chart
from exchange.stats.model import Granularity, Period
from exchange.web.figures import TTL, Snapshots
from tests.exchange.stats.conftest import World


def test_a_chart_is_drawn_once_per_snapshot_and_again_for_a_newer_one(world: World) -> None:
    world.report("kept-1")
    snapshots = Snapshots(world.figures, world.clock)
    today = world.clock().date()
    period = Period(date(today.year, 1, 1), today, Granularity.MONTH)
    first = snapshots.chart(period, Chart.COUNTRIES, frozenset({"US"}))
    assert 'id="bar-US"' in first
    # the same snapshot: the very same drawing, not a new render
    assert snapshots.chart(period, Chart.COUNTRIES, frozenset({"US"})) is first
    world.report("kept-2", country="JP")
    world.later(seconds=TTL.total_seconds() + 1)
    newer = snapshots.chart(period, Chart.COUNTRIES, frozenset({"US"}))
    assert newer is not first
    assert 'id="bar-JP"' in newer
