"""``ihx stats``: the node's figures, or the network's, as a table, JSON or CSV; ``plot`` charts.

Without ``--network`` the command reads the node's own figures from its database
(``open_local`` and the statistics engine's ``NodeFigures``) — no server needed. With
``--network`` (at the coordinator or any member) it asks every member of the node's current
signed manifest for its signed snapshot (``client/statistics.gather``: the manifest's
endpoints, the node's TLS identity when it has one, and ``--token``: one *network* token for
all — audience the network, from ``ihx token issue --network`` at a network reader — or a
``stats:read`` token per member as ``MEMBER=TOKEN``), verifies each and sums them. A token for
one member is never sent to the others (any of them could replay it to that member), so a
single token must be a network token (cli/network_reads.py), and ``IHX_TOKEN`` (the operator's
case-work token) is not read. Members that did not answer, refused or failed a check are printed
by name with why, and the command then exits 1: the figures are those of the members that
answered, and the output says so. A progress bar counts the members on a terminal's stderr.

``ihx stats plot --out DIR`` writes the same figures as charts (``stats/charts.write_charts``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from common.clock import system_clock
from exchange.cli.common import EXIT_CHECK_FAILED, CliError, err, out, print_json
from exchange.cli.network_reads import (
    advance,
    client_tls,
    member_progress,
    parse_network_tokens,
)
from exchange.cli.stats_formats import Figures, json_document
from exchange.cli.stats_table import print_table
from exchange.client.statistics import Gathering, gather
from exchange.local import open_local
from exchange.settings import Settings, load_settings
from exchange.stats.asked import parse_period
from exchange.stats.export import statistics_csv, write_csv
from exchange.stats.figures import NodeFigures
from exchange.stats.fold import Folder
from exchange.stats.model import Merged, Period, Snapshot

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="The node's settings file.", envvar="IHX_CONFIG")
]
NetworkOption = Annotated[
    bool, typer.Option("--network", help="Every member's signed figures, summed.")
]
FromOption = Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")]
ByOption = Annotated[str, typer.Option("--by", help="day, week, month or year.")]
TokenOption = Annotated[
    list[str] | None,
    typer.Option(
        "--token",
        help="A network token for every member, or MEMBER=TOKEN: that member's stats:read "
        "token (repeatable; --network only).",
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds each member has to answer.", min=1, max=300)
]


def register(app: typer.Typer) -> None:
    stats_app = typer.Typer(
        help="Statistics of this node or of the whole network.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    app.add_typer(stats_app, name="stats")
    stats_app.callback()(show_command)
    stats_app.command("plot")(plot_command)


@dataclass(frozen=True, slots=True)
class _Gathered:
    figures: Figures
    source: Snapshot | Merged  # what the charts draw: a merge names its missing members
    settings: Settings


def show_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    network: NetworkOption = False,
    first: FromOption = None,
    last: ToOption = None,
    by: ByOption = "month",
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV: kind,figure,key,period_start,…")
    ] = False,
    top: Annotated[int, typer.Option(help="Keys shown per figure.", min=1, max=1000)] = 10,
) -> None:
    """Print the figures of a period (exit 1 when a member of the network is missing)."""
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        raise CliError("give at most one of --json and --csv")
    got = _gather(config, network, first, last, by, token or [], timeout)
    if as_json:
        print_json(json_document(got.figures))
    elif as_csv:
        write_csv(statistics_csv(got.source), sys.stdout)
    else:
        print_table(got.figures, out(), top=top)
    _exit_if_missing(got.figures, warn=as_json or as_csv)  # the table names them itself


def plot_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNG and SVG charts.")],
    config: ConfigOption = None,
    network: NetworkOption = False,
    first: FromOption = None,
    last: ToOption = None,
    by: ByOption = "month",
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Write the figures of a period as charts (PNG and SVG) to --out."""
    # Imported here: matplotlib takes seconds to load, which only this command needs.
    from exchange.stats.charts import write_charts

    got = _gather(config, network, first, last, by, token or [], timeout)
    with open_local(got.settings, clock=system_clock) as local:
        manifest = local.manifests.current()  # which countries have a member, for the map
    countries = {c for m in manifest.members for c in m.countries}
    for path in write_charts(got.source, out_dir, member_countries=countries):
        typer.echo(str(path))
    _exit_if_missing(got.figures, warn=True)


def _exit_if_missing(figures: Figures, *, warn: bool) -> None:
    """Exit 1 when members are missing; ``warn``: name them on stderr too (stdout is data)."""
    if not figures.missing:
        return
    if warn:
        for member, why in figures.missing.items():
            err().print(f"ihx: warning: {member} is missing from the figures: {why}")
    raise typer.Exit(EXIT_CHECK_FAILED)


def _gather(
    config: Path | None,
    network: bool,
    first: str | None,
    last: str | None,
    by: str,
    tokens: Sequence[str],
    timeout: float,
) -> _Gathered:
    if config is None:
        raise CliError("--config: the node's settings file is required (or IHX_CONFIG)")
    if first is None or last is None:
        raise CliError("give the period: --from YYYY-MM-DD --to YYYY-MM-DD")
    period = parse_period(first, last, by, names=("--from", "--to", "--by"))
    settings = load_settings(config)
    if network:
        return _network(settings, period, tokens, timeout)
    if tokens:
        raise CliError("--token is for --network: the node's own figures come from its database")
    with open_local(settings, clock=system_clock) as local:
        folder = Folder(member=local.member, lookback=timedelta(seconds=settings.stats.lookback_s))
        snapshot = NodeFigures(
            engine=local.engine, member=local.member, clock=system_clock, folder=folder
        ).snapshot(period)
    return _Gathered(Figures(snapshot), snapshot, settings)


def _network(
    settings: Settings, period: Period, tokens: Sequence[str], timeout: float
) -> _Gathered:
    with open_local(settings, clock=system_clock) as local:
        manifest = local.manifests.current()
    parsed = parse_network_tokens(tokens, manifest)
    with member_progress("asking members", len(manifest.members)) as progress:
        how = Gathering(
            tokens=parsed.per_member,
            everyone=parsed.everyone,
            clock=system_clock,
            max_skew=timedelta(seconds=settings.exchange.max_clock_skew_s),
            tls=client_tls(settings),
            timeout=timeout,
            answered=lambda _member: advance(progress),
        )
        merged = gather(manifest, period, how)
    figures = Figures(merged.snapshot, network=True, missing=merged.missing)
    return _Gathered(figures, merged, settings)
