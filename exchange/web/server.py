"""Serving the web view with uvicorn: HTTPS when ``[web]`` names a certificate and key.

``serve`` blocks until the process is told to stop (SIGINT/SIGTERM, handled by uvicorn).
``server_for`` gives the ``uvicorn.Server`` itself, for callers that run it in a thread (the
browser tests, the benchmark). Proxy headers are not trusted: the view never takes a client
address or scheme from a header.

Slow clients: at most ``[web] max_connections`` connections and requests at once (beyond, 503),
idle keep-alive connections closed after ``KEEP_ALIVE_S``, a request's head due within
``[web] header_timeout_s`` (``protocol``), and h11's buffer for an incomplete head bounded. A
reverse proxy with its own timeouts must still front the view (docs/web.md).
"""

from __future__ import annotations

import uvicorn

from common.clock import Clock, system_clock
from exchange.ops.listen import check_bindable
from exchange.settings import Settings
from exchange.settings.fields import check_address
from exchange.web.app import build_app
from exchange.web.protocol import protocol_class

KEEP_ALIVE_S = 5
MAX_HEAD_BYTES = 16 * 1024  # a request line and headers; the cookie is one short id


def server_for(
    settings: Settings, *, clock: Clock = system_clock, listen: str | None = None
) -> uvicorn.Server:
    address = listen or settings.web.listen
    host = check_address(address, "web.listen")
    port = int(address.rpartition(":")[2])
    check_bindable(address)  # a port in use named now, not as uvicorn's own exit
    tls = settings.web
    config = uvicorn.Config(
        build_app(settings, clock=clock),
        host=host,
        port=port,
        ssl_certfile=str(tls.tls_cert) if tls.tls_cert else None,
        ssl_keyfile=str(tls.tls_key) if tls.tls_key else None,
        # The client's address (the login limit's key) from X-Forwarded-For only when the peer
        # is a proxy the operator named: from anyone else the header is ignored.
        proxy_headers=bool(tls.trusted_proxies),
        forwarded_allow_ips=list(tls.trusted_proxies) or None,
        server_header=False,
        access_log=False,
        log_level="warning",
        lifespan="on",
        http=protocol_class(tls.header_timeout_s),
        limit_concurrency=tls.max_connections,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    server_for(settings).run()
