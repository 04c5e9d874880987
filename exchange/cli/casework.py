"""``ihx cases list``, ``ihx case show|assess|act`` and ``ihx report status|withdraw``.

A hotline analyst's case work, through the running node's Cases service with a ``cases:work``
token — the same way ``ihx submit`` reaches intake (``--node``/``IHX_NODE``,
``--token``/``IHX_TOKEN``): the node's writer serialises the steps, its outbox carries each
one to the reporting members and the coordinator, and its rules refuse what may not be done.
Nothing here opens the database.

Options are checked here first where the node would only repeat it (an item must be
``REPORT_ID:INDEX``); everything else — the rules, ids the node does not know — is the node's
answer, shown as the usual ``ihx: error:`` line (exit 2). Human output is for 80 columns (one
fact per line, ids whole); ``--json`` prints the same facts as one JSON document.
"""

from __future__ import annotations

import dataclasses
import enum
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from exchange.cli.common import CliError, aligned, format_time, out, print_json, short_time
from exchange.client.case_text import (
    CLOCK_LABELS,
    CLOCK_STEPS,
    assessment_text,
    duration_text,
    event_text,
    item_name,
    items_text,
    known_text,
    move_text,
    moved_from_text,
    near_summary,
    near_text,
    takedown_clock,
)
from exchange.client.stubs import CasesClient, ItemKey
from exchange.domain import (
    AgeGroup,
    Classification,
    ItemPdq,
    NearSighting,
    Sighting,
    is_report_id,
)
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseDetail,
    CaseEvent,
    CaseSummary,
    Gender,
    ItemState,
    Move,
    Queue,
    ReasonCode,
    ReportStatus,
    Withdrawal,
    WithdrawalReason,
)

NodeOption = Annotated[
    str, typer.Option("--node", help="The node's address HOST:PORT.", envvar="IHX_NODE")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="IHX_TOKEN",
        help="Bearer token with scope cases:work (see `ihx token issue`).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ItemsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--item",
        metavar="REPORT_ID:INDEX",
        help="An item of the case (repeatable); none: every open item.",
    ),
]


class Assessed(enum.StrEnum):
    """What an analyst may classify an item as (``doubtful`` is the origin's word only)."""

    BASELINE = "baseline"
    NATIONAL = "national"
    NOT_ILLEGAL = "not_illegal"


def register(app: typer.Typer) -> None:
    case = typer.Typer(help="Work a case held by this node.", no_args_is_help=True)
    app.add_typer(case, name="case")
    case.command("show")(show_command)
    case.command("assess")(assess_command)
    case.command("act")(act_command)
    report = typer.Typer(help="Reports this node sent: status, withdrawal.", no_args_is_help=True)
    app.add_typer(report, name="report")
    report.command("status")(status_command)
    report.command("withdraw")(withdraw_command)


# -- commands ----------------------------------------------------------------------------------


