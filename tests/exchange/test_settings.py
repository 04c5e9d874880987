"""Node settings: the TOML file, IHX_* overrides, and errors that name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from exchange.errors import ConfigError
from exchange.settings import ExchangeTuning, Settings, load_settings, settings_from_mapping

GOOD_TOML = """\
[node]
member = "nl-eokm"
listen = "127.0.0.1:7701"
insecure_loopback = true

[keys]
signing_key = "node.key"

[manifest]
path = "manifest.json"
trusted_keys = ["Y29vcmRpbmF0b3Ita2V5LWZvci10ZXN0cy0zMmJ5dGU="]

[database]
url = "sqlite:///node.db"

[geoip]
country_db = "geo/country.mmdb"
asn_db = "/srv/geo/asn.mmdb"

[resolver]
kind = "static"
nameservers = ["192.0.2.53"]

[resolver.static]
"hosting-nl.example" = ["185.107.56.1", "2a01:4f8::1"]

[exchange]
window = 8
linger_ms = 2
"""

GOOD: dict[str, dict[str, Any]] = {
    "node": {"member": "nl-eokm", "listen": "127.0.0.1:7701", "insecure_loopback": True},
    "keys": {"signing_key": "node.key"},
    "manifest": {"path": "manifest.json", "trusted_keys": ["a2V5"]},
    "database": {"url": "sqlite:///node.db"},
    "geoip": {"country_db": "country.mmdb"},
}


def write(tmp_path: Path, text: str = GOOD_TOML, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def from_mapping(
    tmp_path: Path, env: dict[str, str] | None = None, **sections: dict[str, Any] | None
) -> Settings:
    """GOOD with sections replaced (a section given as None is removed); no process env."""
    data = copy.deepcopy(GOOD)
    for name, values in sections.items():
        if values is None:
            data.pop(name, None)
        else:
            data[name] = values
    return settings_from_mapping(data, base=tmp_path, env=env or {})


def patched(section: str, **values: Any) -> dict[str, Any]:
    """GOOD's ``section`` with keys set (a value of None removes the key)."""
    out = dict(GOOD.get(section, {}))
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def config_error(tmp_path: Path, **sections: dict[str, Any] | None) -> str:
    with pytest.raises(ConfigError) as info:
        from_mapping(tmp_path, **sections)
    assert info.value.code == "config"
    return info.value.message


# -- a good file --------------------------------------------------------------------------------


def test_good_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path)
    s = load_settings(path, env={})
    assert s.member == "nl-eokm"
    assert s.listen == "127.0.0.1:7701"
    assert s.insecure_loopback is True
    assert s.trusted_keys == ("Y29vcmRpbmF0b3Ita2V5LWZvci10ZXN0cy0zMmJ5dGU=",)
    assert s.resolver_kind == "static"
    assert s.static_hosts == {"hosting-nl.example": ("185.107.56.1", "2a01:4f8::1")}
    assert s.nameservers == ("192.0.2.53",)
    assert s.source == path


def test_relative_paths_resolve_against_the_file_directory(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), env={})
    assert s.signing_key == tmp_path / "node.key"
    assert s.manifest_path == tmp_path / "manifest.json"
    assert s.country_db == tmp_path / "geo" / "country.mmdb"
    assert s.database_url == f"sqlite:///{tmp_path / 'node.db'}"


def test_relative_paths_from_a_relative_settings_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    s = load_settings("conf/node.toml", env={})
    assert s.signing_key.resolve() == tmp_path / "conf" / "node.key"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    s = from_mapping(
        tmp_path,
        geoip={"country_db": "/srv/geo/country.mmdb", "asn_db": "/srv/geo/asn.mmdb"},
        database={"url": "sqlite:////var/lib/ihx/node.db"},
    )
    assert s.country_db == Path("/srv/geo/country.mmdb")
    assert s.asn_db == Path("/srv/geo/asn.mmdb")
    assert s.database_url == "sqlite:////var/lib/ihx/node.db"


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "postgresql+psycopg://ihx@db.internal/ihx"])
def test_other_database_urls_are_kept(tmp_path: Path, url: str) -> None:
    assert from_mapping(tmp_path, database={"url": url}).database_url == url


def test_tuning_defaults_and_int_for_float(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), env={})
    assert s.exchange.window == 8
    assert s.exchange.linger_ms == 2.0
    assert isinstance(s.exchange.linger_ms, float)
    assert s.exchange.max_batch == ExchangeTuning().max_batch
    assert s.exchange.backoff_max_s == 300.0


def test_optional_settings_default(tmp_path: Path) -> None:
    s = from_mapping(tmp_path)
    assert s.asn_db is None
    assert s.resolver_kind == "dns"
    assert s.static_hosts == {}
    assert s.exchange == ExchangeTuning()


