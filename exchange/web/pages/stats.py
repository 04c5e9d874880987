"""Statistics: the node's figures for a period, its charts, and the CSV of the figures.

The charts are the ones ``ihx stats plot`` draws (``exchange.stats.charts.chart_svg``), served
as SVG images (``/stats/chart/<name>.svg``) so the page's strict CSP holds: matplotlib styles
its elements inline, which an image may do and a page may not. Each image has the chart's
title as its alternative text, and the page a table of the totals. Scope ``stats:read``; a
snapshot has no URL, hash or case id in it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from auth.tokens import Scope
from exchange.errors import NotFound
from exchange.stats.charts import Chart
from exchange.stats.export import statistics_csv
from exchange.stats.model import Figure, Snapshot, shown
from exchange.web.context import Web, bind
from exchange.web.figures import parse_period, period_query

CHART_TITLES: dict[Chart, str] = {
    Chart.VOLUME: "Reports and items over the period",
    Chart.COUNTRIES: "Hosting countries (in-network and orphan)",
    Chart.ASSESSED: "Assessments by classification",
    Chart.TO_LEA: "Time to law enforcement (cumulative share of items)",
    Chart.TO_REMOVAL: "Time to removal (cumulative share of items)",
    Chart.SITE_TYPES: "Site types",
    Chart.AGE_GROUPS: "Age groups of illegal items",
    Chart.HOSTERS: "Hoster scorecard",
}
TOTALS = (
    (Figure.INTAKE, "Reports from this node's analysts"),
    (Figure.SENT, "Reports sent to members"),
    (Figure.RECEIVED, "Reports received from members"),
    (Figure.ITEMS, "Items held here"),
    (Figure.ASSESSED, "Items assessed"),
    (Figure.CLOSED, "Items closed"),
    (Figure.MOVED, "Items moved to another country"),
    (Figure.DISPUTED, "Disputed assessments"),
)


def _snapshot(web: Web, request: Request) -> tuple[Snapshot, str]:
    period = parse_period(request.query_params, web.clock().date())
    return web.snapshots.of(period), period_query(period)


def stats_page(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.STATS_READ)
    snapshot, query = _snapshot(web, request)
    breakdowns = [
        (label, [(k or "—", shown(figure, n)) for k, n in snapshot.by_key(figure).items()])
        for figure, label in ((Figure.ITEMS, "Items by hosting country"),)
    ]
    return web.renderer.page(
        "stats.html",
        session=session,
        path="/stats",
        period=snapshot.period,
        query=query,
        totals=[(label, snapshot.total(f)) for f, label in TOTALS],
        breakdowns=breakdowns,
        charts=[(c.value, title) for c, title in CHART_TITLES.items()],
        granularities=("day", "week", "month", "year"),
    )


def chart_image(web: Web, request: Request) -> Response:
    web.gate.require(request, Scope.STATS_READ)
    try:
        chart = Chart(request.path_params["name"])
    except ValueError:
        raise NotFound("no such chart") from None
    period = parse_period(request.query_params, web.clock().date())
    countries = frozenset(cc for m in web.local.manifests.current().members for cc in m.countries)
    return Response(web.snapshots.chart(period, chart, countries), media_type="image/svg+xml")


def stats_csv(web: Web, request: Request) -> Response:
    web.gate.require(request, Scope.STATS_READ)
    snapshot, _ = _snapshot(web, request)
    return StreamingResponse(
        statistics_csv(snapshot),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="statistics.csv"'},
    )


def routes(web: Web) -> list[BaseRoute]:
    return [
        Route("/stats", bind(web, stats_page), methods=["GET"]),
        Route("/stats/chart/{name}.svg", bind(web, chart_image), methods=["GET"]),
        Route("/stats.csv", bind(web, stats_csv), methods=["GET"]),
    ]
