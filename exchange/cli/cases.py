"""``ihx cases pull``: a law-enforcement partner streams its cases to JSON Lines.

(``ihx cases list``, an analyst's work queues, is exchange/cli/casework.py's.)

Pages follow the cursor until the node has nothing more; with ``--ack`` each page is
acknowledged only after it was written and flushed, so a crash never loses a case (it comes
again after the visibility timeout). Output carries URL, hosting trace, items with hashes and
classifications, the delivery receipt and its verification status — never media.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from google.protobuf.json_format import MessageToDict

from exchange.cli import casework
from exchange.cli.common import err
from exchange.client.stubs import PartnerClient
from ihx.v1 import partner_pb2 as ppb


def case_document(case: ppb.Case) -> dict[str, Any]:
    reports = []
    for part in case.reports:
        doc = MessageToDict(part.report, preserving_proto_field_name=True)
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
    out: dict[str, Any] = {
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
        "reports": reports,
    }
    return out


def register(app: typer.Typer) -> None:
    cases = typer.Typer(
        help="Work queues (analysts); cases forwarded to law-enforcement partners.",
        no_args_is_help=True,
    )
    app.add_typer(cases, name="cases")
    cases.command("list")(casework.list_command)

    @cases.command("pull")
    def pull(
        node: Annotated[str, typer.Option(help="Node address host:port.")],
        token: Annotated[str, typer.Option(help="Partner token with scope cases:pull.")],
        after: Annotated[str, typer.Option(help="Start after this cursor.")] = "",
        limit: Annotated[int, typer.Option(help="Cases per page (1-1000).", min=1, max=1000)] = 100,
        ack: Annotated[bool, typer.Option(help="Acknowledge each page once written.")] = False,
        out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    ) -> None:
        """Stream this partner's cases as JSON Lines."""
        stream: TextIO = out.open("a", encoding="utf-8") if out else sys.stdout
        total = acked = 0
        try:
            with PartnerClient(node, token=token) as client:
                cursor = after
                while True:
                    page = list(client.pull(cursor, limit))
                    if not page:
                        break
                    for case in page:
                        stream.write(json.dumps(case_document(case), ensure_ascii=False) + "\n")
                    stream.flush()
                    total += len(page)
                    if ack:
                        acked += client.ack([c.id for c in page]).acknowledged
                    cursor = page[-1].cursor
        finally:
            if out:
                stream.close()
        err().print(f"{total} case(s) pulled" + (f", {acked} acknowledged" if ack else ""))
