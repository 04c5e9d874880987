"""``ihx demo``: a local federation on loopback, a realistic mix of reports, what happened where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from exchange.cli.common import CliError


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        keep: Annotated[
            Path | None,
            typer.Option(help="Keep the nodes' directories here (must be empty or absent)."),
        ] = None,
    ) -> None:
        """Run four nodes (NL, DE, US, coordinator) and exchange a day of reports."""
        if keep is not None and keep.exists() and any(keep.iterdir()):
            raise CliError(f"{keep}: directory is not empty")
        # Imported here: the demo pulls in the whole node, which no other command's start
        # should pay for (`ihx --help` and every short command would wait for it).
        from exchange.tools.demo import run_demo

        console = Console(highlight=False, emoji=False, markup=True, width=140)
        code = run_demo(keep, console)
        if code:
            raise typer.Exit(code)
