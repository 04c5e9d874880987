"""``ihx verify-report ID``: re-verify one stored report from the node's database.

The checks are ``exchange.ops.verify``'s; this command opens the node's database and current
manifest exactly as the node does at start (``open_local``: trust anchors from the settings),
runs them and prints one line per check. Exit status: 0 when every check passes, 1 when one
fails, 2 when the report or the node's files cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import EXIT_CHECK_FAILED, check_mark, out, print_json
from exchange.local import open_local
from exchange.ops.verify import verification_document, verify_report
from exchange.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("verify-report")(verify_report_command)


def verify_report_command(
    report_id: Annotated[str, typer.Argument(metavar="ID", help="The report id (r-…).")],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check a stored report's id, envelope inclusion, signatures and receipt."""
    with open_local(load_settings(config)) as local:
        manifest = local.manifests.current()
        result = verify_report(
            local.engine, report_id.strip(), manifest=manifest, self_member=local.member
        )
    if as_json:
        print_json(verification_document(result))
    else:
        console = out()
        console.print(f"report {result.report_id} ({result.role}) at {result.member}")
        for check in result.checks:
            console.print(f"{check_mark(check.ok)} {check.name}: {check.detail}")
        console.print("all checks passed" if result.ok else "VERIFICATION FAILED")
    if not result.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)
