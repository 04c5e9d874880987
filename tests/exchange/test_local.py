"""``open_local``: the node's database, key and issuer without a server, each opened on use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from auth.keys import SigningKey
from auth.tokens import Scope
from exchange.errors import ConfigError
from exchange.local import open_local
from exchange.settings import Settings, load_settings
from exchange.tools.provision import init_database, write_settings

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def node_settings(tmp_path: Path) -> Settings:
    SigningKey.generate().save(tmp_path / "node.key")
    config = tmp_path / "node.toml"
    write_settings(
        config,
        member="nl-eokm",
        listen="127.0.0.1:7701",
        trusted_keys=["a2V5"],
        country_db=tmp_path / "country.mmdb",
        asn_db=None,
    )
    return load_settings(config, env={})


def test_nothing_opens_until_used(tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    with open_local(settings) as local:  # no database file, no manifest: not needed yet
        assert local.member == "nl-eokm"
    assert not (tmp_path / "node.db").exists()


def test_the_database_must_be_at_head(tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    with open_local(settings) as local, pytest.raises(ConfigError, match="ihx db upgrade"):
        _ = local.engine
    init_database(settings)
    with open_local(settings) as local, local.engine.connect():
        pass


def test_token_issuer_is_the_nodes_own(tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    with open_local(settings, clock=lambda: T0) as local:
        issuer = local.token_issuer()
        other = local.token_issuer("de-eco")
        token = issuer.issue("analyst", [Scope.REPORTS_SUBMIT], ttl=timedelta(seconds=60))
        claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == settings.token_issuer == "nl-eokm"
    assert claims["aud"] == "nl-eokm"
    assert claims["iat"] == int(T0.timestamp())
    audience = jwt.decode(
        other.issue("analyst", [Scope.LOG_READ], ttl=timedelta(seconds=60)),
        options={"verify_signature": False},
    )["aud"]
    assert audience == "de-eco"
