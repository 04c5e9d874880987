"""``ihx token issue``: a short-lived partner token signed with the node's own key.

With ``--network`` the token is for every node of the network (audience
``ihx-network:<name>``, issuer ``ihx-member:<member>``): only at a member the signed manifest
names a network reader, and only for the read scopes it grants (auth/manifest/readers.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from auth.tokens import Scope
from common.clock import whole_second_clock
from exchange.cli.common import CliError
from exchange.local import open_local
from exchange.settings import load_settings


def register(app: typer.Typer) -> None:
    token = typer.Typer(help="Partner tokens (JWT) issued by this node.", no_args_is_help=True)
    app.add_typer(token, name="token")

    @token.command("issue")
    def issue(
        config: Annotated[Path, typer.Option(help="The node's settings file.")],
        sub: Annotated[str, typer.Option(help="Partner id (the token subject).")],
        scope: Annotated[
            list[str],
            typer.Option(
                help="reports:submit, cases:work, cases:pull, log:read, stats:read or admin."
            ),
        ],
        ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 900,
        audience: Annotated[
            str | None, typer.Option(help="Node the token is for (default: this node).")
        ] = None,
        network: Annotated[
            bool,
            typer.Option(
                "--network",
                help="A token every node of the network accepts (log:read, stats:read only; "
                "this member must be a network reader in the manifest).",
            ),
        ] = False,
    ) -> None:
        """Print a token for SUB with the given scopes."""
        if network and audience is not None:
            raise CliError("give at most one of --network and --audience")
        settings = load_settings(config)
        scopes = []
        for s in scope:
            try:
                scopes.append(Scope(s))
            except ValueError:
                raise CliError(
                    f"--scope: unknown scope {s!r} (one of {', '.join(x.value for x in Scope)})"
                ) from None
        if not 0 < ttl <= settings.max_token_lifetime_s:
            raise CliError(f"--ttl: must be from 1 to {settings.max_token_lifetime_s:g} seconds")
        with open_local(settings, clock=whole_second_clock) as local:
            issuer = local.network_token_issuer() if network else local.token_issuer(audience)
        typer.echo(issuer.issue(sub, scopes, ttl=timedelta(seconds=ttl)))
