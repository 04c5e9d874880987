"""``ihx takedown``: the re-checks and notices of cases held here, and analysts' holds.

``status`` shows the watches at a glance; ``show CASE`` one case's watch, its last checks and
its holds; ``hold`` / ``release`` let an analyst hold a case's notices (law enforcement first)
the way a partner does through its API — audited the same way. Each opens the node's database
(``open_local``); the writes go through a writer of the command's own, which continues the
routing log from its stored head, so they are safe beside a running node.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.cli.common import (
    CliError,
    aligned,
    format_time,
    out,
    parse_duration,
    print_json,
    short_time,
)
from exchange.local import LocalNode, open_local
from exchange.settings import load_settings
from exchange.store.writer import Tx, Writer
from exchange.takedown.holds import Holds
from exchange.takedown.views import CaseTakedown, TakedownViews

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CaseArgument = Annotated[str, typer.Argument(help="The case id (c-…).")]
ByOption = Annotated[
    str, typer.Option("--by", help="Who holds it, for the audit (an analyst's handle).")
]


def register(app: typer.Typer) -> None:
    takedown = typer.Typer(
        help="Re-checks and notices of cases held here; holds on notices.", no_args_is_help=True
    )
    takedown.command("status")(status_command)
    takedown.command("show")(show_command)
    takedown.command("hold")(hold_command)
    takedown.command("release")(release_command)
    app.add_typer(takedown, name="takedown")


def status_command(config: ConfigOption, as_json: JsonOption = False) -> None:
    """The watches at a glance: per state, due now, without an abuse contact, on hold."""
    with open_local(load_settings(config)) as local:
        status = TakedownViews(engine=local.engine, clock=local.clock).status()
    if as_json:
        print_json(
            {
                "watches": status.watches,
                "due": status.due,
                "no_contact": status.no_contact,
                "on_hold": status.on_hold,
            }
        )
        return
    rows = [[state, str(n)] for state, n in sorted(status.watches.items())]
    rows += [["due now", str(status.due)], ["no contact", str(status.no_contact)]]
    rows += [["on hold", str(status.on_hold)]]
    for line in aligned(rows):
        out().print(line)


def show_command(case_id: CaseArgument, config: ConfigOption, as_json: JsonOption = False) -> None:
    """One case's watch, its last re-checks (newest first) and every hold on its notices."""
    with open_local(load_settings(config)) as local:
        shown = TakedownViews(engine=local.engine, clock=local.clock).case(case_id)
    document = _document(shown)
    if as_json:
        print_json(document)
        return
    w = shown.watch
    hoster = f"AS{w.asn} {w.organisation}".strip() if w.asn is not None else w.organisation
    lines = [
        ["case", w.case_id],
        ["state", w.state + (" (no abuse contact)" if w.no_contact else "")],
        ["host", w.host],
        ["hosted", f"{w.country or '?'}  {hoster or '?'}"],
        ["checks", f"{w.checks}, next {short_time(w.next_check_at)}"],
        ["online since", short_time(w.online_since) or "-"],
        ["notices", f"{w.notices}, last {short_time(w.last_notice_at) or '-'}"],
        ["on hold until", short_time(w.hold_until) or "-"],
    ]
    for line in aligned(lines, indent=""):
        out().print(line)
    for c in shown.checks:
        status = str(c.status) if c.status is not None else "-"
        line = f"{short_time(c.at)}  {c.outcome:<11} {status:>3}  {c.country or '?'}  {c.detail}"
        for part in textwrap.wrap(line, 80, initial_indent="  ", subsequent_indent="    "):
            out().print(part)
    for hold, released in shown.holds:
        end = f"released {short_time(released)}" if released else f"until {short_time(hold.until)}"
        out().print(f"  hold by {hold.by} {end}: {hold.reason}")


def _document(shown: CaseTakedown) -> dict[str, Any]:
    w = shown.watch
    return {
        "case": w.case_id,
        "state": w.state,
        "host": w.host,
        "country": w.country,
        "asn": w.asn,
        "organisation": w.organisation,
        "checks": w.checks,
        "next_check_at": format_time(w.next_check_at),
        "online_since": format_time(w.online_since),
        "not_online_run": w.not_online,
        "notices": w.notices,
        "first_notice_at": format_time(w.first_notice_at),
        "last_notice_at": format_time(w.last_notice_at),
        "no_contact": w.no_contact,
        "hold_until": format_time(w.hold_until),
        "recent_checks": [
            {
                "at": format_time(c.at),
                "outcome": str(c.outcome),
                "status": c.status,
                "address": c.address,
                "country": c.country,
                "asn": c.asn,
                "redirects": c.redirects,
                "elapsed_ms": c.elapsed_ms,
                "detail": c.detail,
            }
            for c in shown.checks
        ],
        "holds": [
            {
                "by": h.by,
                "at": format_time(h.at),
                "until": format_time(h.until),
                "reason": h.reason,
                "released_at": format_time(released),
            }
            for h, released in shown.holds
        ],
    }


def hold_command(
    case_id: CaseArgument,
    config: ConfigOption,
    duration: Annotated[
        str, typer.Option("--for", help="How long: N followed by s, m, h, d or w (e.g. 7d).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (audited; no names).")],
    by: ByOption = "analyst",
    as_json: JsonOption = False,
) -> None:
    """Hold the notices to the hoster of a case held here (re-checks go on)."""
    span = parse_duration(duration, option="--for")
    with open_local(load_settings(config)) as local, _holds(local) as holds:
        hold = holds.hold(case_id, _analyst(by), span, reason, _any_case)
    if as_json:
        print_json({"case": case_id, "by": hold.by, "until": format_time(hold.until)})
        return
    out().print(f"notices of {case_id} held until {short_time(hold.until)}")


def release_command(
    case_id: CaseArgument,
    config: ConfigOption,
    by: ByOption = "analyst",
    as_json: JsonOption = False,
) -> None:
    """Release the holds ``--by`` put on a case's notices."""
    with open_local(load_settings(config)) as local, _holds(local) as holds:
        n = holds.release(case_id, _analyst(by), _any_case)
    if as_json:
        print_json({"case": case_id, "released": n})
        return
    out().print(f"{n} hold(s) on {case_id} released")


@contextmanager
def _holds(local: LocalNode) -> Iterator[Holds]:
    """Holds over a writer of the command's own, stopped on the way out."""
    writer = Writer(local.engine)
    writer.start()
    try:
        yield Holds(writer=writer, engine=local.engine, clock=local.clock, self_member=local.member)
    finally:
        writer.stop()


def _any_case(tx: Tx, by: str, case_id: str) -> bool:
    """The holder's own analysts may hold any case held here."""
    return True


def _analyst(handle: str) -> str:
    text = handle.strip()
    if not text or len(text) > 48 or not text.isprintable() or " " in text:
        raise CliError("--by: one word of at most 48 printable characters")
    return text if text == "analyst" else f"analyst:{text}"
