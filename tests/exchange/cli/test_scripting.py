"""The CLI as a script uses it: ``--json`` output, time options, enumerated options, imports.

Against the CLI federation (real nodes on loopback, real databases): relative and absolute
times in ``ihx log`` and ``ihx export log``; ``--kind`` refused with the allowed words listed;
``ihx import --json`` (one object per record, then a summary) for JSON Lines and for the CSV
files spreadsheet programs write (semicolons, tabs, a BOM, blank lines); every command that
reports something takes ``--json``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from exchange.cli.main import app
from tests.exchange.cli.conftest import Running, wait_for
from tests.exchange.factories import make_submission

pytestmark = pytest.mark.timeout(90)

NL = "nl-eokm"
SHA = "sha256:" + "ab" * 32


def sha(seed: str) -> str:
    return "sha256:" + (seed * 64)[:64]


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def said(result: Result) -> str:
    """stderr as words: a usage error comes in a box, wrapped."""
    return " ".join(result.stderr.replace("│", " ").split())


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# -- times ---------------------------------------------------------------------------------------


def test_since_takes_relative_times_days_and_rfc3339(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    with federation.intake(NL) as client:
        client.submit(make_submission("https://example.nl/since.jpg", hashes=["since"]))
    config = str(federation.config(NL))
    log = ["log", "--config", config, "--json"]
    everything = json_lines(ok(runner.invoke(app, log)))
    assert everything
    # --since -1h (as --help suggests): the last hour, so everything just written …
    assert json_lines(ok(runner.invoke(app, [*log, "--since", "-1h"]))) == everything
    assert json_lines(ok(runner.invoke(app, [*log, "--since", "-90m"]))) == everything
    # … and nothing from an hour ahead or before a week ago.
    assert ok(runner.invoke(app, [*log, "--since", "+1h"])) == ""
    assert ok(runner.invoke(app, [*log, "--until", "-7d"])) == ""
    # A day is its start, UTC; RFC 3339 as before.
    assert json_lines(ok(runner.invoke(app, [*log, "--since", "2020-01-01"]))) == everything
    assert ok(runner.invoke(app, [*log, "--until", "2020-01-01T00:00:00Z"])) == ""
    # The export reads times with the same parser.
    export = ["export", "log", "--config", config, "--since", "-1h"]
    rows = list(csv.reader(io.StringIO(ok(runner.invoke(app, export)))))
    assert len(rows) == len(everything) + 1  # the header
    bad = runner.invoke(app, [*log, "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "--since: 'yesterday' is not a time: use now, -1h" in bad.stderr


@pytest.mark.parametrize("command", [["log"], ["export", "log"]])
def test_kind_is_one_of_the_log_kinds_listed(
    runner: CliRunner, federation: Running, command: list[str]
) -> None:
    config = str(federation.config(NL))
    result = runner.invoke(app, [*command, "--config", config, "--kind", "recieved"])
    assert result.exit_code == 2
    assert "'recieved' is not one of" in said(result)
    for word in ("intake", "receipted", "new-case", "gone-suggested"):
        assert f"'{word}'" in said(result)
    good = runner.invoke(app, [*command, "--config", config, "--kind", "intake"])
    assert good.exit_code == 0, good.stderr


# -- import --------------------------------------------------------------------------------------


def _import(runner: CliRunner, federation: Running, path: Path, *extra: str) -> Result:
    return runner.invoke(app, ["import", str(path), "--node", federation.address(NL), *extra])


def test_import_json_gives_each_lines_report_id_or_error_then_a_summary(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    good = {
        "url": "https://example.nl/j1",
        "items": [{"hashes": [sha("1")], "classification": "baseline"}],
    }
    path = tmp_path / "reports.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                "",
                '{"url": "https://example.nl/j2", "items": "none"}',
                "   ",
                json.dumps({**good, "url": "https://example.de/j3"}),
                "",
            ]
        ),
        encoding="utf-8",
    )
    result = _import(runner, federation, path, "--json")
    assert result.exit_code == 1  # a record was refused
    assert result.stderr == ""  # stdout holds everything, as JSON
    *records, last = json_lines(result.stdout)
    assert [r["line"] for r in records] == [1, 3, 5]
    first, bad, third = records
    assert first["report_id"].startswith("r-")
    assert (first["member"], first["duplicate"], first["reason"]) == (NL, False, "local")
    assert (bad["report_id"], bad["refused_by"]) == (None, "file")
    assert "items: expected an array of items, got a string" in bad["error"]
    assert third["member"] == "de-eco"
    reports = {r[0] for r in federation.query(NL, "select id from reports")}
    assert {first["report_id"], third["report_id"]} == reports
    summary = last["summary"]
    assert (summary["read"], summary["new"], summary["refused"]) == (3, 2, 1)
    assert summary["blank_lines"] == 2
    assert summary["destinations"] == {"de-eco": 1, NL: 1}


def test_import_reads_european_csv_with_a_bom_semicolons_and_blank_lines(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    # As a spreadsheet program set to a European locale saves "CSV": BOM, ';', CRLF; a cell
    # holding the delimiter (two hashes) quoted.
    rows = [
        "url;classification;hashes;notes",
        f"https://example.nl/eu1;baseline;{sha('3')};one, two",
        "",
        ";;;",
        f'https://example.nl/eu2;national;"{sha("4")};md5:{"5" * 32}";',
    ]
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    result = _import(runner, federation, path, "--json")
    *records, last = json_lines(ok(result))
    assert [r["line"] for r in records] == [2, 5]
    assert all(r["report_id"] for r in records)
    assert last["summary"]["blank_lines"] == 2
    assert last["summary"]["new"] == 2
    notes = federation.query(NL, "select count(*) from reports")
    assert notes == [(2,)]
    # The table says the same, blank lines included.
    again = ok(_import(runner, federation, path))
    assert "blank lines   2 (skipped)" in again
    assert "duplicates    2" in again


def test_import_csv_with_tabs_and_a_forced_delimiter(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    path = tmp_path / "tabs.csv"
    path.write_text(
        f"url\tclassification\thashes\nhttps://example.nl/t1\tbaseline\t{sha('6')}\n",
        encoding="utf-8",
    )
    (record, _summary) = json_lines(ok(_import(runner, federation, path, "--json")))
    assert record["report_id"].startswith("r-")
    # A wrong --delimiter reads the header as one unknown column, and says which delimiter.
    wrong = _import(runner, federation, path, "--delimiter", "semicolon")
    assert wrong.exit_code == 2
    assert "with delimiter semicolon" in wrong.stderr
    forced = _import(runner, federation, path, "--delimiter", "tab", "--json")
    assert json_lines(ok(forced))[0]["duplicate"] is True
    not_csv = _import(runner, federation, tmp_path / "x.jsonl", "--delimiter", "tab")
    assert not_csv.exit_code == 2
    assert "--delimiter is for CSV files" in not_csv.stderr
    bad = _import(runner, federation, path, "--delimiter", "pipe")
    assert bad.exit_code == 2
    assert "'pipe' is not one of 'comma', 'semicolon', 'tab'" in said(bad)


# -- --json everywhere ---------------------------------------------------------------------------

# Commands whose output is not a report on stdout: servers, file writers, fixed formats. Every
# other command must take --json (docs/cli.md lists these with the format they write instead).
NO_JSON = {
    "demo",  # runs a demonstration network, prints a walkthrough
    "web",  # a server
    "node run",  # a server
    "init",  # writes a node directory
    "db upgrade",  # migrates a database
    "network keygen",
    "network create",
    "network add-member",
    "network update-member",
    "network set-orphan",
    "network set-reader",
    "network rotate-key",
    "network revoke-key",
    "network sign",
    "network verify",
    "token issue",  # prints the token itself
    "tls ca",  # writes PEM files
    "tls node",
    "cases pull",  # always JSON Lines
    "export cases",  # always CSV
    "export log",
    "stats plot",  # writes charts
    "geoip build",  # writes a database
}


# Commands are typer's own (vendored) click types; Any as in exchange/cli/main.py.
def _commands(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    found: dict[str, Any] = {}
    subcommands = getattr(command, "commands", None)
    if subcommands is None or (path and command.callback is not None and command.params):
        found[" ".join(path)] = command
    for name, sub in (subcommands or {}).items():
        found.update(_commands(sub, (*path, name)))
    return found


def test_every_command_that_reports_takes_json() -> None:
    root = typer.main.get_command(app)
    # The root loads each command's module on first use (exchange/cli/main.py): load them all.
    for name in root.list_commands(None):  # type: ignore[arg-type]
        root.get_command(None, name)  # type: ignore[arg-type]
    commands = _commands(root)
    assert set(commands) >= NO_JSON, sorted(NO_JSON - set(commands))
    without = {
        name
        for name, command in commands.items()
        if not any("--json" in getattr(p, "opts", []) for p in command.params)
    }
    assert without == NO_JSON
    # --json is always a flag (output), never an option taking a file (input).
    for name, command in commands.items():
        for param in command.params:
            if "--json" in getattr(param, "opts", []):
                assert getattr(param, "is_flag", False), name


def test_submit_reads_a_report_from_json_and_answers_in_json(
    runner: CliRunner, federation: Running
) -> None:
    report = {
        "url": "https://example.de/fj",
        "items": [{"hashes": [SHA], "classification": "national"}],
    }
    args = ["submit", "--node", federation.address(NL), "--from-json", "-", "--json"]
    answer = json.loads(ok(runner.invoke(app, args, input=json.dumps(report))))
    assert answer["decision"]["member"] == "de-eco"
    wait_for(lambda: federation.query("de-eco", "select count(*) from reports") == [(1,)])
