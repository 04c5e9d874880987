"""``ihx db upgrade`` needs only the database URL (the Helm migration job has nothing else)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.store.engine import open_engine
from exchange.store.migrate import current_revision, head_revision


def test_upgrade_with_only_a_database_section(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[database]\nurl = "sqlite:///node.db"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    engine = open_engine(f"sqlite:///{tmp_path / 'node.db'}")
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    again = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert again.exit_code == 0
    assert "already at revision" in again.output


def test_upgrade_without_a_url_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[node]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 2
    assert "database.url is required" in result.output
