"""The node's statistics for the web view: a period from the query, its snapshot, kept briefly.

A statistics page asks for the snapshot once and each of its charts once more (every chart is
its own image request), so the snapshot of a period is kept ``TTL`` (30 s, ``kept.Kept``);
older or further ones are computed again (``NodeFigures.snapshot``, which folds the
rollups first through the web's own writer). Periods come from ``from``/``to``/``by``: whole
days, at most ``MAX_DAYS`` long (the model's bucket limit refuses a finer one too long).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from common.clock import Clock
from exchange.errors import InvalidStatisticsRequest
from exchange.kept import Kept
from exchange.stats import asked
from exchange.stats.charts import Chart, chart_svg
from exchange.stats.figures import NodeFigures
from exchange.stats.model import Granularity, Period, Snapshot
from exchange.web.errors import BadQuery

TTL = timedelta(seconds=30)
KEPT = 32
MAX_DAYS = 3_660


def parse_period(params: Mapping[str, str], today: date) -> Period:
    """The period asked for; by default the last twelve months (this one included), by month.

    The texts are read by the one statistics period parser (``stats.asked``) that the RPC and
    ``ihx stats`` use, so each refuses the same things; the web adds its defaults and a day cap.
    """
    start = (today.replace(day=1) - timedelta(days=334)).replace(day=1)
    first = params.get("from", "").strip() or start.isoformat()
    last = params.get("to", "").strip() or today.isoformat()
    by = params.get("by", "").strip() or Granularity.MONTH.value
    try:
        period = asked.parse_period(first, last, by, names=("from", "to", "by"))
    except InvalidStatisticsRequest as error:
        raise BadQuery(error.message) from None
    if (period.last - period.first).days >= MAX_DAYS:
        raise BadQuery(f"to: a period is at most {MAX_DAYS} days")
    return period


def period_query(period: Period) -> str:
    return urlencode(
        {"from": period.first.isoformat(), "to": period.last.isoformat(), "by": period.granularity}
    )


class Snapshots:
    """A period's snapshot and its charts, each kept ``TTL``: a chart is drawn once per
    snapshot (a year by day takes a matplotlib render of 100-300 ms), not once per viewer."""

    def __init__(self, figures: NodeFigures, clock: Clock) -> None:
        self._figures = figures
        self._kept: Kept[Period, Snapshot] = Kept(clock, ttl=TTL, most=KEPT)
        self._charts: Kept[tuple[Period, datetime, Chart], str] = Kept(
            clock, ttl=TTL, most=KEPT * len(Chart)
        )

    def of(self, period: Period) -> Snapshot:
        return self._kept.get(period, lambda: self._figures.snapshot(period))

    def chart(self, period: Period, chart: Chart, member_countries: frozenset[str]) -> str:
        """``chart`` of the period's kept snapshot, as an SVG document."""
        snapshot = self.of(period)
        return self._charts.get(
            (period, snapshot.generated_at, chart),
            lambda: chart_svg(snapshot, chart, member_countries=member_countries),
        )
