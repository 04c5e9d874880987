"""``ihx takedown status / show / hold / release`` beside a running node.

The watches are the re-check scheduler's (tests/exchange/takedown/test_scheduler.py runs it
against a real web server); here a watch and two checks are written through the takedown store
as a pass would, and the commands read them — and hold and release a case's notices through a
writer of their own, audited in the rows and the node's routing log, which still verifies.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Connection, select
from typer.testing import CliRunner

from exchange.domain import Classification
from exchange.lifecycle.model import Assessment
from exchange.store import schema
from exchange.store import takedown as store
from exchange.store.takedown import CheckUpdate, WatchState
from exchange.takedown.model import Check, Outcome
from tests.exchange.cli.conftest import Running
from tests.exchange.cli.test_retention_cli import chain_intact, invoke, submission
from tests.exchange.factories import case_of

NL = "nl-eokm"


def watched_case(federation: Running) -> str:
    """A case at nl-eokm assessed illegal, watched, checked online then gone."""
    with federation.intake(NL) as client:
        report_id = client.submit(submission("watched.jpg", "b")).report_id
    case_id = case_of(federation.nodes[NL].engine, report_id)
    node = federation.nodes[NL]
    node.case_work.assess(case_id, [], Assessment(Classification.BASELINE))
    node.writer.execute(lambda tx: _watch(tx.conn, case_id))
    return case_id


def _watch(conn: Connection, case_id: str) -> datetime:
    now: datetime = conn.execute(select(schema.cases.c.opened_at)).scalar_one()
    store.start_watches(conn, [(case_id, "example.nl", "NL")], now)
    for minutes, outcome, status in ((0, Outcome.ONLINE, 200), (60, Outcome.GONE, 404)):
        check = Check(
            at=now + timedelta(minutes=minutes),
            outcome=outcome,
            status=status,
            address="185.107.56.10",
            country="NL",
            asn=43350,
            organisation="NForce Entertainment B.V.",
        )
        update = CheckUpdate(
            case_id,
            check,
            check.at + timedelta(hours=1),
            WatchState.WATCHING,
            "NL",
            43350,
            "NForce Entertainment B.V.",
            False,
        )
        store.record(conn, [update], now)
    return now


def test_status_and_show_read_the_watches(federation: Running, runner: CliRunner) -> None:
    case_id = watched_case(federation)
    config = str(federation.config(NL))

    code, output = invoke(runner, "takedown", "status", "--config", config, "--json")
    assert code == 0, output
    status = json.loads(output)
    assert status["watches"] == {"watching": 1}
    assert (status["no_contact"], status["on_hold"]) == (0, 0)

    code, output = invoke(runner, "takedown", "show", case_id, "--config", config, "--json")
    assert code == 0, output
    shown = json.loads(output)
    assert (shown["state"], shown["checks"], shown["not_online_run"], shown["asn"]) == (
        "watching",
        2,
        1,
        43350,
    )
    assert [(c["outcome"], c["status"]) for c in shown["recent_checks"]] == [
        ("gone", 404),
        ("online", 200),
    ]
    code, text = invoke(runner, "takedown", "show", case_id, "--config", config)
    assert code == 0
    assert "AS43350 NForce Entertainment B.V." in text
    assert "gone" in text

    code, output = invoke(runner, "takedown", "show", "c-" + "0" * 32, "--config", config)
    assert (code, output.strip()) == (
        2,
        f"ihx: error: case c-{'0' * 32} is not watched here (not held, or never illegal)",
    )


def test_an_analyst_holds_and_releases_a_cases_notices(
    federation: Running, runner: CliRunner
) -> None:
    case_id = watched_case(federation)
    config = str(federation.config(NL))
    code, output = invoke(
        runner,
        "takedown",
        "hold",
        case_id,
        "--config",
        config,
        "--for",
        "7d",
        "--reason",
        "police preserving evidence",
        "--by",
        "jdoe",
    )
    assert code == 0, output
    code, output = invoke(runner, "takedown", "status", "--config", config, "--json")
    assert json.loads(output)["on_hold"] == 1
    code, output = invoke(
        runner, "takedown", "release", case_id, "--config", config, "--by", "jdoe"
    )
    assert (code, output.strip()) == (0, f"1 hold(s) on {case_id} released")

    rows = federation.query(NL, "select by, reason, released_by from takedown_holds")
    assert rows == [("analyst:jdoe", "police preserving evidence", "analyst:jdoe")]
    kinds = [r[0] for r in federation.query(NL, "select kind from routing_log order by idx")]
    assert kinds.count("notices-held") == 1
    assert kinds.count("hold-released") == 1
    assert chain_intact(federation)

    for args, message in (
        (
            ("--for", "7x", "--reason", "r"),
            "--for: '7x' is not a duration: use e.g. 90m, 12h or 7d",
        ),
        (("--for", "91d", "--reason", "r"), "hold: 7862400 s is outside 1 s … 90 days"),
        (("--for", "1d", "--reason", " "), "reason: required, printable, at most 200 characters"),
    ):
        code, output = invoke(runner, "takedown", "hold", case_id, "--config", config, *args)
        assert (code, output.strip()) == (2, f"ihx: error: {message}")
    assert len(federation.query(NL, "select id from takedown_holds")) == 1


def test_hold_and_release_answer_in_json(federation: Running, runner: CliRunner) -> None:
    case_id = watched_case(federation)
    config = str(federation.config(NL))
    hold = ["takedown", "hold", case_id, "--config", config, "--for", "2h", "--reason", "lea"]
    code, output = invoke(runner, *hold, "--by", "jdoe", "--json")
    assert code == 0, output
    held = json.loads(output)
    assert (held["case"], held["by"]) == (case_id, "analyst:jdoe")
    stored = federation.query(NL, "select count(*) from takedown_holds")
    assert stored == [(1,)]
    assert held["until"].endswith("Z")
    release = ["takedown", "release", case_id, "--config", config, "--by", "jdoe", "--json"]
    code, output = invoke(runner, *release)
    assert (code, json.loads(output)) == (0, {"case": case_id, "released": 1})
