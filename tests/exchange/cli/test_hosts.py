"""``ihx hosts [--json]``: the hoster scorecard read from a node's database.

A node directory's settings and a migrated database (SQLite, or PostgreSQL when the suite runs
on it) hold hand-built cases and notices, timed relative to now (the command reads the real
clock): AS64500 was noticed twice about two cases, removed one item 2 h and another 10 h after
the first notice, and has one item online for 48 h; AS64501 removed its one item in 10 h.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.lifecycle.model import Stage
from exchange.settings import load_settings
from exchange.store.engine import open_engine
from exchange.tools.provision import init_database, write_settings
from tests.auth.factories import make_network
from tests.dbs import Databases
from tests.exchange.takedown.factories import (
    item,
    notice_case_row,
    notice_row,
    put_case,
    put_notices,
)

NL = "nl-eokm"
H = timedelta(hours=1)
B = {"asn": 64501, "organisation": "Beispiel GmbH"}


@pytest.fixture
def node_config(tmp_path: Path, country_db: Path, databases: Databases) -> Path:
    config = tmp_path / "node" / "node.toml"
    config.parent.mkdir()
    write_settings(
        config,
        member=NL,
        listen="127.0.0.1:7701",
        trusted_keys=[make_network().coordinator_key.public.to_b64()],
        country_db=country_db,
        asn_db=None,
        database_url=databases.new(),
    )
    init_database(load_settings(config, env={}))
    return config


def fill(config: Path) -> datetime:
    """The scorecard's rows; returns the first notice's time."""
    first = datetime.now(UTC).replace(microsecond=0) - 48 * H
    engine = open_engine(load_settings(config, env={}).database_url)
    try:
        put_case(
            engine,
            "c-1",
            [
                item("1", 0, holder=NL, stage=Stage.REMOVED, closed_at=first + 2 * H),
                item("1", 1, holder=NL, stage=Stage.REMOVED, closed_at=first + 10 * H),
            ],
            state="done",
            last_outcome="gone",
        )
        put_case(engine, "c-2", [item("2", holder=NL, stage=Stage.ACTIONED)])
        put_case(
            engine,
            "c-3",
            [item("3", holder=NL, stage=Stage.REMOVED, closed_at=first + 20 * H)],
            **B,
        )
        put_notices(
            engine,
            (
                notice_row("n-1", sent_at=first),
                [notice_case_row("n-1", "c-1", items=2), notice_case_row("n-1", "c-2")],
            ),
            (notice_row("n-2", sent_at=first + 24 * H), [notice_case_row("n-2", "c-1", items=2)]),
            (notice_row("n-3", sent_at=first + 10 * H), [notice_case_row("n-3", "c-3", **B)]),
        )
    finally:
        engine.dispose()
    return first


def test_hosts_json_gives_every_figure(runner: CliRunner, node_config: Path) -> None:
    fill(node_config)
    result = runner.invoke(app, ["hosts", "--config", str(node_config), "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    a, b = document["hosters"]
    assert {k: a[k] for k in ("asn", "organisation", "notices", "cases", "items", "removed")} == {
        "asn": 64500,
        "organisation": "Example Hosting B.V.",
        "notices": 2,
        "cases": 2,
        "items": 3,
        "removed": 2,
    }
    assert a["removal_median_s"] == pytest.approx(6 * 3600)
    assert a["removal_p90_s"] == pytest.approx(9.2 * 3600)
    assert a["still_online"] == 1
    # 48 h since the first notice, give or take the moments the command took
    assert a["online_max_s"] == pytest.approx(48 * 3600, abs=300)
    assert (b["asn"], b["notices"], b["removed"], b["still_online"]) == (64501, 1, 1, 0)
    assert b["removal_median_s"] == pytest.approx(10 * 3600)
    assert b["online_max_s"] is None
    assert document["at"].endswith("Z")


def test_hosts_prints_a_table_a_person_reads(runner: CliRunner, node_config: Path) -> None:
    fill(node_config)
    result = runner.invoke(app, ["hosts", "--config", str(node_config)])
    assert result.exit_code == 0, result.stderr
    title, header, a_name, a, b_name, b = result.stdout.splitlines()
    assert title == "hoster"
    assert header.split() == ["notices", "items", "removed", "median", "p90", "online", "longest"]
    assert a_name == "AS64500 Example Hosting B.V."
    assert "  2  " in a
    assert "6 h 0 min" in a
    assert "9 h 12 min" in a
    assert "2 d 0 h" in a
    assert b_name == "AS64501 Beispiel GmbH"
    assert b.rstrip().endswith("—")  # nothing online: no longest
    # figures line up under their headers, within 80 columns whatever the names
    assert a.index("6 h 0 min") == header.index("median")
    assert b.index("1") == header.index("notices")
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_hosts_before_any_notice(runner: CliRunner, node_config: Path) -> None:
    result = runner.invoke(app, ["hosts", "--config", str(node_config)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "no notice has been sent to a hoster yet"
    as_json = runner.invoke(app, ["hosts", "--config", str(node_config), "--json"])
    assert json.loads(as_json.stdout)["hosters"] == []


def test_hosts_with_a_missing_config_is_one_error_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["hosts", "--config", str(tmp_path / "absent.toml")])
    assert result.exit_code == 2
    assert result.stderr.startswith("ihx: error: ")
    assert "no such settings file" in result.stderr
