"""``ihx submit`` (one report) and ``ihx import FILE`` (many), both through a node's intake.

A report is built and validated here with the domain constructors before anything is sent, so
a typo in a hash or a classification fails locally with the field named; the node then
canonicalises, traces and decides, and its answer (report id, decision, duplicate, known
content) is printed — or, with ``--json``, printed as JSON (a report given as JSON is
``--from-json``: ``--json`` is output everywhere). ``import`` streams the file through one gRPC
stream (``exchange.client.report_files``; the format is docs/cli.md's), reports each refused
record with its line number on stderr, draws a progress bar on stderr when that is a terminal,
and ends with a summary (blank lines counted) on stdout; ``--json`` makes that one JSON object
per record, then the summary. Exit status of ``import``: 0 when every record was accepted, 1
when some were refused, 2 when the import could not run.

The URL is the one text the domain constructors leave to the node, so it is checked here for what
no node could receive: a lone surrogate (``\\udc80`` from an undecodable argument, or escaped in
a JSON record) cannot be encoded as UTF-8, so not sent. ``submit`` refuses it with the usual
error line; ``import`` reports it as a bad line and goes on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

from exchange.cli.common import EXIT_CHECK_FAILED, CliError, out, print_json, progress
from exchange.client.report_files import (
    Accepted,
    ImportEvent,
    ImportFormat,
    ImportSummary,
    ParsedLine,
    Refused,
    detect_format,
    iter_file,
    loads_record,
    run_import,
    submission_from_object,
)
from exchange.client.stubs import DEFAULT_CHUNK, IntakeClient
from exchange.domain import (
    AgeGroup,
    Classification,
    Item,
    MediaType,
    SiteType,
    Submission,
    check_items,
    check_unicode,
    make_facts,
    make_item,
    parse_hash_text,
)
from exchange.errors import InvalidReport
from exchange.wire.documents import enum_word, message_document
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb

NodeOption = Annotated[
    str, typer.Option("--node", help="The node's intake address HOST:PORT.", envvar="IHX_NODE")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="IHX_TOKEN",
        help="Bearer token with scope reports:submit (see `ihx token issue`).",
    ),
]


class ImportFileFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def register(app: typer.Typer) -> None:
    app.command("submit")(submit_command)
    app.command("import")(import_command)


# -- submit ------------------------------------------------------------------------------------


def _item(
    hashes: list[str], classification: Classification, media: MediaType, age: AgeGroup
) -> Item:
    """The one item of ``--hash``/``--classification``/… options."""
    return make_item(
        [parse_hash_text(h, where=f"--hash {h[:80]}") for h in hashes],
        classification,
        media,
        age,
        where="item",
    )


def submit_command(
    node: NodeOption,
    url: Annotated[str | None, typer.Option("--url", help="The reported URL.")] = None,
    hashes: Annotated[
        list[str] | None,
        typer.Option(
            "--hash",
            metavar="ALGO:HEX",
            help="Content hash of the item (repeatable); pdq:HEX:QUALITY gives its quality.",
        ),
    ] = None,
    classification: Annotated[
        Classification | None, typer.Option("--classification", help="The assessment.")
    ] = None,
    media_type: Annotated[MediaType, typer.Option("--media-type")] = MediaType.IMAGE,
    age_group: Annotated[AgeGroup, typer.Option("--age-group")] = AgeGroup.UNKNOWN,
    site_type: Annotated[SiteType, typer.Option("--site-type")] = SiteType.WEBSITE,
    commercial: Annotated[bool, typer.Option("--commercial", help="A commercial site.")] = False,
    payment_methods: Annotated[
        list[str] | None, typer.Option("--payment-method", help="Repeatable.")
    ] = None,
    notes: Annotated[str, typer.Option("--notes")] = "",
    json_file: Annotated[
        str | None,
        typer.Option(
            "--from-json",
            metavar="FILE|-",
            help="The report as one JSON object (a JSON Lines record, docs/cli.md).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the node's answer as JSON.")
    ] = False,
    token: TokenOption = None,
) -> None:
    """Submit one report (from options, or a JSON object) to a node."""
    if json_file is not None:
        if url is not None or hashes or classification is not None:
            raise CliError("give either --from-json FILE or --url/--hash/--classification")
        submission = submission_from_object(loads_record(_read_text(json_file)))
    else:
        if url is None or not hashes or classification is None:
            raise CliError(
                "give --url, at least one --hash and --classification (or --from-json FILE)"
            )
        item = _item(hashes, classification, media_type, age_group)
        facts = make_facts(site_type, commercial, payment_methods or [], notes)
        submission = Submission(url, facts, check_items([item]))
    check_unicode(submission.url, "url")
    with IntakeClient(node, token=token) as client:
        response = client.submit(submission)
    if as_json:
        print_json(response_document(response))
    else:
        render_response(response, out())


def _sendable(records: Iterator[ParsedLine]) -> Iterator[ParsedLine]:
    """The parsed records, a record whose URL cannot be sent turned into a bad line."""
    for line_no, parsed in records:
        if not isinstance(parsed, str):
            try:
                check_unicode(parsed.url, "url")
            except InvalidReport as error:
                yield line_no, error.message
                continue
        yield line_no, parsed


def _read_text(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8")


def _reason(response: ipb.SubmitReportResponse) -> str:
    return enum_word(pb.DecisionReason.DESCRIPTOR, response.decision.reason)


def _classification(value: pb.Classification.ValueType) -> str:
    return enum_word(pb.Classification.DESCRIPTOR, value)


def response_document(response: ipb.SubmitReportResponse) -> dict[str, Any]:
    d = response.decision
    return {
        "report_id": response.report_id,
        "canonical_url": response.canonical_url,
        "decision": {
            "member": d.member,
            "reason": _reason(response),
            "country": d.country or None,
            "explanation": d.explanation,
            "manifest_epoch": d.manifest_epoch,
        },
        "duplicate": response.duplicate,
        "items": [
            {
                "index": i.index,
                "known_content": i.known_content,
                "first_seen_member": i.first_seen_member or None,
                "first_seen_case": i.first_seen_case or None,
                "first_classification": (
                    _classification(i.first_classification) if i.known_content else None
                ),
                "near_known_content": [
                    {
                        "hex": n.hex,
                        "distance": n.distance,
                        "member": n.member,
                        "case_id": n.case_id,
                        "classification": _classification(n.classification),
                        "first_seen": n.first_seen.ToDatetime().isoformat() + "Z",
                    }
                    for n in i.near
                ],
                "pdq_not_matched": i.pdq_not_matched or None,
            }
            for i in response.items
        ],
        "trace": message_document(response.trace) if response.HasField("trace") else None,
    }


def render_response(response: ipb.SubmitReportResponse, console: Console) -> None:
    d = response.decision
    console.print(f"report      {response.report_id}")
    console.print(f"URL         {response.canonical_url}")
    console.print(f"decision    {d.member} ({_reason(response)}): {d.explanation}")
    console.print(
        "duplicate   " + ("yes — the node already held this report" if response.duplicate else "no")
    )
    for i in response.items:
        if i.known_content:
            console.print(
                f"item {i.index}      known content: first seen by {i.first_seen_member} in case "
                f"{i.first_seen_case} ({_classification(i.first_classification)})"
            )
        else:
            console.print(f"item {i.index}      new content")
        for n in i.near:
            console.print(
                f"            near-known content: a PDQ hash {n.distance} bits away, first seen "
                f"by {n.member} in case {n.case_id} ({_classification(n.classification)})"
            )
        if i.pdq_not_matched and i.pdq_not_matched != "no pdq hash":
            console.print(f"            {i.pdq_not_matched}")


# -- import ------------------------------------------------------------------------------------


class Delimiter(StrEnum):
    """CSV delimiters by name (a tab is awkward to type as an argument)."""

    COMMA = "comma"
    SEMICOLON = "semicolon"
    TAB = "tab"

    @property
    def char(self) -> str:
        return {"comma": ",", "semicolon": ";", "tab": "\t"}[self.value]


def import_command(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Report file, or - for stdin.")],
    node: NodeOption,
    fmt: Annotated[
        ImportFileFormat | None,
        typer.Option("--format", help="Default: csv for a *.csv file name, else jsonl."),
    ] = None,
    delimiter: Annotated[
        Delimiter | None,
        typer.Option("--delimiter", help="CSV delimiter (default: detected on the header)."),
    ] = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, max=1000, help="Reports per stream message.")
    ] = DEFAULT_CHUNK,
    token: TokenOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="JSON Lines: one object per record, then a summary object."),
    ] = False,
) -> None:
    """Submit every report of a JSON Lines or CSV file (format: docs/cli.md); bad lines are
    reported and skipped, blank lines counted. Exit 1 when a record was refused."""
    chosen = _format(fmt, file)
    if delimiter is not None and chosen != "csv":
        raise CliError("--delimiter is for CSV files (--format csv)")
    summary = ImportSummary()

    def blank(_line: int) -> None:
        summary.blank_lines += 1

    with _open_binary(file) as stream, IntakeClient(node, token=token) as client:
        records = _sendable(
            iter_file(
                stream, chosen, delimiter=delimiter.char if delimiter else None, on_blank=blank
            )
        )
        events = run_import(records, lambda subs: client.submit_many(subs, chunk=chunk), summary)
        try:
            _show_events(events, _count_lines(file), as_json)
        except BaseException:
            _summary_answer(summary, as_json)
            raise
    _summary_answer(summary, as_json)
    if summary.refused:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _format(fmt: ImportFileFormat | None, file: str) -> ImportFormat:
    if fmt is None:
        return detect_format(file)
    return "csv" if fmt is ImportFileFormat.CSV else "jsonl"


def _show_events(events: Iterator[ImportEvent], total: int | None, as_json: bool) -> None:
    """Each record's outcome — a JSON line, or a refusal on stderr — under a progress bar."""
    with progress("importing") as bar:
        task = bar.add_task("import", total=total)
        for event in events:
            if isinstance(event, Accepted):
                bar.update(task, completed=max(event.line, 0))
            if as_json:
                sys.stdout.write(json.dumps(event_document(event), ensure_ascii=False) + "\n")
            elif isinstance(event, Refused):
                who = "refused by the node" if event.by_node else "skipped"
                bar.console.print(f"line {event.line}: {who}: {event.reason}")


