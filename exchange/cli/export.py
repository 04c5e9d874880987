"""``ihx export cases|log``: the node's cases and routing log as CSV, for spreadsheets.

Reads the local database (``--config``) page by page and writes as it reads, so any size exports
in constant memory. The columns are checked before anything is opened; a file (``--out``) is
written beside its final name and renamed into place only when complete, so a failed export
leaves no half file. URLs are exported only with ``--include-url``.

A case export is audited as the web view's is (``web/audit.ViewAudit``, the same code): one
``viewed`` entry for the export and, with the URL column, entries listing each page's case ids
committed before that page's rows are written — through a ``Writer`` of the command's own that
continues the node's routing log beside the running node (as ``ihx cases purge`` writes). The
entries name the operator: ``--operator NAME``, or the OS account running the command.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from common.clock import whole_second_clock
from exchange.cli.common import TIME_HELP, CliError, err, parse_time
from exchange.domain import LogKind
from exchange.local import open_local
from exchange.settings import load_settings
from exchange.stats.export import (
    DEFAULT_CASE_COLUMNS,
    CaseColumn,
    CaseFilter,
    LogFilter,
    case_columns,
    cases_csv,
    log_csv,
    write_csv,
)
from exchange.store.writer import Writer
from exchange.web.audit import Operator, ViewAudit

_CONFIG = typer.Option(help="The node's config file (reads its database).")
_DEFAULT_COLUMNS = ",".join(c.value for c in DEFAULT_CASE_COLUMNS)
_OUT = typer.Option(help="Write to this file (default: standard output).")


def register(app: typer.Typer) -> None:
    export = typer.Typer(help="Export cases or the routing log as CSV.", no_args_is_help=True)
    app.add_typer(export, name="export")
    export.command("cases")(cases_command)
    export.command("log")(log_command)


def cases_command(
    config: Annotated[Path, _CONFIG],
    columns: Annotated[
        str,
        typer.Option(help="Comma-separated columns, in order (an unknown one lists them all)."),
    ] = _DEFAULT_COLUMNS,
    include_url: Annotated[
        bool, typer.Option("--include-url", help="Allow the url column (the case's URL).")
    ] = False,
    status: Annotated[str, typer.Option(help="Only open or closed cases.")] = "",
    country: Annotated[str, typer.Option(help="Only cases hosted in this country.")] = "",
    since: Annotated[str | None, typer.Option(help=f"Opened at or after: {TIME_HELP}.")] = None,
    until: Annotated[str | None, typer.Option(help="Opened before: as --since.")] = None,
    out: Annotated[Path | None, _OUT] = None,
    operator: Annotated[
        str | None, typer.Option(help="Who exports, for the audit entries (default: OS user).")
    ] = None,
) -> None:
    """Export the cases held here, one row per case (audited in the routing log)."""
    cols = case_columns(columns, may_see_urls=include_url)
    now = whole_second_clock()
    where = CaseFilter(
        status=status or None,
        hosting_country=country.upper() or None,
        since=parse_time(since, option="--since", now=now) if since else None,
        until=parse_time(until, option="--until", now=now) if until else None,
    )
    who = Operator(_operator(operator))
    url_shown = CaseColumn.URL in cols
    with open_local(load_settings(config)) as local:
        writer = Writer(local.engine)
        writer.start()
        try:
            audit = ViewAudit(writer, local.clock)
            audit.cases_exported(
                who, columns=[c.value for c in cols], status=status, url_shown=url_shown
            )
            pages = audit.url_pages(who) if url_shown else None
            _emit(
                cases_csv(local.engine, cols, where, may_see_urls=include_url, before_page=pages),
                out,
            )
        finally:
            writer.stop()


def _operator(name: str | None) -> str:
    chosen = getpass.getuser() if name is None else name.strip()
    if not chosen or len(chosen) > 128 or not chosen.isprintable():
        raise CliError("--operator: a printable name of 1 to 128 characters")
    return chosen


def log_command(
    config: Annotated[Path, _CONFIG],
    since: Annotated[str | None, typer.Option(help=f"From: {TIME_HELP}.")] = None,
    until: Annotated[str | None, typer.Option(help="Before: as --since.")] = None,
    kind: Annotated[LogKind | None, typer.Option(help="Only entries of this kind.")] = None,
    member: Annotated[str, typer.Option()] = "",
    country: Annotated[str, typer.Option()] = "",
    report_id: Annotated[str, typer.Option()] = "",
    out: Annotated[Path | None, _OUT] = None,
) -> None:
    """Export routing-log entries (oldest first), filtered as ``ihx log`` filters."""
    now = whole_second_clock()
    where = LogFilter(
        since=parse_time(since, option="--since", now=now) if since else None,
        until=parse_time(until, option="--until", now=now) if until else None,
        kind=kind.value if kind is not None else None,
        member=member or None,
        country=country or None,
        report_id=report_id or None,
    )
    with open_local(load_settings(config)) as local:
        _emit(log_csv(local.engine, where), out)


def _emit(chunks: Iterable[str], out: Path | None) -> None:
    """Stream to stdout, or to ``out`` through a temporary file renamed when complete."""
    if out is None:
        write_csv(chunks, sys.stdout)
        sys.stdout.flush()
        return
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as stream:
            write_csv(chunks, stream)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    err().print(f"written {out}")
