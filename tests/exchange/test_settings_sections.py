"""Settings sections for production: TLS, metrics, health, tokens, partners, checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from exchange.errors import ConfigError
from exchange.settings import load_database_url, settings_from_mapping
from tests.exchange.test_settings import GOOD


def settings(**sections: dict[str, Any]) -> Any:
    data = copy.deepcopy(GOOD)
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return settings_from_mapping(data, base=Path("/srv/ihx"), env={})


TLS = {"cert": "tls/node.crt", "key": "tls/node.key", "ca": "tls/ca.crt"}


def test_public_listen_needs_tls_and_resolves_its_paths() -> None:
    with pytest.raises(ConfigError, match=r"mutual TLS needs tls.cert"):
        settings(node={"listen": "0.0.0.0:7443", "insecure_loopback": False})
    s = settings(node={"listen": "0.0.0.0:7443", "insecure_loopback": False}, tls=TLS)
    assert s.tls_cert == Path("/srv/ihx/tls/node.crt")
    assert s.tls_ca == Path("/srv/ihx/tls/ca.crt")


def test_insecure_flag_is_refused_off_loopback_even_with_tls() -> None:
    with pytest.raises(ConfigError, match="only allowed on a loopback address"):
        settings(node={"listen": "10.1.2.3:7443", "insecure_loopback": True}, tls=TLS)


def test_metrics_and_health_listeners() -> None:
    s = settings(metrics={"listen": "0.0.0.0:9464"}, health={"listen": "0.0.0.0:7444"})
    assert (s.metrics_listen, s.health_listen) == ("0.0.0.0:9464", "0.0.0.0:7444")
    with pytest.raises(ConfigError, match=r"health.listen must be host:port"):
        settings(health={"listen": "7444"})


def test_auth_defaults_and_ranges() -> None:
    s = settings()
    assert s.token_issuer == "nl-eokm"
    assert s.max_token_lifetime_s == 900.0
    with pytest.raises(ConfigError, match=r"auth.max_token_lifetime_s must be from"):
        settings(auth={"max_token_lifetime_s": 1})


def test_partner_rules_are_validated_with_their_index() -> None:
    rule = {"partner": "nl-police", "countries": ["NL"], "classifications": ["baseline"]}
    s = settings(partners={"rules": [rule]})
    assert s.partner_rules[0].partner == "nl-police"
    assert s.partner_rules[0].countries == frozenset({"NL"})
    bad = dict(rule, classifications=["illegal"])
    with pytest.raises(ConfigError, match=r"partners.rules\[1\].classifications"):
        settings(partners={"rules": [rule, bad]})
    with pytest.raises(ConfigError, match=r"partners.rules\[0\].countries"):
        settings(partners={"rules": [dict(rule, countries=["nl"])]})
    with pytest.raises(ConfigError, match=r"partners.rules\[0\]: unknown setting"):
        settings(partners={"rules": [dict(rule, colour="red")]})


def test_checkpoint_settings() -> None:
    s = settings(log={"checkpoint_every": 50, "checkpoint_interval_s": 5})
    assert (s.checkpoint_every, s.checkpoint_interval_s) == (50, 5.0)
    with pytest.raises(ConfigError, match=r"log.checkpoint_every must be from"):
        settings(log={"checkpoint_every": 0})


def test_database_url_alone_for_migrations(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[database]\nurl = "sqlite:///node.db"\n', encoding="utf-8")
    assert load_database_url(config, env={}) == f"sqlite:///{tmp_path / 'node.db'}"
    url = "postgresql+psycopg://ihx@db/ihx"
    assert load_database_url(config, env={"IHX_DATABASE_URL": url}) == url
    config.write_text("[node]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"database.url is required"):
        load_database_url(config, env={})


def test_stats_fold_interval_and_lookback_defaults_and_ranges() -> None:
    s = settings()
    assert (s.stats.fold_interval_s, s.stats.lookback_s) == (60.0, 30.0)
    assert settings(stats={"lookback_s": 0}).stats.lookback_s == 0.0
    with pytest.raises(ConfigError, match=r"stats.fold_interval_s must be from"):
        settings(stats={"fold_interval_s": 0})
    with pytest.raises(ConfigError, match=r"stats.lookback_s must be from"):
        settings(stats={"lookback_s": 7200})
    with pytest.raises(ConfigError, match=r"unknown setting stats.interval$"):
        settings(stats={"interval": 5})


def test_lifecycle_retention_defaults_ranges_and_env() -> None:
    s = settings()
    assert (s.retention_days, s.lifecycle.retention_check_s) == (365, 3600.0)
    assert settings(lifecycle={"retention_days": 0}).retention_days == 0  # never
    with pytest.raises(ConfigError, match=r"lifecycle.retention_days must be from 0 to 36500"):
        settings(lifecycle={"retention_days": -1})
    with pytest.raises(ConfigError, match=r"lifecycle.retention_days"):
        settings(lifecycle={"retention_days": "365"})  # strict: a string is no number
    with pytest.raises(ConfigError, match=r"lifecycle.retention_check_s must be from"):
        settings(lifecycle={"retention_check_s": 0})
    with pytest.raises(ConfigError, match=r"unknown setting lifecycle.retention$"):
        settings(lifecycle={"retention": 30})
    data = copy.deepcopy(GOOD)
    env = {"IHX_LIFECYCLE_RETENTION_DAYS": "30"}
    assert settings_from_mapping(data, base=Path("/srv/ihx"), env=env).retention_days == 30
    with pytest.raises(
        ConfigError, match="IHX_LIFECYCLE_RETENTION_DAYS: 'a year' is not a valid int"
    ):
        settings_from_mapping(
            data, base=Path("/srv/ihx"), env={"IHX_LIFECYCLE_RETENTION_DAYS": "a year"}
        )


def test_pdq_trim_interval_is_at_least_a_second_and_a_third_of_the_lease() -> None:
    s = settings()
    assert (s.pdq.trim_interval_s, s.pdq.follower_lease_s) == (60.0, 900.0)
    assert settings(pdq={"trim_interval_s": 300}).pdq.trim_interval_s == 300.0
    with pytest.raises(ConfigError, match=r"pdq.trim_interval_s must be from 1"):
        settings(pdq={"trim_interval_s": 0.2})
    with pytest.raises(
        ConfigError,
        match=r"pdq.trim_interval_s \(301 s\) must be at most a third of "
        r"pdq.follower_lease_s \(900 s\)",
    ):
        settings(pdq={"trim_interval_s": 301})
    with pytest.raises(ConfigError, match=r"a third of pdq.follower_lease_s \(30 s\)"):
        settings(pdq={"follower_lease_s": 30})


def test_the_web_views_pdq_index_can_be_turned_off() -> None:
    assert settings().web.pdq_index is True
    assert settings(web={"pdq_index": False}).web.pdq_index is False


def test_pdq_save_interval_default_and_range() -> None:
    assert settings().pdq.save_interval_s == 600.0
    with pytest.raises(ConfigError, match=r"pdq.save_interval_s must be from 10"):
        settings(pdq={"save_interval_s": 1})