# -- file problems ------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such settings file"):
        load_settings(tmp_path / "absent.toml", env={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[node\nmember = ")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(path) in info.value.message
    assert "not valid TOML" in info.value.message


def test_errors_in_a_file_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_TOML.replace("window = 8", "window = 0"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.message.startswith(f"{path}: exchange.window")


# -- every error names the field ----------------------------------------------------------------


def test_unknown_section(tmp_path: Path) -> None:
    assert "unknown section [nodes]" in config_error(tmp_path, nodes={"member": "x"})


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["node"] = "nl-eokm"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"\[node\] must be a table"):
        settings_from_mapping(data, base=tmp_path, env={})


@pytest.mark.parametrize(
    ("section", "key"),
    [("node", "name"), ("database", "path"), ("exchange", "batch_size"), ("geoip", "city_db")],
)
def test_unknown_key(tmp_path: Path, section: str, key: str) -> None:
    message = config_error(tmp_path, **{section: patched(section, **{key: "x"})})
    assert f"unknown setting {section}.{key}" in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("node", "listen", 7701),
        ("node", "insecure_loopback", "yes"),
        ("node", "member", ["nl-eokm"]),
        ("manifest", "trusted_keys", "a2V5"),
        ("exchange", "window", "8"),
        ("exchange", "window", 8.5),
        ("exchange", "window", True),
        ("exchange", "linger_ms", "5"),
        ("exchange", "linger_ms", False),
        ("resolver", "static", ["h=1.2.3.4"]),
    ],
)
def test_wrong_type(tmp_path: Path, section: str, key: str, value: object) -> None:
    message = config_error(tmp_path, **{section: patched(section, **{key: value})})
    assert f"{section}.{key} must be" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window", 0),
        ("window", 65),
        ("max_batch", 1001),
        ("linger_ms", -1.0),
        ("max_message_bytes", 1024),
        ("backoff_initial_s", 0.0),
        ("receipt_timeout_s", 1e9),
    ],
)
def test_out_of_range_tuning(tmp_path: Path, key: str, value: float) -> None:
    message = config_error(tmp_path, exchange={key: value})
    assert f"exchange.{key} must be from" in message


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("node", "member"),
        ("node", "listen"),
        ("keys", "signing_key"),
        ("manifest", "path"),
        ("database", "url"),
        ("geoip", "country_db"),
    ],
)
def test_missing_required(tmp_path: Path, section: str, key: str) -> None:
    message = config_error(tmp_path, **{section: patched(section, **{key: None})})
    assert f"{section}.{key} is required" in message
    assert f"IHX_{section.upper()}_{key.upper()}" in message


def test_empty_required_value_counts_as_missing(tmp_path: Path) -> None:
    assert "node.member is required" in config_error(tmp_path, node=patched("node", member=""))


def test_missing_section_counts_as_missing(tmp_path: Path) -> None:
    assert "database.url is required" in config_error(tmp_path, database=None)


@pytest.mark.parametrize("trusted", [[], [1, 2]])
def test_trusted_keys_must_list_keys(tmp_path: Path, trusted: list[Any]) -> None:
    message = config_error(tmp_path, manifest=patched("manifest", trusted_keys=trusted))
    assert "manifest.trusted_keys" in message


@pytest.mark.parametrize(
    "listen", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", ""]
)
def test_bad_listen(tmp_path: Path, listen: str) -> None:
    message = config_error(tmp_path, node=patched("node", listen=listen))
    assert "node.listen" in message


@pytest.mark.parametrize("listen", ["0.0.0.0:7701", "192.0.2.10:7701", "node.example.org:7701"])
def test_insecure_loopback_on_a_non_loopback_address(tmp_path: Path, listen: str) -> None:
    message = config_error(tmp_path, node=patched("node", listen=listen))
    assert "node.insecure_loopback" in message
    assert "loopback" in message


@pytest.mark.parametrize("listen", ["127.0.0.1:7701", "127.0.0.2:1", "[::1]:7701", "localhost:7"])
def test_insecure_loopback_on_loopback_addresses(tmp_path: Path, listen: str) -> None:
    assert from_mapping(tmp_path, node=patched("node", listen=listen)).listen == listen


def test_plaintext_without_the_flag_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, node=patched("node", insecure_loopback=None))
    assert "node.insecure_loopback" in message


@pytest.mark.parametrize("kind", ["doh", "", "DNS"])
def test_bad_resolver_kind(tmp_path: Path, kind: str) -> None:
    assert "resolver.kind" in config_error(tmp_path, resolver={"kind": kind})


