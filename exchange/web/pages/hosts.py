"""The hoster scorecard (``ihx hosts``): how each hoster answered this node's notices.

Scope ``stats:read``: figures per hoster (ASN, organisation), never a URL.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auth.tokens import Scope
from exchange.takedown.scorecard import scorecard
from exchange.web.context import Web, bind


def hosts_page(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.STATS_READ)
    now = web.clock()
    scores = scorecard(web.local.engine, web.local.member, now)
    return web.renderer.page("hosts.html", session=session, path="/hosts", scores=scores, at=now)


def routes(web: Web) -> list[BaseRoute]:
    return [Route("/hosts", bind(web, hosts_page), methods=["GET"])]
