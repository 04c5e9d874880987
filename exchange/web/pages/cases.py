"""The case queues and a case page with its items, takedown clocks, PDQ matches and timeline.

Queues are the node's own work queues (``CaseViews.queue``: cases held here, oldest clock first,
keyset-paged by the cursor the view hands out); the queues' counts are at most 15 s old. A case
page shows what ``CaseViews.case`` knows; its URL only to ``admin`` (others read "hidden"), and
every view is first recorded in the routing log (``audit``, one entry per viewer, case and
10 minutes) — a view the log cannot record is not shown. HEAD is refused on case pages, and a
session may open ``CASE_VIEW_BURST`` case pages at once, then one a second. A URL export's
case ids are recorded page by page before the rows leave. Scope ``cases:work``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from auth.tokens import Scope
from exchange.client.case_text import (
    CLOCK_LABELS,
    event_text,
    item_name,
    items_text,
    known_text,
    move_text,
    moved_from_text,
    near_summary,
    near_text,
    takedown_clock,
)
from exchange.domain import is_case_id
from exchange.errors import NotFound, Overloaded
from exchange.lifecycle.model import Queue
from exchange.stats.export import (
    DEFAULT_CASE_COLUMNS,
    CaseColumn,
    CaseFilter,
    case_columns,
    cases_csv,
)
from exchange.web.context import Web, bind
from exchange.web.errors import BadQuery
from exchange.web.gate import URL_SCOPE

QUEUE_PAGE = 50


def _queue(value: str) -> Queue:
    try:
        return Queue(value or Queue.UNASSESSED.value)
    except ValueError:
        raise BadQuery("queue: not one of " + ", ".join(q.value for q in Queue)) from None


def queues_page(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.CASES_WORK)
    queue = _queue(request.query_params.get("queue", ""))
    after = request.query_params.get("after", "")
    if len(after) > 64:
        raise BadQuery("after: not a queue cursor from this node")
    rows, cursor = web.views.queue(queue, after=after, limit=QUEUE_PAGE)
    return web.renderer.page(
        "queues.html",
        session=session,
        path="/cases",
        queues=list(web.queue_counts.get("all", web.views.queue_counts).items()),
        queue=queue,
        rows=rows,
        cursor=cursor,
        first=bool(after),
        may_see_urls=session.principal.has(URL_SCOPE),
        default_columns=",".join(c.value for c in DEFAULT_CASE_COLUMNS),
    )


def case_page(web: Web, request: Request) -> Response:
    if request.method != "GET":  # HEAD would record a view nobody saw
        return Response(status_code=405, headers={"allow": "GET"})
    session = web.gate.require(request, Scope.CASES_WORK)
    if not web.case_views.allow(session.id):
        raise Overloaded("too many case pages in a short time; wait a minute")
    case_id = request.path_params["case_id"]
    if not is_case_id(case_id):
        raise NotFound("no such case here")
    case = web.views.case(case_id)
    show_url = session.principal.has(URL_SCOPE)
    web.audit.case_viewed(case, session.principal, url_shown=show_url and bool(case.url))
    items = [(item_name(s.ref.report_id, s.ref.index), s, takedown_clock(s)) for s in case.items]
    timeline = [(e, items_text(e), event_text(e)) for e in case.timeline]
    history = [(e, items_text(e), event_text(e)) for e in case.history]
    return web.renderer.page(
        "case.html",
        session=session,
        path="/cases",
        case=case,
        show_url=show_url,
        items=items,
        clock_labels=CLOCK_LABELS,
        timeline=timeline,
        history=history,
        moved_from=moved_from_text(case.moved_from) if case.moved_from else "",
        moved_to=[move_text(m) for m in case.moved_to],
        pdq=[
            (
                item_name(p.report_id, p.index),
                p,
                known_text(p),
                near_summary(p),
                [(n, near_text(n)) for n in p.near],
            )
            for p in case.pdq
        ],
    )


def cases_download(web: Web, request: Request) -> Response:
    """The cases held here as CSV (``stats/export.cases_csv``); the URL column only for admin.
    The export is audited as one ``viewed`` entry before anything is read."""
    session = web.gate.require(request, Scope.CASES_WORK)
    may_see = session.principal.has(URL_SCOPE)
    wanted = request.query_params.get("columns", "")
    status = request.query_params.get("status", "")
    if len(wanted) > 500:
        raise BadQuery("columns: at most 500 characters")
    if status not in {"", "open", "closed"}:
        raise BadQuery("status: open, closed or empty (every case)")
    columns = case_columns(wanted, may_see_urls=may_see) if wanted else DEFAULT_CASE_COLUMNS
    url_shown = CaseColumn.URL in columns
    web.audit.cases_exported(
        session.principal,
        columns=[c.value for c in columns],
        status=status,
        url_shown=url_shown,
    )
    return StreamingResponse(
        cases_csv(
            web.local.engine,
            columns,
            CaseFilter(status=status or None),
            may_see_urls=may_see,
            before_page=web.audit.url_pages(session.principal) if url_shown else None,
        ),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="cases.csv"'},
    )


def routes(web: Web) -> list[BaseRoute]:
    return [
        Route("/cases.csv", bind(web, cases_download), methods=["GET"]),
        Route("/cases", bind(web, queues_page), methods=["GET"]),
        Route("/cases/{case_id}", bind(web, case_page), methods=["GET"]),
    ]
