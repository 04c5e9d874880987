"""The one table from error types to HTTP answers (the web view's ``edge/status.py``).

First match wins, subclasses before their bases. A page that needs a session answers a missing,
forged or expired one with a redirect to the login page (``next`` names the page, a local path
only); everything else is an error page with the error's one-line message. An error type not
listed is a bug: 500, logged with its traceback, and the page says nothing of it.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth.errors import AuthError, PermissionDenied, TokenInvalid
from common.errors import IhxError
from exchange.errors import (
    InvalidEvent,
    MalformedRequest,
    NotFound,
    OutOfRange,
    Overloaded,
    StorageUnavailable,
)
from exchange.web.errors import BadQuery, CsrfRefused, LoginRequired
from exchange.web.render import Renderer
from exchange.web.sessions import Session

log = logging.getLogger(__name__)

STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (CsrfRefused, 403, "Form refused"),
    (PermissionDenied, 403, "Not allowed"),
    (TokenInvalid, 401, "Token refused"),
    (BadQuery, 400, "Bad request"),
    (InvalidEvent, 400, "Bad request"),
    (MalformedRequest, 400, "Bad request"),
    (OutOfRange, 400, "Bad request"),
    (NotFound, 404, "Not found"),
    (Overloaded, 503, "Busy"),
    (StorageUnavailable, 503, "Database unavailable"),
    (AuthError, 403, "Not allowed"),
)


def login_redirect(request: Request) -> RedirectResponse:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?next=" + quote(wanted, safe=""), status_code=303)


def _answer(request: Request, error: Exception) -> tuple[int, str, str]:
    for kind, status, title in STATUS:
        if isinstance(error, kind):
            return status, title, str(error)
    log.error("web: %s %s failed", request.method, request.url.path, exc_info=error)
    return 500, "Internal error", "something went wrong; it was logged"


def error_response(
    renderer: Renderer, request: Request, error: Exception, session: Session | None
) -> Response:
    if isinstance(error, LoginRequired):
        return login_redirect(request)
    status, title, message = _answer(request, error)
    if isinstance(error, IhxError) and status == 403:
        log.info("web: %s %s refused: %s", request.method, request.url.path, error.code)
    return renderer.page(
        "error.html",
        session=session,
        path=request.url.path,
        status=status,
        title=title,
        message=message,
    )
