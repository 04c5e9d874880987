"""Security headers on every response of ``ihx web``, as one ASGI middleware.

A strict Content-Security-Policy (nothing but the package's own style sheet and images; no
script at all — the pages are server-rendered HTML with links and GET forms; forms post only to
this origin; no framing; no ``<base>``), no MIME sniffing, no referrer (a case id in a URL never
leaves in a Referer), and ``no-store`` so a shared machine's cache keeps no page. Chart images
(SVG drawn by matplotlib, which styles its elements inline) get their own policy allowing
inline styles and nothing else: an SVG loaded through ``<img>`` never runs script anyway.
When the view is served to browsers over HTTPS (``secure``: TLS here or at a proxy in front),
Strict-Transport-Security tells them never to use plain HTTP for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
STATIC_PREFIX = "/static/"
HSTS = b"max-age=31536000"


def headers_for(path: str, content_type: str) -> list[tuple[bytes, bytes]]:
    """The security headers of a response to ``path`` with ``content_type``."""
    image = content_type.startswith("image/svg+xml")
    policy = IMAGE_POLICY if image else PAGE_POLICY
    cache = b"private, max-age=3600" if path.startswith(STATIC_PREFIX) else b"no-store"
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cache-control", cache),
    ]


class SecurityHeaders:
    """Adds ``headers_for`` to every HTTP response (replacing any the app set)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                kind = next(
                    (v.decode("latin-1") for k, v in given if k.lower() == b"content-type"), ""
                )
                extra = [(b"strict-transport-security", HSTS)] if self.hsts else []
                message["headers"] = given + headers_for(path, kind) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
