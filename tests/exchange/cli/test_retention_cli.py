"""``ihx cases purge`` and ``ihx report regions`` against a running federation's databases.

The purge runs beside the running nl-eokm node (its own writer continues the stored routing
log), so afterwards the node keeps appending to one chain that still verifies. Time: the case
is closed now, and its closing time is moved back 400 days in the database, as a year passing
would; the retention logic itself is tested with a fake clock in
tests/exchange/lifecycle/test_retention.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.domain import (
    Classification,
    ContentHash,
    HashAlgorithm,
    LogKind,
    Submission,
    make_facts,
    make_item,
)
from exchange.lifecycle.model import Action, ActionKind, Assessment
from exchange.routing_log import LogEntry, verify_chain
from exchange.times import from_micros
from tests.exchange.cli.conftest import Running, wait_for
from tests.exchange.factories import case_of

NL = "nl-eokm"
YEAR_AND_A_MONTH_US = int(timedelta(days=400).total_seconds() * 1_000_000)


def submission(path: str, seed: str, region: str | None = None) -> Submission:
    item = make_item([ContentHash(HashAlgorithm.SHA256, seed * 64)], Classification.BASELINE)
    return Submission(f"https://example.nl/{path}", make_facts(), (item,), reporter_region=region)


def closed_long_ago(federation: Running, path: str, seed: str) -> tuple[str, str]:
    """A case at nl-eokm, assessed and removed, its closing moved back 400 days."""
    with federation.intake(NL) as client:
        report_id = client.submit(submission(path, seed)).report_id
    case_id = case_of(federation.nodes[NL].engine, report_id)
    work = federation.nodes[NL].case_work
    work.assess(case_id, [], Assessment(Classification.BASELINE))
    work.act(case_id, [], Action(ActionKind.REMOVED))
    federation.execute(
        NL,
        "update cases set closed_at = closed_at - ? where id = ?",
        (YEAR_AND_A_MONTH_US, case_id),
    )
    return case_id, report_id


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def chain_intact(federation: Running) -> bool:
    rows = federation.query(
        NL,
        "select idx, at, kind, report_id, member, country, detail, previous_hash, entry_hash"
        " from routing_log order by idx",
    )
    return verify_chain(LogEntry(r[0], from_micros(r[1]), *r[2:]) for r in rows) is None


def test_purge_lists_then_anonymises_beside_the_running_node(
    federation: Running, runner: CliRunner
) -> None:
    case_id, report_id = closed_long_ago(federation, "old.jpg", "a")
    config = str(federation.config(NL))
    sighting = "select count(*) from hash_index where member = ? and report_id = ?"
    wait_for(lambda: federation.query("de-eco", sighting, (NL, report_id)) == [(1,)])

    code, output = invoke(runner, "cases", "purge", "--config", config, "--dry-run", "--json")
    assert code == 0, output
    listed = json.loads(output)
    assert (listed["dry_run"], listed["cases"], listed["reports"]) == (True, [case_id], [report_id])
    assert listed["retention_days"] == 365
    assert federation.query(NL, "select url from cases where id = ?", (case_id,)) == [
        ("https://example.nl/old.jpg",)
    ]

    code, output = invoke(runner, "cases", "purge", "--config", config)
    assert code == 0, output
    assert "anonymised 1 case(s) and 1 report(s) closed before " in output
    assert case_id in output
    assert "1 hash sighting(s) of this node retracted" in output
    assert federation.query(NL, "select url, anonymised_at is not null from cases") == [("", 1)]
    assert federation.query(
        NL,
        "select count(*) from item_hashes"
        " where report_seq = (select seq from reports where id = ?)",
        (report_id,),
    ) == [(0,)]

    # the running node appends after the command's entry: one chain, still intact
    with federation.intake(NL) as client:
        client.submit(submission("new.jpg", "b"))
    kinds = [k for (k,) in federation.query(NL, "select kind from routing_log order by idx")]
    assert kinds.count(LogKind.ANONYMISED) == 1
    assert kinds.index(LogKind.ANONYMISED) < len(kinds) - 1
    assert chain_intact(federation)
    # the retraction reached the peers: de-eco's index no longer links the hash to the case
    wait_for(lambda: federation.query("de-eco", sighting, (NL, report_id)) == [(0,)])

    # nothing more is due
    code, output = invoke(runner, "cases", "purge", "--config", config, "--json")
    assert json.loads(output)["cases"] == []

    # the report can no longer be verified, and the command says why
    code, output = invoke(runner, "verify-report", report_id, "--config", config)
    assert code == 1
    assert "not anonymised: anonymised at " in output
    assert "VERIFICATION FAILED" in output


def test_purge_with_retention_off_does_nothing(
    federation: Running, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id, _ = closed_long_ago(federation, "kept.jpg", "c")
    monkeypatch.setenv("IHX_LIFECYCLE_RETENTION_DAYS", "0")
    code, output = invoke(runner, "cases", "purge", "--config", str(federation.config(NL)))
    assert code == 0, output
    assert "retention is off (lifecycle.retention_days = 0)" in output
    assert federation.query(NL, "select anonymised_at from cases where id = ?", (case_id,)) == [
        (None,)
    ]


def test_report_regions_hides_counts_under_five(federation: Running, runner: CliRunner) -> None:
    config = str(federation.config(NL))
    code, output = invoke(runner, "report", "regions", "--config", config)
    assert (code, output.strip()) == (0, "no report with a consented reporter region")

    with federation.intake(NL) as client:
        for i in range(5):
            client.submit(submission(f"nh-{i}.jpg", "0123456789"[i], "NL-NH"))
        for i in range(2):
            client.submit(submission(f"ut-{i}.jpg", "abcdef"[i], "NL-UT"))
        client.submit(submission("none.jpg", "f"))

    code, output = invoke(runner, "report", "regions", "--config", config)
    assert code == 0, output
    assert output.splitlines() == ["NL-NH  5", "NL-UT  <5"]
    code, output = invoke(runner, "report", "regions", "--config", config, "--json")
    assert json.loads(output) == {"minimum_shown": 5, "regions": {"NL-NH": 5, "NL-UT": "<5"}}
