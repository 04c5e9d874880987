"""``ihx cases purge`` and ``ihx report regions``: what the node keeps about content and people.

``cases purge`` runs the retention purge the node also runs in the background
(exchange/lifecycle/retention.py): closed cases older than ``[lifecycle] retention_days`` are
anonymised and the purge is a routing-log entry; ``--dry-run`` only lists what is due. It opens
the node's database as every command does (``open_local``) and writes through a writer of its
own, which continues the routing log from its stored head, so it is safe beside a running node.

``report regions`` prints the node's own figures of consented reporter regions, counts under
five shown as "<5" (exchange/ops/regions.py).

Both join the ``cases`` and ``report`` command groups whichever module creates them: the
command modules are registered in order (cli/main.py), this one last, and a group already
registered by another module is reused rather than shadowed by a second of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import aligned, format_time, out, print_json
from exchange.lifecycle.retention import Purge, Retention
from exchange.local import open_local
from exchange.ops.regions import region_figures, to_document
from exchange.settings import load_settings
from exchange.store.writer import Writer

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def register(app: typer.Typer) -> None:
    cases = group(app, "cases", "Cases forwarded to law-enforcement partners, and retention.")
    cases.command("purge")(purge_command)
    reports = group(app, "report", "Reports sent from this node.")
    reports.command("regions")(regions_command)


def group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-app ``name`` of ``app``: the one registered already, else a new one."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


# -- cases purge -------------------------------------------------------------------------------


def purge_command(
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what is due; change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Anonymise closed cases older than the retention period (and log the purge)."""
    settings = load_settings(config)
    with open_local(settings) as local:
        writer = Writer(local.engine)
        retention = Retention(
            self_member=local.member,
            writer=writer,
            engine=local.engine,
            clock=local.clock,
            retention_days=settings.retention_days,
        )
        if dry_run:
            result = retention.purge(dry_run=True)
        else:
            writer.start()
            try:
                result = retention.purge()
            finally:
                writer.stop()
    if as_json:
        print_json(purge_document(result))
    else:
        render_purge(result)


def purge_document(result: Purge) -> dict[str, object]:
    return {
        "dry_run": result.dry_run,
        "retention_days": result.retention_days,
        "cutoff": format_time(result.cutoff),
        "cases": list(result.cases),
        "reports": list(result.reports),
        "sightings_retracted": result.sightings_retracted,
    }


def render_purge(result: Purge) -> None:
    console = out()
    if result.cutoff is None:
        console.print("retention is off (lifecycle.retention_days = 0): nothing is anonymised")
        return
    verb = "would anonymise" if result.dry_run else "anonymised"
    console.print(
        f"{verb} {len(result.cases)} case(s) and {len(result.reports)} report(s) closed before "
        f"{format_time(result.cutoff)} (retention {result.retention_days} days)"
    )
    for line in aligned([["case", c] for c in result.cases]):
        console.print(line)
    if not result.dry_run and result.sightings_retracted:
        console.print(f"{result.sightings_retracted} hash sighting(s) of this node retracted")


# -- report regions -----------------------------------------------------------------------------


def regions_command(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Reports per consented reporter region (this node's own figures; under 5 shown as <5)."""
    with open_local(load_settings(config)) as local:
        figures = region_figures(local.engine)
    if as_json:
        print_json(to_document(figures))
        return
    console = out()
    if not figures:
        console.print("no report with a consented reporter region")
        return
    for line in aligned([[f.region, f.shown] for f in figures], indent=""):
        console.print(line)
