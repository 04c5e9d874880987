"""The ``[web]`` section and ``ihx web``: off by default, addresses and TLS checked, refused
with one line when off."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.errors import ConfigError
from exchange.settings import settings_from_mapping
from exchange.web.app import secure_cookies
from tests.exchange.test_settings import GOOD
from tests.exchange.test_settings_sections import settings


def test_web_is_off_by_default_on_loopback() -> None:
    s = settings()
    assert s.web.enabled is False
    assert s.web.listen == "127.0.0.1:8080"
    assert (s.web.tls_cert, s.web.tls_key) == (None, None)
    assert s.web.session_lifetime_s == 3600


def test_web_paths_resolve_and_tls_goes_in_pairs() -> None:
    s = settings(web={"enabled": True, "tls_cert": "web.crt", "tls_key": "web.key"})
    assert s.web.tls_cert == Path("/srv/ihx/web.crt")
    with pytest.raises(ConfigError, match=r"tls_cert and web\.tls_key go together"):
        settings(web={"tls_cert": "web.crt"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"listen": "8080"}, "web.listen must be host:port"),
        ({"session_lifetime_s": 10}, "session_lifetime_s"),
        ({"max_sessions": 0}, "max_sessions"),
        ({"enabled": "yes"}, "enabled"),
        ({"cookie": "x"}, "cookie"),
        ({"trusted_proxies": ["10.0.0.0/8", "proxy.example"]}, "not an IP address or CIDR"),
        ({"trusted_proxies": [f"10.0.0.{n}" for n in range(65)]}, "at most 64"),
        ({"login_total_burst": 0}, "login_total_burst"),
    ],
)
def test_bad_web_settings_name_the_field(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(web=values)


def test_trusted_proxies_default_to_none_and_come_from_the_environment() -> None:
    assert settings().web.trusted_proxies == ()
    data = copy.deepcopy(GOOD)
    env = {"IHX_WEB_TRUSTED_PROXIES": "10.244.0.0/16, 192.0.2.7"}
    s = settings_from_mapping(data, base=Path("/srv/ihx"), env=env)
    assert s.web.trusted_proxies == ("10.244.0.0/16", "192.0.2.7")


def test_ihx_web_refuses_to_serve_when_off(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(tomli_w.dumps(GOOD), encoding="utf-8")
    result = CliRunner().invoke(app, ["web", "--config", str(config)])
    assert result.exit_code == 2
    assert "the web view is off" in result.output


@pytest.mark.parametrize(
    ("web", "secure"),
    [
        ({}, False),  # loopback, plain HTTP: a Secure cookie would never be sent back
        ({"listen": "0.0.0.0:8080"}, True),  # reachable from elsewhere: a TLS proxy fronts it
        ({"tls_cert": "web.crt", "tls_key": "web.key"}, True),
        ({"listen": "0.0.0.0:8080", "secure_cookies": False}, False),
        ({"secure_cookies": True}, True),  # behind a TLS-terminating proxy on loopback
    ],
)
def test_secure_cookies_default_on_unless_plain_http_on_loopback(
    web: dict[str, object], secure: bool
) -> None:
    assert secure_cookies(settings(web=web)) is secure
