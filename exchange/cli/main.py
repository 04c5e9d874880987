"""The ``ihx`` application, and the one place where errors become exit statuses.

Every command module registers its commands on ``app`` (or a sub-app) in ``register``. The root
group's ``invoke`` catches the expected error types of all three packages — bad input, bad
files, refused RPCs, database problems — and turns each into a single ``ihx: error: …`` line on
stderr with exit status 2, so no command needs its own try/except and none can leak a traceback.
Usage errors stay Typer's (also exit 2). Anything else is a bug: ``main`` reports it in one line
with exit status 70, and prints the traceback only when ``IHX_DEBUG`` is set.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from exchange.cli import (
    cases,
    casework,
    demo,
    export,
    geoip,
    hosts,
    log,
    network,
    node,
    retention,
    stats,
    submit,
    takedown,
    tls,
    tokens,
    trace,
    verify,
    web,
)
from exchange.cli.common import EXIT_ERROR, EXIT_INTERNAL, EXPECTED_ERRORS, error_line, one_line


class IhxGroup(TyperGroup):
    """The root command group: maps expected errors of any sub-command to exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as error:
            sys.stderr.write(f"ihx: error: {error_line(error)}\n")
            raise typer.Exit(EXIT_ERROR) from None


app = typer.Typer(
    cls=IhxGroup,
    name="ihx",
    help="ihx — inter-hotline exchange: trace, submit and exchange signed CSAM-URL reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (
    demo,
    trace,
    node,
    submit,
    verify,
    network,
    tokens,
    cases,
    casework,
    log,
    hosts,
    tls,
    takedown,
    web,
    export,
    geoip,
    stats,
    retention,  # last: it adds commands to groups the modules before it made
):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="ihx")
    except Exception as error:
        if os.environ.get("IHX_DEBUG"):
            raise
        sys.stderr.write(
            f"ihx: internal error: {type(error).__name__}: {one_line(str(error))} "
            "(set IHX_DEBUG=1 for a traceback)\n"
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
