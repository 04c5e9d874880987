"""The routing log: filtered, keyset-paged, with the chain's state; its CSV; its whole check.

Filters (kind, member, country, report, since, until) are parsed and bounded by ``filters``;
pages follow the entry index (``after``), so paging never skips or repeats an entry while the
node appends. The latest checkpoint's state is shown on every page (``chain``); the whole walk
(``/log/verify``) runs one at a time — a second request while one runs is told to wait (503).
``/log.csv`` streams the filtered entries (``stats/export.log_csv``, page by page).
Scope ``log:read``.
"""

from __future__ import annotations

import json
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from auth.tokens import Scope
from exchange.batch_entries import described
from exchange.errors import Overloaded
from exchange.routing_log import LogEntry
from exchange.stats import export
from exchange.store.routing_log import list_entries
from exchange.web.chain import latest_checkpoint, verify_whole_log
from exchange.web.context import Web, bind
from exchange.web.filters import KINDS, parse_log_query


def log_page(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.LOG_READ)
    query = parse_log_query(request.query_params)
    with web.local.engine.connect() as conn:
        entries, after = list_entries(conn, query.store)
    checkpoint = latest_checkpoint(
        web.local.engine, web.local.member, web.local.manifests.current()
    )
    return web.renderer.page(
        "log.html",
        session=session,
        path="/log",
        query=query,
        kinds=KINDS,
        entries=[(e, _detail(e, query.store.report_id)) for e in entries],
        next_link=query.link(after=after) if after is not None else None,
        first_link=query.link() if query.store.after_index >= 0 else None,
        csv_link=query.link(),
        checkpoint=checkpoint,
    )


def _detail(e: LogEntry, report_id: str | None) -> str:
    """The entry's detail as compact text (its JSON, keys in order); a batch's entry without
    its list of reports, but with what it says of the report the page is filtered by."""
    try:
        fields = described(e.detail, report_id) or json.loads(e.detail)
        return ", ".join(f"{k}: {v}" for k, v in fields.items())
    except (ValueError, AttributeError):
        return e.detail


def verify_page(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.LOG_READ)
    if not web.verifying.acquire(blocking=False):
        raise Overloaded("the whole log is being verified already; try again in a moment")
    try:
        verdict = verify_whole_log(
            web.local.engine, web.local.member, web.local.manifests.current()
        )
    finally:
        web.verifying.release()
    return web.renderer.page("verify.html", session=session, path="/log/verify", verdict=verdict)


def log_download(web: Web, request: Request) -> Response:
    web.gate.require(request, Scope.LOG_READ)
    query = parse_log_query(request.query_params)
    return StreamingResponse(
        export.log_csv(web.local.engine, replace(query.store, page_size=1000)),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="routing-log.csv"'},
    )


def routes(web: Web) -> list[BaseRoute]:
    return [
        Route("/log", bind(web, log_page), methods=["GET"]),
        Route("/log/verify", bind(web, verify_page), methods=["GET"]),
        Route("/log.csv", bind(web, log_download), methods=["GET"]),
    ]