def list_command(
    node: NodeOption,
    queue: Annotated[Queue, typer.Option("--queue", help="The work queue.")],
    older_than_days: Annotated[
        int | None,
        typer.Option(
            "--older-than-days", help="overdue / recently_closed (default 30 / 7).", min=1
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Cases per page (1-1000).", min=1, max=1000)] = 100,
    after: Annotated[str, typer.Option(help="Start after this cursor.")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a work queue of this node, oldest takedown clock first."""
    with CasesClient(node, token=token) as client:
        rows, next_cursor = client.queue(
            queue, older_than_days=older_than_days or 0, after=after, limit=limit
        )
    if as_json:
        print_json(
            {
                "queue": str(queue),
                "cases": [summary_document(r) for r in rows],
                "next_cursor": next_cursor,
            }
        )
        return
    render_queue(queue, rows, next_cursor, out())


def show_command(
    case_id: Annotated[str, typer.Argument(metavar="CASE_ID")],
    node: NodeOption,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a case: its items with their stage and takedown clock, and its timeline."""
    with CasesClient(node, token=token) as client:
        detail = client.case(case_id)
    _case_answer(detail, as_json)


def assess_command(
    case_id: Annotated[str, typer.Argument(metavar="CASE_ID")],
    node: NodeOption,
    classification: Annotated[Assessed, typer.Option("--classification")],
    items: ItemsOption = None,
    age_group: Annotated[AgeGroup, typer.Option("--age-group")] = AgeGroup.UNKNOWN,
    gender: Annotated[Gender, typer.Option("--gender")] = Gender.NOT_DETERMINED,
    virtual: Annotated[bool, typer.Option("--virtual", help="Computer-generated.")] = False,
    user_generated: Annotated[
        bool, typer.Option("--user-generated", help="Self-generated.")
    ] = False,
    child_modelling: Annotated[bool, typer.Option("--child-modelling")] = False,
    analyst_ref: Annotated[
        str, typer.Option("--analyst-ref", help="An opaque reference, never a name.")
    ] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Assess items of a case held here; prints the case as it stands after."""
    assessment = Assessment(
        classification=Classification(classification.value),
        age_group=age_group,
        gender=gender,
        virtual=virtual,
        user_generated=user_generated,
        child_modelling=child_modelling,
        analyst_ref=analyst_ref,
    )
    keys = parse_items(items or [])
    with CasesClient(node, token=token) as client:
        detail = client.assess(case_id, keys, assessment)
    _case_answer(detail, as_json)


def act_command(
    case_id: Annotated[str, typer.Argument(metavar="CASE_ID")],
    node: NodeOption,
    action: Annotated[ActionKind, typer.Option("--action")],
    items: ItemsOption = None,
    reason: Annotated[
        ReasonCode | None, typer.Option("--reason", help="unavailable / not_illegal.")
    ] = None,
    partner: Annotated[str, typer.Option(help="reported_to_lea: the partner.")] = "",
    recipient: Annotated[str, typer.Option(help="reported_to_host: who was notified.")] = "",
    country: Annotated[str, typer.Option(help="moved: the new hosting country.")] = "",
    reference: Annotated[str, typer.Option(help="An opaque reference (a message id).")] = "",
    analyst_ref: Annotated[str, typer.Option("--analyst-ref")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record an action on items of a case held here; prints the case as it stands after."""
    step = Action(
        kind=action,
        reason=reason,
        partner=partner,
        recipient=recipient,
        moved_to_country=country.upper(),
        reference=reference,
        analyst_ref=analyst_ref,
    )
    keys = parse_items(items or [])
    with CasesClient(node, token=token) as client:
        detail = client.act(case_id, keys, step)
    _case_answer(detail, as_json)


def status_command(
    report_id: Annotated[str, typer.Argument(metavar="REPORT_ID")],
    node: NodeOption,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where a report this node sent stands: delivery, then every step at the holder."""
    with CasesClient(node, token=token) as client:
        status = client.report_status(report_id)
    _status_answer(status, as_json)


def withdraw_command(
    report_id: Annotated[str, typer.Argument(metavar="REPORT_ID")],
    node: NodeOption,
    reason: Annotated[WithdrawalReason, typer.Option("--reason")],
    note: Annotated[str, typer.Option(help="Why, for the holder (at most 1,000 chars).")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw a report this node sent (a misreport); prints its status after."""
    with CasesClient(node, token=token) as client:
        status = client.withdraw(report_id, Withdrawal(reason, note))
    _status_answer(status, as_json)


def _case_answer(detail: CaseDetail, as_json: bool) -> None:
    if as_json:
        print_json(case_document(detail))
    else:
        render_case(detail, out())


def _status_answer(status: ReportStatus, as_json: bool) -> None:
    if as_json:
        print_json(status_document(status))
    else:
        render_status(status, out())


def parse_items(values: Sequence[str]) -> list[ItemKey]:
    """``REPORT_ID:INDEX`` options as (report id, index) keys."""
    keys: list[ItemKey] = []
    for value in values:
        report_id, sep, index = value.rpartition(":")
        if not sep or not is_report_id(report_id):
            raise CliError(f"--item {value[:80]!r}: give REPORT_ID:INDEX (r-… and a number)")
        if not (index.isascii() and index.isdigit()) or int(index) >= 1000:
            raise CliError(f"--item {value[:80]!r}: the index is a number from 0 to 999")
        keys.append((report_id, int(index)))
    return keys


# -- JSON documents ----------------------------------------------------------------------------


def summary_document(r: CaseSummary) -> dict[str, Any]:
    return {
        "id": r.id,
        "holder": r.holder,
        "hosting_country": r.hosting_country,
        "opened_at": format_time(r.opened_at),
        "items": r.items,
        "open_items": r.open_items,
        "disputed": r.disputed,
        "cursor": r.cursor,
    }


def item_document(s: ItemState) -> dict[str, Any]:
    return {
        "item": item_name(s.ref.report_id, s.ref.index),
        "report_id": s.ref.report_id,
        "index": s.ref.index,
        "origin_member": s.ref.origin_member,
        "origin_classification": s.ref.origin_classification,
        "stage": s.stage,
        "closed": s.closed,
        "disputed": s.disputed,
        "assessment": dataclasses.asdict(s.assessment) if s.assessment is not None else None,
        "last_action": s.last_action,
        "lea_partner": s.lea_partner or None,
        "host_recipient": s.host_recipient or None,
        "close_reason": s.close_reason,
        "moved_to_country": s.moved_to_country or None,
        "moved_to_member": s.moved_to_member or None,
        "clock_started": format_time(s.clock_started),
        "assessed_at": format_time(s.assessed_at),
        "lea_at": format_time(s.lea_at),
        "host_notice_at": format_time(s.host_notice_at),
        "closed_at": format_time(s.closed_at),
        "takedown_clock_s": {
            step: (span.total_seconds() if span is not None else None)
            for step, span in takedown_clock(s).items()
        },
    }


def event_document(e: CaseEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "case_id": e.case_id,
        "member": e.member,
        "sequence": e.sequence,
        "at": format_time(e.at),
        "kind": e.kind,
        "items": [item_name(r.report_id, r.index) for r in e.items],
        "body": dataclasses.asdict(e.body),
        "text": event_text(e),
    }


def case_document(d: CaseDetail) -> dict[str, Any]:
    return {
        "id": d.id,
        "holder": d.holder,
        "url": d.url or None,
        "hosting_country": d.hosting_country,
        "open": d.open,
        "opened_at": format_time(d.opened_at),
        "closed_at": format_time(d.closed_at),
        "reporting_members": list(d.reporting_members),
        "decision_reason": d.decision_reason or None,
        "anonymised": d.anonymised,
        "items": [item_document(s) for s in d.items],
        "timeline": [event_document(e) for e in d.timeline],
        "moved_from": move_document(d.moved_from) if d.moved_from is not None else None,
        "history": [event_document(e) for e in d.history],
        "moved_to": [move_document(m) for m in d.moved_to],
        "pdq": [pdq_document(p) for p in d.pdq],
        "pdq_note": d.pdq_note or None,
    }


def sighting_document(s: Sighting) -> dict[str, Any]:
    return {
        "member": s.member,
        "case_id": s.case_id,
        "classification": s.classification,
        "first_seen": format_time(s.first_seen),
    }


def near_document(n: NearSighting) -> dict[str, Any]:
    return {"hex": n.hex, "distance": n.distance, **sighting_document(n.sighting)}


def pdq_document(p: ItemPdq) -> dict[str, Any]:
    """A PDQ item: exact known content (``known``) apart from near-known content (``near``)."""
    return {
        "item": item_name(p.report_id, p.index),
        "report_id": p.report_id,
        "index": p.index,
        "hex": p.hex,
        "known": sighting_document(p.known) if p.known is not None else None,
        "near": [near_document(n) for n in p.near],
        "not_matched": p.not_matched or None,
    }


def move_document(m: Move) -> dict[str, Any]:
    return {
        "from_member": m.from_member,
        "from_case": m.from_case or None,
        "from_country": m.from_country or None,
        "country": m.country,
        "to_member": m.to_member or None,
        "to_case": m.to_case or None,
        "at": format_time(m.at),
        "refusal": m.refusal or None,
        "text": move_text(m),
        "items": [item_document(s) for s in m.items],
        "timeline": [event_document(e) for e in m.timeline],
    }


def status_document(s: ReportStatus) -> dict[str, Any]:
    return {
        "report_id": s.report_id,
        "destination": s.destination,
        "case_id": s.case_id or None,
        "delivery": s.delivery,
        "receipted_at": format_time(s.receipted_at),
        "withdrawn": s.withdrawn,
        "rejection": s.rejection or None,
        "items": [item_document(i) for i in s.items],
        "timeline": [event_document(e) for e in s.timeline],
        "moves": [move_document(m) for m in s.moves],
    }


# -- for people (80 columns) -------------------------------------------------------------------


def render_queue(queue: Queue, rows: Sequence[CaseSummary], next_cursor: str, c: Console) -> None:
    c.print(f"{queue}: {len(rows)} case(s)" + (" on this page" if next_cursor else ""))
    table = [
        [
            r.id,
            r.hosting_country or "--",
            _minute(r.opened_at),
            f"{r.open_items}/{r.items} open",
            "disputed" if r.disputed else "",
        ]
        for r in rows
    ]
    for line in aligned(table):
        c.print(line)
    if next_cursor:
        c.print(f"next page: --after {next_cursor}")


def _minute(at: datetime | None) -> str:
    """To the minute, for the queue's one line per case."""
    text = short_time(at)
    return "—" if text is None else text[:16].replace("T", " ") + "Z"


WIDTH = 80


def _facts(rows: Sequence[tuple[str, str]], c: Console, *, indent: str = "") -> None:
    """Label/value rows, values aligned and wrapped under themselves at ``WIDTH`` — words whole,
    so an id, a URL or an address is never cut (it may then run past the edge)."""
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        prefix = f"{indent}{label.ljust(width)}  "
        c.print(
            textwrap.fill(
                value,
                WIDTH,
                initial_indent=prefix,
                subsequent_indent=" " * len(prefix),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )


def _lines(texts: Sequence[str], c: Console) -> None:
    """Sentences at ``WIDTH``, words whole."""
    for text in texts:
        c.print(textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False))


def render_case(d: CaseDetail, c: Console) -> None:
    c.print(f"case {d.id}  {'open' if d.open else 'closed'}")
    facts = [
        ("holder", d.holder),
        ("URL", d.url or ("(anonymised)" if d.anonymised else "(held by the holder only)")),
        ("hosting", d.hosting_country or "—"),
        ("opened", short_time(d.opened_at) or "—"),
        ("closed", short_time(d.closed_at) or "—"),
        ("reported by", ", ".join(d.reporting_members) or "—"),
    ]
    if d.decision_reason:
        facts.append(("decision", d.decision_reason))
    if d.moved_from is not None:
        facts.append(("moved from", moved_from_text(d.moved_from)))
    _facts(facts, c)
    _lines([move_text(m) for m in d.moved_to], c)
    render_items(d.items, c)
    render_pdq(d, c)
    render_timeline(d.timeline, c)
    if d.history and d.moved_from is not None:
        render_timeline(d.history, c, title=f"history at {d.moved_from.from_member}, read-only")


def render_status(s: ReportStatus, c: Console) -> None:
    c.print(f"report {s.report_id}" + ("  WITHDRAWN" if s.withdrawn else ""))
    facts = [
        ("sent to", s.destination),
        ("delivery", s.delivery + (f" ({s.rejection})" if s.rejection else "")),
        ("case", s.case_id or "— (no receipt yet)"),
        ("receipted", short_time(s.receipted_at) or "—"),
    ]
    _facts(facts, c)
    _lines([move_text(m) for m in s.moves], c)
    render_items(s.items, c)
    render_timeline(s.timeline, c)
    for m in s.moves:
        if m.to_case:
            c.print(f"\nat {m.to_member}, case {m.to_case}")
            render_items(m.items, c)
            render_timeline(m.timeline, c)


def render_items(items: Sequence[ItemState], c: Console) -> None:
    c.print(f"\nitems ({len(items)})")
    for s in items:
        flags = "  DISPUTED" if s.disputed else ""
        c.print(f"  {item_name(s.ref.report_id, s.ref.index)}  {s.stage}{flags}")
        rows = [("origin said", str(s.ref.origin_classification))]
        if s.assessment is not None:
            rows.append(("assessed", assessment_text(s.assessment)))
        rows.append(("clock from", short_time(s.clock_started) or "— (no receipt yet)"))
        clock = takedown_clock(s)
        rows += [(CLOCK_LABELS[k], duration_text(clock[k]) + _who(s, k)) for k in CLOCK_STEPS]
        if s.closed and s.close_reason is not None:
            rows.append(("reason", str(s.close_reason)))
        if s.moved_to_country:
            rows.append(("moved to", f"{s.moved_to_country} ({s.moved_to_member})"))
        _facts(rows, c, indent="      ")


def render_pdq(d: CaseDetail, c: Console) -> None:
    """Each PDQ item's known content, then its near-known content, nearest first."""
    if d.pdq_note:
        c.print(f"\n{d.pdq_note}")
    if not d.pdq:
        return
    c.print(f"\nPDQ items ({len(d.pdq)}): known content, then near-known content")
    for p in d.pdq:
        c.print(f"  {item_name(p.report_id, p.index)}")
        c.print(f"      pdq:{p.hex}")  # 74 columns: no label beside it
        rows = [("known content", known_text(p)), ("near-known", near_summary(p))]
        rows += [("near", near_text(n)) for n in p.near]
        _facts(rows, c, indent="      ")


def _who(s: ItemState, step: str) -> str:
    if step == "lea" and s.lea_partner:
        return f" ({s.lea_partner})"
    if step == "host_notice" and s.host_recipient:
        return f" ({s.host_recipient})"
    return ""


def render_timeline(events: Sequence[CaseEvent], c: Console, *, title: str = "timeline") -> None:
    c.print(f"\n{title} ({len(events)})")
    for e in events:
        c.print(f"  {short_time(e.at)}  {e.member}  {items_text(e)}")
        c.print(
            textwrap.fill(
                event_text(e),
                WIDTH,
                initial_indent="      ",
                subsequent_indent="      ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
