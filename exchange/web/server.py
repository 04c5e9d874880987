"""Serving the web view with uvicorn: HTTPS when ``[web]`` names a certificate and key.

``serve`` blocks until the process is told to stop (SIGINT/SIGTERM, handled by uvicorn).
``server_for`` gives the ``uvicorn.Server`` itself, for callers that run it in a thread (the
browser tests, the benchmark). Proxy headers are not trusted: the view never takes a client
address or scheme from a header.
"""

from __future__ import annotations

import uvicorn

from common.clock import Clock, system_clock
from exchange.settings import Settings
from exchange.settings.fields import check_address
from exchange.web.app import build_app


def server_for(
    settings: Settings, *, clock: Clock = system_clock, listen: str | None = None
) -> uvicorn.Server:
    address = listen or settings.web.listen
    host = check_address(address, "web.listen")
    port = int(address.rpartition(":")[2])
    tls = settings.web
    config = uvicorn.Config(
        build_app(settings, clock=clock),
        host=host,
        port=port,
        ssl_certfile=str(tls.tls_cert) if tls.tls_cert else None,
        ssl_keyfile=str(tls.tls_key) if tls.tls_key else None,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    server_for(settings).run()
