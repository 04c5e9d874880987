"""``ihx cases pull``: a law-enforcement partner streams its cases to JSON Lines.

(``ihx cases list``, an analyst's work queues, is exchange/cli/casework.py's.)

Pages (``--page-size``) follow the cursor until the node has nothing more or ``--limit`` cases
in all were written; with ``--ack`` each page is acknowledged only after it was written and
flushed, so a crash never loses a case (it comes again after the visibility timeout). The
timeout is never silent: each case carries its ``invisible_until`` and, without ``--ack``,
stderr says until when the pulled cases stay hidden; ``--visibility`` chooses it. Output
carries URL, hosting trace, items with hashes and classifications (in the words ``ihx submit``
takes), the delivery receipt and its verification status — never media.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.progress import Progress, TaskID

from exchange.cli import casework
from exchange.cli.common import CliError, err, format_time, parse_duration, progress, short_time
from exchange.client.stubs import PartnerClient
from exchange.wire.documents import message_document
from ihx.v1 import partner_pb2 as ppb


def case_document(case: ppb.Case, invisible_until: datetime | None = None) -> dict[str, Any]:
    """A pulled case, enums in the words ``ihx submit`` takes (``national``, ``sha256:…``)."""
    reports = []
    for part in case.reports:
        doc = message_document(part.report)
        doc.pop("url_key", None)
        receipt = None
        if part.HasField("receipt"):
            receipt = {
                "body_b64": base64.b64encode(part.receipt.body).decode(),
                "signature_b64": base64.b64encode(part.receipt.signature).decode(),
            }
        reports.append(
            {
                "report": doc,
                "reporting_member": part.reporting_member,
                "receipt": receipt,
                "receipt_verified": part.receipt_verified,
            }
        )
    return {
        "id": case.id,
        "cursor": case.cursor,
        "url": case.url,
        "hosting_country": case.hosting_country or None,
        "reporting_members": list(case.reporting_members),
        "opened_at": case.opened_at.ToJsonString(),
        "takedown_clock_started": (
            case.takedown_clock_started.ToJsonString()
            if case.HasField("takedown_clock_started")
            else None
        ),
        "open": case.open,
        "withdrawn": case.withdrawn,
        "invisible_until": format_time(invisible_until),
        "reports": reports,
    }


def register(app: typer.Typer) -> None:
    cases = typer.Typer(
        help="Work queues (analysts); cases forwarded to law-enforcement partners.",
        no_args_is_help=True,
    )
    app.add_typer(cases, name="cases")
    cases.command("list")(casework.list_command)

    cases.command("pull")(pull_command)


def pull_command(
    node: Annotated[str, typer.Option(help="Node address host:port.")],
    token: Annotated[str, typer.Option(help="Partner token with scope cases:pull.")],
    after: Annotated[str, typer.Option(help="Start after this cursor.")] = "",
    limit: Annotated[
        int | None, typer.Option(help="At most this many cases in all (default: every one).", min=1)
    ] = None,
    page_size: Annotated[
        int, typer.Option("--page-size", help="Cases per request (1-1000).", min=1, max=1000)
    ] = 100,
    ack: Annotated[bool, typer.Option(help="Acknowledge each page once written.")] = False,
    visibility: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="How long unacknowledged cases stay hidden, e.g. 30s, 10m (1 s to 1 d; "
            "default: the node's partners.visibility_timeout_s setting, 300 s unless set).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Append here instead of stdout.")] = None,
) -> None:
    """Stream this partner's cases as JSON Lines (docs/cli.md).

    Every pulled case is hidden from every pull — the next page and the next run alike — until
    its "invisible_until", then offered again unless acknowledged: pull with --ack once the
    cases are safely stored, or a second pull within the timeout returns none of them.
    """
    hide_s = _visibility_seconds(visibility)
    stream: TextIO = out.open("a", encoding="utf-8") if out else sys.stdout
    try:
        with PartnerClient(node, token=token) as client, progress("pulling") as bar:
            task = bar.add_task("pull", total=limit)
            pulled = _pull_pages(client, stream, after, (limit, page_size, hide_s, ack), bar, task)
    finally:
        if out:
            stream.close()
    _pull_summary(pulled, ack)


@dataclass
class _Pulled:
    cases: int = 0
    acked: int = 0
    invisible_until: datetime | None = None


def _pull_pages(
    client: PartnerClient,
    stream: TextIO,
    cursor: str,
    how: tuple[int | None, int, int, bool],
    bar: Progress,
    task: TaskID,
) -> _Pulled:
    """Page after page until the node has nothing more or ``limit`` cases were written."""
    limit, page_size, hide_s, ack = how
    pulled = _Pulled()
    while limit is None or pulled.cases < limit:
        size = page_size if limit is None else min(page_size, limit - pulled.cases)
        page, until = client.pull_page(cursor, size, visibility_s=hide_s)
        if not page:
            break
        for case in page:
            stream.write(json.dumps(case_document(case, until), ensure_ascii=False) + "\n")
        stream.flush()
        pulled.cases += len(page)
        pulled.invisible_until = until or pulled.invisible_until
        bar.update(task, completed=pulled.cases)
        if ack:
            pulled.acked += client.ack([c.id for c in page]).acknowledged
        cursor = page[-1].cursor
    return pulled


def _visibility_seconds(text: str | None) -> int:
    if text is None:
        return 0
    span = parse_duration(text, option="--visibility")
    if not timedelta(seconds=1) <= span <= timedelta(days=1):
        raise CliError("--visibility: from 1s to 1d")
    return int(span.total_seconds())


def _pull_summary(pulled: _Pulled, ack: bool) -> None:
    """On stderr (stdout is the cases): how many, and what happens to the unacknowledged."""
    line = f"{pulled.cases} case(s) pulled" + (f", {pulled.acked} acknowledged" if ack else "")
    err().print(line)
    if pulled.cases > pulled.acked and pulled.invisible_until is not None:
        err().print(
            f"not acknowledged: hidden from every pull until "
            f"{short_time(pulled.invisible_until)}, then offered again (pull with --ack to "
            "take them for good)"
        )
