"""The ``ihx`` application, and the one place where errors become exit statuses.

Every command module registers its commands on a Typer app (or a sub-app) in ``register``; the
root group imports a module only when one of its commands is called (``COMMANDS`` says which
modules make each top-level command), so a short command does not wait for the whole node, the
web view and every other command to load (``ihx --help`` still loads them all). The root
group's ``invoke`` catches the expected error types of all three packages — bad input, bad
files, refused RPCs, database problems — and turns each into a single ``ihx: error: …`` line on
stderr with exit status 2, so no command needs its own try/except and none can leak a traceback.
Usage errors stay Typer's (also exit 2). Anything else is a bug: ``main`` reports it in one line
with exit status 70, and prints the traceback only when ``IHX_DEBUG`` is set.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from exchange.cli.common import EXIT_ERROR, EXIT_INTERNAL, EXPECTED_ERRORS, error_line, one_line
from exchange.version import VERSION

# Each top-level command and the modules of exchange/cli that register it, in order
# (``retention`` adds ``cases purge`` and ``report regions`` to groups other modules make).
# Listed in the order ``ihx --help`` shows them.
COMMANDS: dict[str, tuple[str, ...]] = {
    "demo": ("demo",),
    "trace": ("trace",),
    "geoip": ("geoip",),
    "init": ("node",),
    "status": ("node",),
    "node": ("node",),
    "db": ("node",),
    "submit": ("submit",),
    "import": ("submit",),
    "verify-report": ("verify",),
    "match": ("match",),
    "network": ("network",),
    "token": ("tokens",),
    "cases": ("cases", "retention"),
    "case": ("casework",),
    "report": ("casework", "retention"),
    "log": ("log",),
    "hosts": ("hosts",),
    "tls": ("tls",),
    "takedown": ("takedown",),
    "web": ("web",),
    "export": ("export",),
    "stats": ("stats",),
}


def load_command(name: str) -> Any:
    """The click command ``name``, from the modules that register it (imported now)."""
    staging = typer.Typer()
    for module in COMMANDS[name]:
        importlib.import_module(f"exchange.cli.{module}").register(staging)
    return typer.main.get_group(staging).commands[name]


class IhxGroup(TyperGroup):
    """The root command group: loads each command on first use, and maps expected errors of
    any sub-command to exit status 2."""

    # ctx and commands are typer's own (vendored) click types; Any as in ``invoke``.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands[cmd_name]

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


def _print_version(asked: bool) -> None:
    if asked:
        sys.stdout.write(f"ihx {VERSION}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the installed version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """ihx — inter-hotline exchange: trace, submit and exchange signed CSAM-URL reports."""


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