def event_document(event: ImportEvent) -> dict[str, Any]:
    """One record's outcome, for scripts: its line and report id, or its line and error."""
    if isinstance(event, Refused):
        return {
            "line": event.line,
            "report_id": None,
            "error": event.reason,
            "refused_by": "node" if event.by_node else "file",
        }
    r = event.response
    return {
        "line": event.line,
        "report_id": r.report_id,
        "duplicate": r.duplicate,
        "member": r.decision.member,
        "reason": _reason(r),
    }


def _summary_answer(summary: ImportSummary, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"summary": summary_document(summary)}) + "\n")
    else:
        render_summary(summary, out())


def summary_document(summary: ImportSummary) -> dict[str, Any]:
    return {
        "read": summary.read,
        "submitted": summary.submitted,
        "new": summary.new,
        "duplicates": summary.duplicates,
        "refused": summary.refused,
        "bad_lines": summary.bad_lines,
        "refused_by_node": summary.refused_by_node,
        "blank_lines": summary.blank_lines,
        "destinations": dict(sorted(summary.destinations.items())),
    }


@contextmanager
def _open_binary(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as stream:
        yield stream


def _count_lines(name: str) -> int | None:
    """Lines in the file, for the progress bar (unknown for stdin)."""
    if name == "-":
        return None
    count = 0
    with open(name, "rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
    return count or None


def render_summary(summary: ImportSummary, console: Console) -> None:
    destinations = ", ".join(f"{m} {n}" for m, n in sorted(summary.destinations.items()))
    console.print(f"read          {summary.read}")
    console.print(f"submitted     {summary.submitted}")
    console.print(f"new           {summary.new}")
    console.print(f"duplicates    {summary.duplicates} (already held by the node)")
    console.print(
        f"refused       {summary.refused} ({summary.bad_lines} bad lines, "
        f"{summary.refused_by_node} refused by the node)"
    )
    console.print(f"blank lines   {summary.blank_lines} (skipped)")
    console.print(f"destinations  {destinations or 'none'}")
