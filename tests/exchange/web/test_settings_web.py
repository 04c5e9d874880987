"""The ``[web]`` section and ``ihx web``: off by default, addresses and TLS checked, refused
with one line when off."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.errors import ConfigError
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
    ],
)
def test_bad_web_settings_name_the_field(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(web=values)


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
