"""``build_app``: the web view composed from a node's settings (its composition root).

Opens the node's files through ``open_local`` (database at schema head, manifest, token
verifier from the manifest and ``[auth] jwks`` — never the private key), a ``Writer`` of its own
for the audit entries (started with the app, stopped at shutdown), its own PDQ index for the
case pages' near-known content (opened in the background, a follower of the change feed), the
sessions, and the pages; everything wrapped in ``SecurityHeaders`` so even an error page
carries them. The clock is a parameter (tests move it to expire sessions and tokens).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from common.clock import Clock, system_clock
from common.errors import IhxError
from common.periodic import Periodic
from exchange.kept import Kept
from exchange.lifecycle.views import CaseViews
from exchange.local import LocalNode, open_local
from exchange.pdq.case_near import CaseNear
from exchange.pdq.matcher import PdqMatcher, follower_name
from exchange.settings import Settings
from exchange.stats.figures import NodeFigures
from exchange.store.writer import Writer
from exchange.web.audit import ViewAudit
from exchange.web.context import Web
from exchange.web.figures import Snapshots
from exchange.web.gate import Gate
from exchange.web.headers import ASGIApp, SecurityHeaders
from exchange.web.limits import RateLimit
from exchange.web.pages import cases, hosts, log, login, overview, stats
from exchange.web.pages.hosts import HOSTS_TTL
from exchange.web.render import Renderer
from exchange.web.sessions import SessionStore
from exchange.web.status import error_response
from exchange.web.trust import Trust

logger = logging.getLogger(__name__)

# The overview's status and the queues' counts: one set-based read of each per 15 s.
KEPT_TTL = timedelta(seconds=15)
# Case pages per session: an analyst clicking through a queue, not a script reloading one.
CASE_VIEW_BURST = 60
CASE_VIEW_EVERY_S = 1.0
PAGE_MODULES = (login, overview, log, cases, hosts, stats)


LOOPBACK = ("127.", "[::1]", "localhost")


def secure_cookies(settings: Settings) -> bool:
    """Whether browsers reach the view over HTTPS: ``[web] secure_cookies``, else TLS here or a
    non-loopback address (which must be fronted by a TLS proxy, docs/web.md)."""
    web = settings.web
    if web.secure_cookies is not None:
        return web.secure_cookies
    return web.tls_cert is not None or not web.listen.startswith(LOOPBACK)


def build_web(
    settings: Settings, *, clock: Clock = system_clock, rng: random.Random | None = None
) -> tuple[Web, Writer]:
    """The view's parts; ``rng`` names it among the PDQ feed's followers."""
    local: LocalNode = open_local(settings, clock=clock)
    web_settings = settings.web
    sessions = SessionStore(
        clock=clock,
        lifetime=timedelta(seconds=web_settings.session_lifetime_s),
        max_sessions=web_settings.max_sessions,
    )
    secure = secure_cookies(settings)
    writer = Writer(local.engine)
    # Opened beside the app (follow_pdq): case pages say so until then.
    name = follower_name("web", socket.gethostname(), rng or random.Random())
    pdq = local.pdq_matcher(follower=name) if web_settings.pdq_index else None
    web = Web(
        local=local,
        gate=Gate(
            Trust(local, clock, on_revoked=sessions.close_issuer),
            sessions,
            clock=clock,
            secure=secure,
            login_burst=web_settings.login_burst,
            login_total_burst=web_settings.login_total_burst,
        ),
        renderer=Renderer(member=local.member),
        views=CaseViews(
            self_member=local.member,
            engine=local.engine,
            clock=clock,
            near=CaseNear(pdq, local.engine),
        ),
        audit=ViewAudit(writer, clock),
        snapshots=Snapshots(
            NodeFigures(engine=local.engine, member=local.member, clock=clock, writer=writer),
            clock,
        ),
        queue_counts=Kept(clock, ttl=KEPT_TTL, most=1),
        status=Kept(clock, ttl=KEPT_TTL, most=1),
        clock=clock,
        case_views=RateLimit(clock, burst=CASE_VIEW_BURST, every_s=CASE_VIEW_EVERY_S),
        hosts=Kept(clock, ttl=HOSTS_TTL, most=1),
        pdq=pdq,
    )
    return web, writer


def follow_pdq(pdq: PdqMatcher, writer: Writer, interval_s: float) -> Periodic:
    """Open the view's own PDQ index (the node's file, or rebuilt from the sightings) in a
    thread — at 10 M hashes that takes seconds to minutes, and the view serves meanwhile —
    then follow the change feed as one of its followers, trimming it like the node does.
    The returned loop is stopped before the writer."""
    loop = Periodic("ihx-web-pdq-trim", interval_s, lambda: pdq.trim(writer))

    def run() -> None:
        try:
            logger.info("web view: PDQ index %s", pdq.open())
        except Exception:
            logger.exception("web view: the PDQ index did not open; case pages say so")
            return
        loop.start()

    threading.Thread(target=run, name="pdq-open", daemon=True).start()
    return loop


def build_app(
    settings: Settings, *, clock: Clock = system_clock, secure: bool | None = None
) -> ASGIApp:
    """The ASGI application of the web view for the node of ``settings``."""
    web, writer = build_web(settings, clock=clock)
    if secure is not None:
        web.gate.secure = secure

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer.start()
        web.gate.start()
        pdq_loop = None
        if web.pdq is not None:  # [web] pdq_index
            pdq_loop = follow_pdq(web.pdq, writer, settings.pdq.trim_interval_s)
        try:
            yield
        finally:
            if pdq_loop is not None:
                pdq_loop.stop()  # before the writer: a trim is a writer job
            writer.stop()
            web.gate.close()
            web.local.close()

    async def on_error(request: Request, error: Exception) -> Response:
        return error_response(web.renderer, request, error, web.gate.optional(request))

    routes: list[BaseRoute] = [r for module in PAGE_MODULES for r in module.routes(web)]
    routes.append(
        Mount("/static", StaticFiles(packages=[("exchange.web", "static")]), name="static")
    )
    app = Starlette(
        routes=routes,
        exception_handlers={IhxError: on_error, Exception: on_error},
        lifespan=lifespan,
    )
    return SecurityHeaders(app, hsts=web.gate.secure)
