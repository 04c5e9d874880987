"""``ihx hosts``: the hoster scorecard — how fast each hoster removes what it is notified of.

Reads the node's database (``open_local``, as every command does; safe beside a running
node) and prints per hoster its name, then on the next line (80 columns whatever the name):
notices sent, items notified, items removed with the median and 90th percentile time from the
first notice to removal, and items still online with the longest time since their first
notice. ``--json`` prints the same figures as one document (durations in seconds), the form
the statistics work takes.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import aligned, out, print_json
from exchange.client.case_text import duration_text
from exchange.local import open_local
from exchange.settings import load_settings
from exchange.takedown.notice_model import HosterScore
from exchange.takedown.scorecard import scorecard, to_document

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
HEADER = ["notices", "items", "removed", "median", "p90", "online", "longest"]


def register(app: typer.Typer) -> None:
    app.command("hosts")(hosts_command)


def hosts_command(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Per hoster: notices sent, time from the first notice to removal, items still online."""
    with open_local(load_settings(config)) as local:
        now = local.clock()
        scores = scorecard(local.engine, local.member, now)
    if as_json:
        print_json(to_document(scores, now))
        return
    console = out()
    if not scores:
        console.print("no notice has been sent to a hoster yet")
        return
    # The hoster on a line of its own, its figures below under the header: an organisation's
    # name would otherwise push the figures past 80 columns.
    header, *rows = aligned([HEADER, *(_row(s) for s in scores)], indent="  ")
    console.print("hoster")
    console.print(header)
    for score, line in zip(scores, rows, strict=True):
        for part in textwrap.wrap(score.hoster.label, 80, break_long_words=False) or ["?"]:
            console.print(part)
        console.print(line)


def _row(s: HosterScore) -> list[str]:
    return [
        str(s.notices),
        str(s.items),
        str(s.removed),
        _duration(s.removal_median_s),
        _duration(s.removal_p90_s),
        str(s.still_online),
        _duration(s.online_max_s),
    ]


def _duration(seconds: float | None) -> str:
    return duration_text(None if seconds is None else timedelta(seconds=seconds))
