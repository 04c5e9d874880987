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
from exchange.kept import Kept
from exchange.stats.charts import Chart, chart_svg
from exchange.stats.figures import NodeFigures
from exchange.stats.model import Granularity, Period, Snapshot
from exchange.web.errors import BadQuery

TTL = timedelta(seconds=30)
KEPT = 32
MAX_DAYS = 3_660


def _day(params: Mapping[str, str], name: str, default: date) -> date:
    value = params.get(name, "").strip()
    if not value:
        return default
    if len(value) != 10:
        raise BadQuery(f"{name}: a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{name}: a date, YYYY-MM-DD") from None


def parse_period(params: Mapping[str, str], today: date) -> Period:
    """The period asked for; by default the last twelve months (this one included), by month."""
    start = (today.replace(day=1) - timedelta(days=334)).replace(day=1)
    first, last = _day(params, "from", start), _day(params, "to", today)
    by = params.get("by", "").strip() or Granularity.MONTH.value
    try:
        granularity = Granularity(by)
    except ValueError:
        raise BadQuery("by: one of day, week, month, year") from None
    if last < first:
        raise BadQuery("to: must not be before from")
    if (last - first).days >= MAX_DAYS:
        raise BadQuery(f"to: a period is at most {MAX_DAYS} days")
    try:
        return Period(first, last, granularity)
    except ValueError as error:
        raise BadQuery(f"by: {error}") from None


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
