"""``ihx stats`` without a server: the node's own figures from its database, as table, JSON, CSV.

A node directory's settings and a migrated database (SQLite, or PostgreSQL when the suite runs
on it) hold the hoster scorecard's hand-built cases and notices (``test_hosts.fill``): the
statistics engine counts them, and the command prints exactly the engine's snapshot — with the
hosters' small counts masked as "<5" in every format. The network's gather is
tests/integration/test_stats_network.py's; the formats on hand-built snapshots are
test_stats_formats.py's.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from common.clock import system_clock
from exchange.cli.main import app
from exchange.cli.stats_formats import Figures, json_document
from exchange.local import open_local
from exchange.settings import load_settings
from exchange.stats.export import statistics_csv
from exchange.stats.figures import NodeFigures
from exchange.stats.model import Granularity, Period, Snapshot
from exchange.store.engine import immediate, open_engine
from exchange.tools.provision import init_database, write_settings
from tests.auth.factories import make_network
from tests.dbs import Databases
from tests.exchange.cli.test_hosts import NL, fill


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
    fill(config)
    return config


def _period() -> Period:
    today = datetime.now(UTC).date()
    return Period(today - timedelta(days=4), today, Granularity.DAY)


def _args(config: Path, period: Period, *extra: str) -> list[str]:
    first, last = period.first.isoformat(), period.last.isoformat()
    return ["stats", "--config", str(config), "--from", first, "--to", last, "--by", "day", *extra]


def _own(config: Path, period: Period) -> Snapshot:
    with open_local(load_settings(config, env={}), clock=system_clock) as local:
        return NodeFigures(engine=local.engine, member=NL, clock=system_clock).snapshot(period)


def test_json_is_the_nodes_own_snapshot_with_hosters_masked(
    runner: CliRunner, node_config: Path
) -> None:
    period = _period()
    result = runner.invoke(app, _args(node_config, period, "--json"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    expected = json_document(Figures(_own(node_config, period)))
    del doc["generated_at"], expected["generated_at"]  # two snapshots, two times
    assert doc == expected
    assert doc["scope"] == "node"
    assert doc["members"] == {"answered": [NL], "missing": {}}
    hoster = [c for c in doc["counts"] if c["figure"].startswith("hoster.")]
    assert hoster, "the scorecard's figures are there"
    assert not [c for c in hoster if "counts" in c], "period totals only, no buckets"
    totals = [c["total"] for c in hoster]
    assert "<5" in totals
    assert not [n for n in totals if isinstance(n, int) and 0 < n < 5]


def test_csv_is_the_snapshot_as_the_web_view_exports_it(
    runner: CliRunner, node_config: Path
) -> None:
    period = _period()
    result = runner.invoke(app, _args(node_config, period, "--csv"))
    assert result.exit_code == 0, result.output
    exported = "".join(statistics_csv(_own(node_config, period)))
    assert result.stdout.replace("\r\n", "\n") == exported.replace("\r\n", "\n")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["figure"], r["key"]) for r in rows if r["kind"] == "member"] == [("answered", NL)]
    notices = [r for r in rows if r["figure"] == "hoster.notices"]
    assert notices
    assert {r["value"] for r in notices} == {"<5"}


def test_the_table_says_whose_figures_and_masks_small_hoster_counts(
    runner: CliRunner, node_config: Path
) -> None:
    result = runner.invoke(app, _args(node_config, _period()))
    assert result.exit_code == 0, result.output
    assert f"Statistics of node {NL}" in result.stdout
    assert "Hosters: notices sent [hoster.notices]" in result.stdout
    assert "<5" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--by", "fortnight"], "--by: 'fortnight' is not a granularity: use one of day, week"),
        (["--json", "--csv"], "give at most one of --json and --csv"),
        (["--token", "de-eco=x"], "--token is for --network"),
    ],
)
def test_bad_options_are_one_error_line(
    runner: CliRunner, node_config: Path, extra: list[str], message: str
) -> None:
    result = runner.invoke(app, _args(node_config, _period(), *extra))
    assert result.exit_code == 2
    assert result.stderr.startswith("ihx: error: ")
    assert message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-02-01", "--to", "2026-01-01"], "--to: 2026-01-01 is before --from"),
        (["--from", "2026-02-30", "--to", "2026-03-01"], "--from: '2026-02-30' is not a day of"),
        (["--from", "2026-02-01"], "give the period: --from YYYY-MM-DD --to YYYY-MM-DD"),
        (["--from", "1990-01-01", "--to", "2026-01-01", "--by", "day"], "at most 3700"),
    ],
)
def test_a_bad_period_is_one_error_line(
    runner: CliRunner, node_config: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["stats", "--config", str(node_config), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("ihx: error: ")
    assert message in result.stderr


def test_beside_a_node_writing_the_command_waits_for_the_write_and_answers(
    runner: CliRunner, node_config: Path
) -> None:
    # A "node" holds a write transaction and commits while the command folds: the fold must
    # wait for the lock, not read first and then fail its first write ("database is locked").
    engine = open_engine(load_settings(node_config, env={}).database_url)
    held, done = threading.Event(), threading.Event()

    def node_writes() -> None:
        with immediate(engine) as conn:
            conn.execute(text("INSERT INTO stats_marks (source, value) VALUES ('held', 1)"))
            held.set()
            done.wait(1)  # long enough for the command to be waiting on it
        done.set()

    writer = threading.Thread(target=node_writes)
    writer.start()
    try:
        assert held.wait(30)
        result = runner.invoke(app, _args(node_config, _period(), "--json"))
    finally:
        writer.join(30)
        engine.dispose()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["members"]["answered"] == [NL]


def test_without_a_config_the_command_says_so(runner: CliRunner) -> None:
    result = runner.invoke(app, ["stats", "--from", "2026-01-01", "--to", "2026-01-31"], env={})
    assert result.exit_code == 2
    assert "--config: the node's settings file is required" in result.stderr
