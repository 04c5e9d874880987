"""The tables a person reads fit 80 columns (a terminal's default, and every pipe's), ids whole.

The main tables — ``cases list``, ``status``, ``log``, ``takedown status`` and ``show``, ``hosts``
(tests/exchange/cli/test_hosts.py) — rendered with ``COLUMNS=80`` from real nodes holding data
that pushes them wide: long member error messages, JSON log details, case and report ids.
No line may pass 80 columns, and every id must appear whole on one line.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from exchange.cli.main import app
from tests.exchange.cli.conftest import Running, wait_for
from tests.exchange.cli.test_casework import work_token
from tests.exchange.cli.test_takedown_cli import watched_case
from tests.exchange.factories import make_submission

pytestmark = pytest.mark.timeout(90)

NL, DE = "nl-eokm", "de-eco"
IDS = re.compile(r"\b[rc]-[0-9a-f]{32}\b")
WIDE = {"COLUMNS": "80"}


def render(runner: CliRunner, *args: str) -> list[str]:
    result = runner.invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    too_long = [line for line in lines if len(line) > 80]
    assert not too_long, (args[:2], too_long)
    return lines


def whole(ids: set[str], lines: list[str]) -> None:
    """Each id appears intact on some line (a split id would not match)."""
    found = {m for line in lines for m in IDS.findall(line)}
    assert ids <= found, sorted(ids - found)


def test_main_tables_fit_80_columns_with_ids_whole(runner: CliRunner, federation: Running) -> None:
    with federation.intake(NL) as client:
        answers = [
            client.submit(
                make_submission(f"https://example.de/a/long/path/{i}.jpg", hashes=[f"t{i}"])
            )
            for i in range(3)
        ]
    report_ids = {a.report_id for a in answers}
    wait_for(lambda: federation.query(DE, "select count(*) from cases") == [(3,)])
    case_ids = {r[0] for r in federation.query(DE, "select id from cases")}

    token = work_token(runner, federation, DE)
    queue = render(
        runner, "cases", "list", "--queue", "unassessed", "--node", federation.address(DE),
        "--token", token,
    )  # fmt: skip
    whole(case_ids, queue)

    log = render(runner, "log", "--config", str(federation.config(NL)))
    whole(report_ids, log)
    # A report's listing: its batch's receipt names its case, whole too, though wrapped.
    one = sorted(report_ids)[0]
    [(case_of_one,)] = federation.query(
        NL,
        "select d.remote_case_id from deliveries d join reports r on r.seq = d.report_seq"
        " where r.id = ?",
        (one,),
    )
    mine = render(runner, "log", "--config", str(federation.config(NL)), "--report-id", one)
    assert case_of_one in case_ids
    whole({one, case_of_one}, mine)

    # A peer failing with a long error: the status folds it under the peers table.
    error = "UNAVAILABLE: failed to connect to all addresses; last error: " + "x" * 120
    federation.execute(
        NL,
        "update peers set last_error = ?, failures = 7, failing_since = last_heard_at "
        "where member = ?",
        (error, DE),
    )
    status = render(runner, "status", "--config", str(federation.config(NL)))
    text = " ".join(line.strip() for line in status)
    assert f"{DE}: failing 7x since" in text
    assert "UNAVAILABLE: failed to connect to all addresses" in text

    case_id = watched_case(federation)
    config = str(federation.config(NL))
    render(runner, "takedown", "status", "--config", config)
    shown = render(runner, "takedown", "show", case_id, "--config", config)
    whole({case_id}, shown)
