"""Pages from the Jinja2 templates shipped in the package, autoescaped.

Every page extends ``base.html`` (skip link, one ``<h1>``, the navigation the session's scopes
open, the logout form with its CSRF token). The helpers here are the only formatting the
templates use, so a time or a duration reads the same on every page (and as the CLI prints it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from auth.tokens import Scope
from exchange.client.case_text import duration_text
from exchange.web.sessions import Session

NAV: tuple[tuple[str, str, Scope], ...] = (
    ("/", "Overview", Scope.LOG_READ),
    ("/log", "Routing log", Scope.LOG_READ),
    ("/cases", "Case queues", Scope.CASES_WORK),
    ("/stats", "Statistics", Scope.STATS_READ),
    ("/hosts", "Hoster scorecard", Scope.STATS_READ),
)


def time_text(at: datetime | None) -> str:
    """UTC to the second, as people read it; ``—`` when there is none."""
    if at is None:
        return "—"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds_text(seconds: float | None) -> str:
    return duration_text(None if seconds is None else timedelta(seconds=seconds))


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("exchange.web", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = time_text
    env.filters["duration"] = duration_text
    env.filters["seconds"] = seconds_text
    return env


class Renderer:
    def __init__(self, *, member: str) -> None:
        self._env = _environment()
        self._member = member

    def page(
        self,
        template: str,
        *,
        session: Session | None,
        path: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        nav = [
            (href, label, href == path or (href != "/" and path.startswith(href)))
            for href, label, scope in NAV
            if session is not None and session.principal.has(scope)
        ]
        html = self._env.get_template(template).render(
            session=session, nav=nav, member=self._member, **context
        )
        return HTMLResponse(html, status_code=status)
