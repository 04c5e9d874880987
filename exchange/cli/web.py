"""``ihx web``: serve the read-only dashboard of a node (exchange/web/, docs/web.md).

Its own process beside the node, reading the node's database (``open_local``). It refuses to
start unless ``[web] enabled = true`` — a browser-facing listener is opened only on purpose —
and ``--listen`` overrides ``[web] listen`` for one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import CliError, err
from exchange.settings import load_settings
from exchange.settings.fields import check_address


def register(app: typer.Typer) -> None:
    app.command("web")(web_command)


def web_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
    ],
    listen: Annotated[
        str | None, typer.Option(help="host:port to serve on (default: the web.listen setting).")
    ] = None,
) -> None:
    """Serve the read-only web view (overview, routing log, cases, statistics)."""
    from exchange.web.server import server_for  # Starlette and uvicorn only when serving

    settings = load_settings(config)
    if not settings.web.enabled:
        raise CliError(f"{config}: the web view is off; set [web] enabled = true to serve it")
    if listen is not None:
        try:
            check_address(listen, "--listen")
        except ValueError as error:
            raise CliError(str(error)) from None
    server = server_for(settings, listen=listen)
    scheme = "https" if settings.web.tls_cert else "http"
    err().print(f"ihx web for {settings.member} on {scheme}://{listen or settings.web.listen}/")
    server.run()
