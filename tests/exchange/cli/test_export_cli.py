"""``ihx export cases|log``: CSV from a node's database, columns checked before anything opens.

A node directory's settings and a migrated database (SQLite, or PostgreSQL when the suite runs
on it) hold hand-built cases and log entries; the command runs as a user runs it.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.settings import load_settings
from exchange.store.engine import open_engine
from exchange.tools.provision import init_database, write_settings
from tests.auth.factories import make_network
from tests.dbs import Databases
from tests.exchange.stats.export_rows import put_log
from tests.exchange.store.held_cases import item, put_case


@pytest.fixture
def node_config(tmp_path: Path, country_db: Path, databases: Databases) -> Path:
    config = tmp_path / "node" / "node.toml"
    config.parent.mkdir()
    write_settings(
        config,
        member="nl-eokm",
        listen="127.0.0.1:7701",
        trusted_keys=[make_network().coordinator_key.public.to_b64()],
        country_db=country_db,
        asn_db=None,
        database_url=databases.new(),
    )
    init_database(load_settings(config, env={}))
    engine = open_engine(load_settings(config, env={}).database_url)
    try:
        put_case(engine, "cli", [item(0), item(1)])
        put_log(
            engine,
            [
                {"kind": "intake", "member": "de-eco", "country": "DE"},
                {"kind": "sent", "member": "de-eco", "country": "DE"},
                {"kind": "intake", "member": "us-ncmec", "country": "US"},
            ],
        )
    finally:
        engine.dispose()
    return config


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_cases_with_chosen_columns_to_stdout(node_config: Path) -> None:
    code, out, _ = run(
        "export", "cases", "--config", str(node_config), "--columns", "items,status,url",
        "--include-url",
    )  # fmt: skip
    assert code == 0
    assert table(out) == [
        ["items", "status", "url"],
        ["2", "open", "https://hosting-de.example/cli.jpg"],
    ]


def _viewed(config: Path) -> list[dict[str, object]]:
    engine = open_engine(load_settings(config, env={}).database_url)
    try:
        with engine.connect() as conn:
            q = "SELECT detail FROM routing_log WHERE kind = 'viewed' ORDER BY idx"
            return [json.loads(d) for (d,) in conn.execute(text(q))]
    finally:
        engine.dispose()


def test_a_url_export_is_audited_per_page_naming_the_operator(node_config: Path) -> None:
    args = ["export", "cases", "--config", str(node_config), "--columns", "case_id,url"]
    code, out, err = run(*args, "--include-url", "--operator", "alice")
    assert code == 0, err
    case_id = table(out)[1][0]
    shape = {"export": "cases", "viewer": "alice", "issuer": "cli", "url_shown": True}
    assert _viewed(node_config) == [
        {**shape, "status": "", "columns": ["case_id", "url"]},
        {**shape, "part": 1, "cases": [case_id]},
    ]


def test_an_export_without_urls_is_one_entry_naming_the_os_user(node_config: Path) -> None:
    code, _, err = run("export", "cases", "--config", str(node_config), "--columns", "items")
    assert code == 0, err
    [entry] = _viewed(node_config)
    assert (entry["viewer"], entry["url_shown"], entry["columns"]) == (
        getpass.getuser(),
        False,
        ["items"],
    )


def test_cases_to_a_file(node_config: Path, tmp_path: Path) -> None:
    target = tmp_path / "cases.csv"
    code, _, err = run("export", "cases", "--config", str(node_config), "--out", str(target))
    assert code == 0
    assert f"written {target}" in err
    got = table(target.read_text(encoding="utf-8"))
    assert got[0][:3] == ["case_id", "opened_at", "status"]
    assert "url" not in got[0]
    assert len(got) == 2
    assert not list(tmp_path.glob("*.partial"))


def test_an_unknown_column_lists_the_allowed_ones_and_writes_nothing(
    node_config: Path, tmp_path: Path
) -> None:
    target = tmp_path / "cases.csv"
    code, out, err = run(
        "export", "cases", "--config", str(node_config), "--columns", "case_id,secret",
        "--out", str(target),
    )  # fmt: skip
    assert code == 2
    assert "unknown column 'secret'; choose from: case_id, status" in err
    assert out == ""
    assert not target.exists()


def test_the_url_column_needs_include_url(node_config: Path) -> None:
    code, out, err = run("export", "cases", "--config", str(node_config), "--columns", "url")
    assert code == 2
    assert "may not see URLs" in err
    assert "hosting-de.example" not in out


def test_the_log_filtered_like_ihx_log(node_config: Path) -> None:
    code, out, _ = run("export", "log", "--config", str(node_config), "--member", "de-eco")
    assert code == 0
    got = table(out)
    assert got[0][:4] == ["index", "at", "kind", "report_id"]
    assert [(r[0], r[2]) for r in got[1:]] == [("0", "intake"), ("1", "sent")]
    code, out, _ = run("export", "log", "--config", str(node_config), "--kind", "intake",
                       "--country", "US")  # fmt: skip
    assert [r[0] for r in table(out)[1:]] == ["2"]


def test_a_bad_filter_is_refused(node_config: Path) -> None:
    code, out, err = run("export", "cases", "--config", str(node_config), "--status", "gone")
    assert code == 2
    assert "status 'gone': choose from open, closed" in err
    assert out == ""