@pytest.mark.parametrize("addresses", ["185.107.56.1", [185], ["1.2.3.4", None]])
def test_bad_static_resolver_table(tmp_path: Path, addresses: object) -> None:
    message = config_error(
        tmp_path, resolver={"kind": "static", "static": {"hosting-nl.example": addresses}}
    )
    assert "resolver.static.hosting-nl.example" in message


# -- IHX_* environment overrides ----------------------------------------------------------------


def test_env_overrides_every_kind(tmp_path: Path) -> None:
    env = {
        "IHX_NODE_MEMBER": "de-eco",  # string
        "IHX_EXCHANGE_WINDOW": "16",  # int
        "IHX_EXCHANGE_LINGER_MS": "2.5",  # float
        "IHX_NODE_INSECURE_LOOPBACK": "TRUE",  # bool
        "IHX_MANIFEST_TRUSTED_KEYS": "a2V5, b3RoZXI=,",  # list
        "IHX_RESOLVER_NAMESERVERS": "192.0.2.53,192.0.2.54",
    }
    s = load_settings(write(tmp_path), env=env)
    assert s.member == "de-eco"
    assert s.exchange.window == 16
    assert s.exchange.linger_ms == 2.5
    assert s.insecure_loopback is True
    assert s.trusted_keys == ("a2V5", "b3RoZXI=")
    assert s.nameservers == ("192.0.2.53", "192.0.2.54")


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("yes", True), ("true", True), ("0", False), ("No", False)]
)
def test_env_bool_values(tmp_path: Path, raw: str, expected: bool) -> None:
    if expected:
        s = from_mapping(tmp_path, env={"IHX_NODE_INSECURE_LOOPBACK": raw})
        assert s.insecure_loopback is True
    else:
        # Switching the flag off on loopback is refused (TLS is not configured yet).
        with pytest.raises(ConfigError, match=r"node\.insecure_loopback"):
            from_mapping(tmp_path, env={"IHX_NODE_INSECURE_LOOPBACK": raw})


def test_env_supplies_a_missing_required_value(tmp_path: Path) -> None:
    s = from_mapping(tmp_path, database=None, env={"IHX_DATABASE_URL": "sqlite:///env.db"})
    assert s.database_url == f"sqlite:///{tmp_path / 'env.db'}"


def test_env_paths_resolve_against_the_file_directory(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), env={"IHX_KEYS_SIGNING_KEY": "keys/other.key"})
    assert s.signing_key == tmp_path / "keys" / "other.key"


def test_process_environment_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IHX_NODE_MEMBER", "us-ncmec")
    assert load_settings(write(tmp_path)).member == "us-ncmec"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("IHX_EXCHANGE_WINDOW", "many"),
        ("IHX_EXCHANGE_WINDOW", "8.5"),
        ("IHX_EXCHANGE_LINGER_MS", "fast"),
        ("IHX_NODE_INSECURE_LOOPBACK", "maybe"),
    ],
)
def test_invalid_env_value_names_the_variable(tmp_path: Path, name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path), env={name: raw})
    assert info.value.message.startswith(f"{name}:")
    assert raw in info.value.message


def test_env_value_out_of_range_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exchange\.window must be from 1 to 64"):
        load_settings(write(tmp_path), env={"IHX_EXCHANGE_WINDOW": "0"})


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_env_float_that_is_not_finite_is_out_of_range(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match=r"exchange\.linger_ms"):
        load_settings(write(tmp_path), env={"IHX_EXCHANGE_LINGER_MS": raw})


def test_unrelated_env_variables_are_ignored(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), env={"IHX_NODE_NAME": "x", "IHX_RESOLVER_STATIC": "x"})
    assert s.member == "nl-eokm"
    assert s.static_hosts == {"hosting-nl.example": ("185.107.56.1", "2a01:4f8::1")}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("probation_streams", 0),
        ("streams_per_member", 65),
        ("first_envelope_s", 0.0),
        ("intake_calls", 0),
        ("calls_per_subject", 5000),
    ],
)
def test_out_of_range_admission(tmp_path: Path, key: str, value: float) -> None:
    message = config_error(tmp_path, exchange={key: value})
    assert f"exchange.{key} must be from" in message


def test_sender_idle_close_must_come_before_the_server_idle_cut(tmp_path: Path) -> None:
    message = config_error(tmp_path, exchange={"stream_idle_s": 200.0})
    assert "exchange.stream_idle_s must be less than exchange.stream_idle_timeout_s" in message


def test_announcements_must_fall_due_before_an_idle_stream_closes(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, exchange={"stream_idle_s": 2.0, "announcement_linger_ms": 2000.0}
    )
    assert "exchange.announcement_linger_ms must be less than exchange.stream_idle_s" in message
    fine = from_mapping(tmp_path, exchange={"stream_idle_s": 2.0, "announcement_linger_ms": 1999.0})
    assert fine.exchange.announcement_linger_ms == 1999.0
