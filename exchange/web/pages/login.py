"""Logging in by pasting a token, and logging out; ``/healthz`` for the probes.

The login form posts the token and the form's CSRF token (double submit, see ``gate``); a
refused token answers the form again (401) with the verifier's one-line reason — never the
token. ``next`` returns the person to the page that sent them here, and only to a local path.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from auth.errors import AuthError
from auth.tokens import MAX_TOKEN_LENGTH
from exchange.web.context import Web
from exchange.web.errors import BadQuery

MAX_FORM_BYTES = MAX_TOKEN_LENGTH + 4096


def local_path(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/`` (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:2000]


def login_form(web: Web, request: Request, *, status: int = 200, problem: str = "") -> Response:
    csrf = web.gate.login_token(request)
    response = web.renderer.page(
        "login.html",
        session=web.gate.optional(request),
        path="/login",
        status=status,
        csrf=csrf,
        next=local_path(request.query_params.get("next")),
        problem=problem,
    )
    web.gate.set_login_token(response, csrf)
    return response


async def login(web: Web, request: Request) -> Response:
    if request.method == "GET":
        return login_form(web, request)
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise BadQuery("the form is too large")
    form = await request.form(max_files=0, max_fields=8, max_part_size=MAX_FORM_BYTES)
    csrf, token, wanted = (form.get(k) for k in ("csrf", "token", "next"))
    web.gate.check_login_csrf(request, csrf if isinstance(csrf, str) else None)
    if not isinstance(token, str) or not token.strip():
        return login_form(web, request, status=400, problem="paste a token")
    try:
        session = web.gate.login(token, request)
    except AuthError as error:
        status = 403 if error.code == "permission-denied" else 401
        return login_form(web, request, status=status, problem=f"token refused: {error}")
    target = local_path(wanted if isinstance(wanted, str) else None)
    response = RedirectResponse(target, status_code=303)
    web.gate.set_session(response, session)
    return response


async def logout(web: Web, request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
    csrf = form.get("csrf")
    web.gate.logout(request, csrf if isinstance(csrf, str) else None)
    response = RedirectResponse("/login", status_code=303)
    web.gate.clear_session(response)
    return response


def routes(web: Web) -> list[BaseRoute]:
    async def login_endpoint(request: Request) -> Response:
        return await login(web, request)

    async def logout_endpoint(request: Request) -> Response:
        return await logout(web, request)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return [
        Route("/login", login_endpoint, methods=["GET", "POST"]),
        Route("/logout", logout_endpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
